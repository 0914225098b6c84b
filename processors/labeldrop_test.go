package processors

import (
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pipeline"
)

func TestLabelDrop(t *testing.T) {
	tests := []struct {
		name   string
		config string
		labels pipeline.Labels
		want   pipeline.Labels
	}{
		{
			// Promtail docs: the pod name moved into the line, labeldrop removes the label.
			name:   "docs: drops kubernetes_pod_name",
			config: "- kubernetes_pod_name",
			labels: labelsOf("kubernetes_pod_name", "loki-pqrs", "app", "loki"),
			want:   labelsOf("app", "loki"),
		},
		{
			name:   "several, some absent",
			config: "[a, b, zz]",
			labels: labelsOf("a", "1", "b", "2", "c", "3"),
			want:   labelsOf("c", "3"),
		},
		{
			name:   "nothing to drop",
			config: "[x]",
			labels: labelsOf("a", "1"),
			want:   labelsOf("a", "1"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newProcHarness(t, "labeldrop", tt.config)
			before := tt.labels.String()
			out := h.run(pipeline.Entry{Labels: tt.labels, Line: []byte("log message")})
			if out[0].Labels.String() != tt.want.String() {
				t.Errorf("labels = %s, want %s", out[0].Labels, tt.want)
			}
			if tt.labels.String() != before {
				t.Errorf("input label set changed to %s", tt.labels)
			}
		})
	}
}

func TestLabelDropConfigErrors(t *testing.T) {
	tests := []struct {
		name, config string
		line, col    int
		msg          string
	}{
		{"empty list", "[]", 1, 1, "cannot be empty"},
		{"mapping", "a: b", 1, 1, "expects a list"},
		{"null item", "- a\n- ~", 2, 3, "expected a label name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce := procConfigErr(t, "labeldrop", tt.config)
			if ce.Line != tt.line || ce.Column != tt.col || !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("error = %v, want x.yaml:%d:%d: ...%s...", ce, tt.line, tt.col, tt.msg)
			}
		})
	}
}

func BenchmarkLabelDrop(b *testing.B) {
	h := newProcHarness(b, "labeldrop", "[filename]")
	const n = 256
	batch := pipeline.NewBatch(n, nil)
	base := labelsOf("job", "app", "filename", "/var/log/app.log")
	for i := 0; i < n; i++ {
		batch.Entries = append(batch.Entries, pipeline.Entry{Labels: base})
	}
	benchStageBatches(b, h.proc, batch)
}
