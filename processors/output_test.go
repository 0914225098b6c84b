package processors

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/vigilhq/vigil/pipeline"
)

func TestOutput(t *testing.T) {
	tests := []struct {
		name      string
		line      string
		labels    pipeline.Labels
		extracted pipeline.Fields
		want      string
		missing   float64
	}{
		{
			// Promtail docs: json extracts user and message, output keeps the message.
			name:      "docs: the message becomes the line",
			line:      `{"user": "alexis", "message": "hello, world!"}`,
			extracted: fieldsOf("user", "alexis", "message", "hello, world!"),
			want:      "hello, world!",
		},
		{
			name:      "missing source leaves the line",
			line:      "original",
			extracted: fieldsOf("other", "x"),
			want:      "original",
			missing:   1,
		},
		{
			name:      "empty value empties the line",
			line:      "original",
			extracted: fieldsOf("message", ""),
			want:      "",
		},
		{
			name:   "a label can be the source",
			line:   "original",
			labels: labelsOf("message", "from label"),
			want:   "from label",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newProcHarness(t, "output", "source: message")
			out := h.run(pipeline.Entry{Line: []byte(tt.line), Labels: tt.labels, Extracted: tt.extracted})
			if string(out[0].Line) != tt.want {
				t.Errorf("line = %q, want %q", out[0].Line, tt.want)
			}
			if got := h.errors("missing_source"); got != tt.missing {
				t.Errorf("missing_source errors = %v, want %v", got, tt.missing)
			}
		})
	}
}

func TestOutputLinesAreIndependent(t *testing.T) {
	// The new line must not share memory with the value it came from (here
	// a slice of the old line), with a string, or with the next entry.
	h := newProcHarness(t, "output", "source: msg")
	line1 := []byte(`msg=first`)
	msg1 := unsafe.String(&line1[4], 5)
	out := h.run(
		pipeline.Entry{Line: line1, Extracted: fieldsOf("msg", msg1)},
		pipeline.Entry{Line: []byte("x"), Extracted: fieldsOf("msg", "second")},
	)
	out[0].Line[0] = 'F'
	if msg1 != "first" {
		t.Errorf("writing the new line changed the extracted value: %q", msg1)
	}
	out[0].Line = append(out[0].Line, "!!!"...)
	if string(out[1].Line) != "second" {
		t.Errorf("appending to one line changed the next: %q", out[1].Line)
	}
}

func TestOutputConfigErrors(t *testing.T) {
	ce := procConfigErr(t, "output", "{}")
	if !strings.Contains(ce.Msg, "source is required") {
		t.Errorf("error = %v", ce)
	}
	ce = procConfigErr(t, "output", "source: a\nsorce: b")
	if ce.Line != 2 || ce.Column != 1 || !strings.Contains(ce.Msg, `unknown key "sorce"`) {
		t.Errorf("error = %v", ce)
	}
}

func BenchmarkOutput(b *testing.B) {
	h := newProcHarness(b, "output", "source: message")
	const n = 256
	batch := pipeline.NewBatch(n, nil)
	line := []byte(`{"level":"info","message":"user logged in from 10.0.0.1","tenant":"rentguy"}`)
	for i := 0; i < n; i++ {
		batch.Entries = append(batch.Entries, pipeline.Entry{Line: line, Extracted: fieldsOf("level", "info", "message", unsafe.String(&line[27], 31))})
	}
	benchStageBatches(b, h.proc, batch)
}
