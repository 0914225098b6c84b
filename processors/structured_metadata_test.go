package processors

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/vigilhq/vigil/pipeline"
)

func TestStructuredMetadata(t *testing.T) {
	tests := []struct {
		name       string
		config     string
		labels     pipeline.Labels
		metadata   pipeline.Labels
		extracted  pipeline.Fields
		wantLabels pipeline.Labels
		wantMeta   pipeline.Labels
		invalid    float64
	}{
		{
			// Promtail docs, first example: json extracts stream and traceID,
			// labels makes stream a label, traceID goes into the metadata.
			name:       "docs: traceID from the line",
			config:     "traceID:",
			labels:     labelsOf("stream", "stderr"),
			extracted:  fieldsOf("stream", "stderr", "traceID", "0242ac120002", "time", "2019-04-30T02:12:41.8443515Z"),
			wantLabels: labelsOf("stream", "stderr"),
			wantMeta:   pipeline.Labels{{Name: "traceID", Value: "0242ac120002"}},
		},
		{
			// Promtail docs, second example: labels set by relabel_configs move
			// into the metadata and out of the stream.
			name:       "docs: labels from service discovery",
			config:     "pod_uid:\npod_host_ip:",
			labels:     labelsOf("pod_uid", "b3937321-fe90-4e15-ac94-495c8fdb9202", "pod_host_ip", "127.0.0.1", "job", "k8s"),
			wantLabels: labelsOf("job", "k8s"),
			wantMeta: pipeline.Labels{
				{Name: "pod_host_ip", Value: "127.0.0.1"},
				{Name: "pod_uid", Value: "b3937321-fe90-4e15-ac94-495c8fdb9202"},
			},
		},
		{
			name:       "a label with the extracted value also moves",
			config:     "stream:",
			labels:     labelsOf("stream", "stderr", "job", "x"),
			extracted:  fieldsOf("stream", "stderr"),
			wantLabels: labelsOf("job", "x"),
			wantMeta:   pipeline.Labels{{Name: "stream", Value: "stderr"}},
		},
		{
			name:       "a label with another value stays",
			config:     "stream:",
			labels:     labelsOf("stream", "stdout"),
			extracted:  fieldsOf("stream", "stderr"),
			wantLabels: labelsOf("stream", "stdout"),
			wantMeta:   pipeline.Labels{{Name: "stream", Value: "stderr"}},
		},
		{
			name:       "renamed, appended to existing metadata",
			config:     "trace_id: traceID",
			metadata:   pipeline.Labels{{Name: "a", Value: "1"}},
			extracted:  fieldsOf("traceID", "abc"),
			wantMeta:   pipeline.Labels{{Name: "a", Value: "1"}, {Name: "trace_id", Value: "abc"}},
			wantLabels: nil,
		},
		{
			name:       "missing: nothing happens",
			config:     "traceID:",
			labels:     labelsOf("job", "x"),
			extracted:  fieldsOf("other", "1"),
			wantLabels: labelsOf("job", "x"),
		},
		{
			name:       "invalid UTF-8 is skipped and counted",
			config:     "traceID:",
			extracted:  fieldsOf("traceID", "\xff\xfe"),
			wantLabels: nil,
			invalid:    1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newProcHarness(t, "structured_metadata", tt.config)
			out := h.run(pipeline.Entry{Line: []byte("log message"), Labels: tt.labels, Metadata: tt.metadata, Extracted: tt.extracted})
			if out[0].Labels.String() != tt.wantLabels.String() {
				t.Errorf("labels = %s, want %s", out[0].Labels, tt.wantLabels)
			}
			if out[0].Metadata.String() != tt.wantMeta.String() {
				t.Errorf("metadata = %s, want %s", out[0].Metadata, tt.wantMeta)
			}
			if got := h.errors("invalid_label_value"); got != tt.invalid {
				t.Errorf("invalid_label_value errors = %v, want %v", got, tt.invalid)
			}
		})
	}
}

func TestStructuredMetadataSharedInput(t *testing.T) {
	// Entries may share one metadata slice with spare capacity; adding to one
	// entry must not show up in another.
	shared := make(pipeline.Labels, 1, 4)
	shared[0] = pipeline.Label{Name: "src", Value: "file"}
	h := newProcHarness(t, "structured_metadata", "trace:")
	out := h.run(
		pipeline.Entry{Metadata: shared, Extracted: fieldsOf("trace", "one")},
		pipeline.Entry{Metadata: shared, Extracted: fieldsOf("trace", "two")},
		pipeline.Entry{Metadata: shared},
	)
	want := []string{`{src="file", trace="one"}`, `{src="file", trace="two"}`, `{src="file"}`}
	for i, w := range want {
		if got := out[i].Metadata.String(); got != w {
			t.Errorf("entry %d: metadata = %s, want %s", i, got, w)
		}
	}
	out[0].Metadata = append(out[0].Metadata, pipeline.Label{Name: "x", Value: "y"})
	if got := out[1].Metadata.String(); got != want[1] {
		t.Errorf("appending to one entry's metadata changed the next: %s", got)
	}
}

func TestStructuredMetadataSteadyState(t *testing.T) {
	h := newProcHarness(t, "structured_metadata", "trace_id:\npod:")
	base := labelsOf("job", "app", "pod", "p-1")
	in := []pipeline.Entry{
		{Labels: base, Extracted: fieldsOf("trace_id", "a1")},
		{Labels: base, Extracted: fieldsOf("trace_id", "b2")},
	}
	batch := pipeline.NewBatch(len(in), nil)
	batch.Entries = append(batch.Entries, in...)
	h.proc.Process(batch)
	if got := batch.Entries[1].Labels.String(); got != `{job="app"}` {
		t.Fatalf("labels = %s", got)
	}
	allocs := testing.AllocsPerRun(100, func() {
		batch.Entries = append(batch.Entries[:0], in...)
		h.proc.Process(batch)
	})
	// One backing array for the batch's metadata; unique trace IDs must not
	// defeat the label-set memo.
	if allocs > 1 {
		t.Errorf("%.1f allocations per batch", allocs)
	}
}

func TestStructuredMetadataConfigErrors(t *testing.T) {
	ce := procConfigErr(t, "structured_metadata", "ok:\nbad-name:")
	if ce.Line != 2 || ce.Column != 1 || !strings.Contains(ce.Msg, "invalid label name") {
		t.Errorf("error = %v", ce)
	}
	procConfigErr(t, "structured_metadata", "{}")
}

func BenchmarkStructuredMetadata(b *testing.B) {
	h := newProcHarness(b, "structured_metadata", "trace_id:")
	const n = 256
	batch := pipeline.NewBatch(n, nil)
	base := labelsOf("job", "app")
	line := []byte(`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","msg":"ok"}`)
	for i := 0; i < n; i++ {
		batch.Entries = append(batch.Entries, pipeline.Entry{Line: line, Labels: base, Extracted: fieldsOf("trace_id", unsafe.String(&line[13], 32))})
	}
	benchStageBatches(b, h.proc, batch)
}
