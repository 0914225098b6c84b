package processors

import (
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pipeline"
)

func TestLabelAllow(t *testing.T) {
	tests := []struct {
		name   string
		config string
		labels pipeline.Labels
		want   pipeline.Labels
	}{
		{
			// Promtail docs: only the pod and container names reach Loki.
			name:   "docs: keeps pod and container names",
			config: "- kubernetes_pod_name\n- kubernetes_container_name",
			labels: labelsOf("kubernetes_pod_name", "loki-pqrs", "kubernetes_container_name", "loki",
				"kubernetes_pod_template_hash", "79f5db67b", "kubernetes_controller_revision_hash", "774858987d"),
			want: labelsOf("kubernetes_pod_name", "loki-pqrs", "kubernetes_container_name", "loki"),
		},
		{
			name:   "all allowed",
			config: "[a, b]",
			labels: labelsOf("a", "1"),
			want:   labelsOf("a", "1"),
		},
		{
			name:   "none allowed",
			config: "[x]",
			labels: labelsOf("a", "1"),
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newProcHarness(t, "labelallow", tt.config)
			before := tt.labels.String()
			out := h.run(pipeline.Entry{Labels: tt.labels})
			if out[0].Labels.String() != tt.want.String() {
				t.Errorf("labels = %s, want %s", out[0].Labels, tt.want)
			}
			if tt.labels.String() != before {
				t.Errorf("input label set changed to %s", tt.labels)
			}
		})
	}
}

func TestLabelAllowConfigErrors(t *testing.T) {
	for _, cfg := range []string{"[]", "a: b", "- ''"} {
		ce := procConfigErr(t, "labelallow", cfg)
		if !strings.Contains(ce.Msg, "labelallow") {
			t.Errorf("%q: error %v does not name the stage", cfg, ce)
		}
	}
}

func BenchmarkLabelAllow(b *testing.B) {
	h := newProcHarness(b, "labelallow", "[job, level]")
	const n = 256
	batch := pipeline.NewBatch(n, nil)
	base := labelsOf("job", "app", "filename", "/var/log/app.log", "level", "info")
	for i := 0; i < n; i++ {
		batch.Entries = append(batch.Entries, pipeline.Entry{Labels: base})
	}
	benchStageBatches(b, h.proc, batch)
}
