package processors

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/vigilhq/vigil/pipeline"
)

func TestStaticLabels(t *testing.T) {
	tests := []struct {
		name   string
		config string
		labels pipeline.Labels
		want   pipeline.Labels
	}{
		{
			// Promtail docs: after json and labels set stream, static_labels adds custom_key.
			name:   "docs: adds custom_key",
			config: "custom_key: custom_val",
			labels: labelsOf("stream", "stderr"),
			want:   labelsOf("stream", "stderr", "custom_key", "custom_val"),
		},
		{
			name:   "overrides an existing label",
			config: "env: prod",
			labels: labelsOf("env", "dev", "job", "x"),
			want:   labelsOf("env", "prod", "job", "x"),
		},
		{
			name:   "null and empty values add nothing",
			config: "a:\nb: ''\nc: 3",
			labels: labelsOf("job", "x"),
			want:   labelsOf("job", "x", "c", "3"),
		},
		{
			name:   "UTF-8 names are accepted, as in Promtail",
			config: "service.name: api",
			want:   labelsOf("service.name", "api"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newProcHarness(t, "static_labels", tt.config)
			out := h.run(pipeline.Entry{Labels: tt.labels}, pipeline.Entry{Labels: tt.labels})
			for _, e := range out {
				if e.Labels.String() != tt.want.String() {
					t.Errorf("labels = %s, want %s", e.Labels, tt.want)
				}
			}
			if len(tt.labels) > 0 && unsafe.SliceData(out[0].Labels) != unsafe.SliceData(out[1].Labels) {
				t.Error("entries of one stream do not share the derived label set")
			}
		})
	}
}

func TestStaticLabelsDoesNotChangeSharedInput(t *testing.T) {
	h := newProcHarness(t, "static_labels", "b: 2")
	in := labelsOf("a", "1", "c", "3")
	before := in.String()
	h.run(pipeline.Entry{Labels: in})
	if in.String() != before {
		t.Errorf("input label set changed to %s", in)
	}
}

func TestStaticLabelsConfigErrors(t *testing.T) {
	tests := []struct {
		name, config string
		line, col    int
		msg          string
	}{
		{"empty", "{}", 1, 1, "cannot be empty"},
		{"list", "- a", 1, 1, "expects a mapping"},
		{"empty name", "'': x", 1, 1, "invalid label name"},
		{"nested value", "a:\n  b: c", 2, 3, "must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce := procConfigErr(t, "static_labels", tt.config)
			if ce.Line != tt.line || ce.Column != tt.col || !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("error = %v, want x.yaml:%d:%d: ...%s...", ce, tt.line, tt.col, tt.msg)
			}
		})
	}
}

func BenchmarkStaticLabels(b *testing.B) {
	h := newProcHarness(b, "static_labels", "env: prod\nregion: eu")
	const n = 256
	batch := pipeline.NewBatch(n, nil)
	base := labelsOf("job", "app", "filename", "/var/log/app.log")
	for i := 0; i < n; i++ {
		batch.Entries = append(batch.Entries, pipeline.Entry{Labels: base})
	}
	benchStageBatches(b, h.proc, batch)
}
