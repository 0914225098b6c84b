package processors

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pipeline"
)

func TestPack(t *testing.T) {
	tests := []struct {
		name       string
		config     string
		line       string
		labels     pipeline.Labels
		extracted  pipeline.Fields
		wantLine   string
		wantLabels pipeline.Labels
	}{
		{
			// Promtail docs: the container label moves into the line.
			name:       "docs: pack the container label",
			config:     "labels: [container]",
			line:       "original log message",
			labels:     labelsOf("container", "myapp", "job", "k8s"),
			wantLine:   `{"container":"myapp","_entry":"original log message"}`,
			wantLabels: labelsOf("job", "k8s"),
		},
		{
			// Promtail docs: container and pod, keys sorted, _entry last.
			name:       "docs: container and pod",
			config:     "labels: [pod, container]",
			line:       "original log message",
			labels:     labelsOf("container", "myapp", "pod", "pod-3223f"),
			wantLine:   `{"container":"myapp","pod":"pod-3223f","_entry":"original log message"}`,
			wantLabels: nil,
		},
		{
			name:       "extracted values are packed, labels of the same name removed",
			config:     "labels: [level, user]",
			line:       `{"a":1}`,
			labels:     labelsOf("level", "warn", "job", "x"),
			extracted:  fieldsOf("user", "alexis", "level", "error"),
			wantLine:   `{"level":"error","user":"alexis","_entry":"{\"a\":1}"}`,
			wantLabels: labelsOf("job", "x"),
		},
		{
			name:       "nothing found: only the entry",
			config:     "labels: [missing]",
			line:       "x",
			labels:     labelsOf("job", "x"),
			wantLine:   `{"_entry":"x"}`,
			wantLabels: labelsOf("job", "x"),
		},
		{
			name:       "escaping as Promtail's encoder does",
			config:     "labels: [v]",
			line:       "tab\there <b>&\u2028 \x01 \xff",
			extracted:  fieldsOf("v", `q"uo\te`),
			wantLine:   `{"v":"q\"uo\\te","_entry":"tab\there \u003cb\u003e\u0026\u2028 \u0001 \ufffd"}`,
			wantLabels: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newProcHarness(t, "pack", tt.config+"\ningest_timestamp: false")
			out := h.run(pipeline.Entry{Time: 99, Line: []byte(tt.line), Labels: tt.labels, Extracted: tt.extracted})
			if string(out[0].Line) != tt.wantLine {
				t.Errorf("line = %s\nwant   %s", out[0].Line, tt.wantLine)
			}
			if out[0].Labels.String() != tt.wantLabels.String() {
				t.Errorf("labels = %s, want %s", out[0].Labels, tt.wantLabels)
			}
			if out[0].Time != 99 {
				t.Errorf("time changed with ingest_timestamp false: %d", out[0].Time)
			}
		})
	}
}

func TestPackJSONRoundTrips(t *testing.T) {
	// Whatever the bytes, the packed line is valid JSON that decodes to the
	// original values (invalid UTF-8 aside, which becomes U+FFFD as with
	// every JSON encoder).
	values := []string{"", "plain", `"quoted" \ back`, "ctl \x00\x1f\x7f", "<html>&amp;", "日本語 \u2028\u2029", "emoji 🎉"}
	h := newProcHarness(t, "pack", "labels: [k]\ningest_timestamp: false")
	for _, v := range values {
		out := h.run(pipeline.Entry{Line: []byte(v + "|line"), Extracted: fieldsOf("k", v)})
		var got map[string]string
		if err := json.Unmarshal(out[0].Line, &got); err != nil {
			t.Fatalf("%q: packed line %s is not JSON: %v", v, out[0].Line, err)
		}
		if got["k"] != v || got["_entry"] != v+"|line" {
			t.Errorf("%q: decoded %q", v, got)
		}
	}
}

func TestPackIngestTimestamp(t *testing.T) {
	h := newProcHarness(t, "pack", "labels: [a]")
	fixed := time.Unix(1700000000, 0)
	h.proc.(*packStage).now = func() time.Time { return fixed }
	out := h.run(pipeline.Entry{Time: 1}, pipeline.Entry{Time: 2}, pipeline.Entry{Time: 3})
	for i := range out {
		if want := fixed.UnixNano() + int64(i); out[i].Time != want {
			t.Errorf("entry %d: time = %d, want %d", i, out[i].Time, want)
		}
	}
	// The next batch, even with the clock not moving, keeps increasing.
	out = h.run(pipeline.Entry{Time: 1})
	if want := fixed.UnixNano() + 3; out[0].Time != want {
		t.Errorf("next batch: time = %d, want %d", out[0].Time, want)
	}
}

func TestPackLinesAreIndependent(t *testing.T) {
	h := newProcHarness(t, "pack", "labels: [a]")
	out := h.run(pipeline.Entry{Line: []byte("one")}, pipeline.Entry{Line: []byte("two")})
	out[0].Line = append(out[0].Line, "xxxx"...)
	if string(out[1].Line) != `{"_entry":"two"}` {
		t.Errorf("appending to one line changed the next: %s", out[1].Line)
	}
}

func TestPackConfigErrors(t *testing.T) {
	ce := procConfigErr(t, "pack", "labels: [a, '']")
	if ce.Line != 1 || ce.Column != 13 || !strings.Contains(ce.Msg, "empty label name") {
		t.Errorf("error = %v", ce)
	}
	ce = procConfigErr(t, "pack", "labels: [a]\ningest_timestamp: maybe")
	if ce.Line != 2 || !strings.Contains(ce.Msg, "boolean") {
		t.Errorf("error = %v", ce)
	}
}

func BenchmarkPack(b *testing.B) {
	h := newProcHarness(b, "pack", "labels: [container, pod]")
	const n = 256
	batch := pipeline.NewBatch(n, nil)
	base := labelsOf("container", "myapp", "pod", "pod-3223f", "job", "k8s")
	line := []byte(`level=info msg="user logged in" user=alexis duration=12ms`)
	for i := 0; i < n; i++ {
		batch.Entries = append(batch.Entries, pipeline.Entry{Line: line, Labels: base})
	}
	benchStageBatches(b, h.proc, batch)
}
