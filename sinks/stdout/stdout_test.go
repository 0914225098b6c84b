package stdout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// countingWriter records what was written and in how many writes.
type countingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	err    error
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.writes++
	return w.buf.Write(p)
}

func (w *countingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func newSink(t *testing.T, cfg string, w io.Writer) (*Sink, *pipeline.Metrics, *bytes.Buffer) {
	t.Helper()
	s, m, logs, err := build(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	s.loc = time.FixedZone("CET", 3600)
	return s, m, logs
}

func build(cfg string, w io.Writer) (*Sink, *pipeline.Metrics, *bytes.Buffer, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(cfg), &doc); err != nil {
		return nil, nil, nil, err
	}
	node := &yaml.Node{Kind: yaml.MappingNode}
	if len(doc.Content) > 0 {
		node = doc.Content[0]
	}
	m := pipeline.NewTestMetrics()
	logs := &bytes.Buffer{}
	s, err := New(pipeline.Env{
		Name:    "console",
		Decoder: pipeline.Decoder{File: "test.yaml"},
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
		Metrics: m,
	}, node, w)
	return s, m, logs, err
}

func labels(kv ...string) pipeline.Labels {
	var ls pipeline.Labels
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, pipeline.Label{Name: kv[i], Value: kv[i+1]})
	}
	return ls
}

// consume runs b through the sink as the runner does and reports whether
// the batch settled once the runner released its reference.
func consume(s *Sink, entries ...pipeline.Entry) bool {
	var settled atomic.Bool
	b := pipeline.NewBatch(len(entries), func() { settled.Store(true) })
	b.Entries = append(b.Entries, entries...)
	s.Consume(b)
	b.Settle()
	return settled.Load()
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 891000000, time.UTC).UnixNano()

func TestText(t *testing.T) {
	tests := []struct {
		name  string
		entry pipeline.Entry
		want  string
	}{
		{
			name:  "labels sorted, time in Promtail's layout",
			entry: pipeline.Entry{Time: t0, Line: []byte("hello world"), Labels: labels("filename", "/var/log/a.log", "job", "varlogs")},
			want:  "2026-03-04T06:06:07.891+0100\t{filename=\"/var/log/a.log\", job=\"varlogs\"}\thello world\n",
		},
		{
			name:  "whole second, quoting",
			entry: pipeline.Entry{Time: t0 - 891000000, Line: []byte(`say "hi"`), Labels: labels("msg", "a\"b\\c\nd")},
			want:  "2026-03-04T06:06:07+0100\t{msg=\"a\\\"b\\\\c\\nd\"}\tsay \"hi\"\n",
		},
		{
			name:  "tenant shown as Promtail's label",
			entry: pipeline.Entry{Time: t0, Line: []byte("x"), Labels: labels("Z", "1", "job", "j"), Tenant: "rentguy"},
			want:  "2026-03-04T06:06:07.891+0100\t{Z=\"1\", __tenant_id__=\"rentguy\", job=\"j\"}\tx\n",
		},
		{
			name:  "no labels",
			entry: pipeline.Entry{Time: t0, Line: []byte("")},
			want:  "2026-03-04T06:06:07.891+0100\t{}\t\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &countingWriter{}
			s, _, _ := newSink(t, "", w)
			if !consume(s, tt.entry) {
				t.Error("batch not settled after Consume")
			}
			if got := w.String(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			// The labels render exactly as Promtail's model.LabelSet does.
			ms := model.LabelSet{}
			for _, l := range tt.entry.Labels {
				ms[model.LabelName(l.Name)] = model.LabelValue(l.Value)
			}
			if tt.entry.Tenant != "" {
				ms[tenantLabel] = model.LabelValue(tt.entry.Tenant)
			}
			if fields := strings.SplitN(w.String(), "\t", 3); fields[1] != ms.String() {
				t.Errorf("labels %s, Promtail renders %s", fields[1], ms.String())
			}
		})
	}
}

func TestJSON(t *testing.T) {
	w := &countingWriter{}
	s, _, _ := newSink(t, "format: json", w)
	entries := []pipeline.Entry{
		{Time: t0, Line: []byte("plain"), Labels: labels("job", "a")},
		{Time: t0 + 1, Line: []byte("bad \xff utf8, \"quotes\", \t tab, \x01 ctl, \u2028"), Labels: labels("job", "b"),
			Tenant: "t1", Metadata: labels("trace_id", "abc")},
	}
	consume(s, entries...)
	lines := strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %q", len(lines), w.String())
	}
	type row struct {
		TS       string            `json:"ts"`
		Labels   map[string]string `json:"labels"`
		Line     string            `json:"line"`
		Tenant   string            `json:"tenant"`
		Metadata map[string]string `json:"metadata"`
	}
	for i, l := range lines {
		var r row
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, l)
		}
		e := entries[i]
		ts, err := time.Parse(time.RFC3339Nano, r.TS)
		if err != nil || ts.UnixNano() != e.Time {
			t.Errorf("ts %q (%v), want %d", r.TS, err, e.Time)
		}
		wantLine := strings.ToValidUTF8(string(e.Line), "\ufffd")
		if r.Line != wantLine || r.Tenant != e.Tenant || fmt.Sprint(r.Labels) != fmt.Sprint(e.Labels.Map()) {
			t.Errorf("row %d = %+v, want %+v", i, r, e)
		}
		if len(e.Metadata) > 0 && fmt.Sprint(r.Metadata) != fmt.Sprint(e.Metadata.Map()) {
			t.Errorf("metadata %v", r.Metadata)
		}
		// Byte-for-byte what encoding/json writes for the line.
		want, _ := json.Marshal(string(e.Line))
		if !strings.Contains(l, `"line":`+string(want)) {
			t.Errorf("line encoded as %s, encoding/json gives %s", l, want)
		}
	}
}

func TestFlushedOncePerBatch(t *testing.T) {
	w := &countingWriter{}
	s, _, _ := newSink(t, "", w)
	var entries []pipeline.Entry
	for i := range 100 {
		entries = append(entries, pipeline.Entry{Time: t0, Line: []byte(fmt.Sprint("line ", i)), Labels: labels("job", "x")})
	}
	consume(s, entries...)
	if w.writes != 1 {
		t.Errorf("%d writes for one batch, want 1", w.writes)
	}
	if n := strings.Count(w.String(), "\n"); n != 100 {
		t.Errorf("%d lines written before Consume returned, want 100", n)
	}
	consume(s, entries[:3]...)
	if w.writes != 2 {
		t.Errorf("%d writes after two batches, want 2", w.writes)
	}
}

func TestConcurrentBatchesStayWhole(t *testing.T) {
	w := &countingWriter{}
	s, _, _ := newSink(t, "", w)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				consume(s,
					pipeline.Entry{Time: t0, Line: []byte(fmt.Sprintf("g%d b%d first", g, i)), Labels: labels("g", fmt.Sprint(g))},
					pipeline.Entry{Time: t0, Line: []byte(fmt.Sprintf("g%d b%d second", g, i)), Labels: labels("g", fmt.Sprint(g))},
				)
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines, want 400", len(lines))
	}
	for i := 0; i < len(lines); i += 2 {
		first, second := lines[i], lines[i+1]
		if !strings.HasSuffix(first, " first") || strings.TrimSuffix(first, " first") != strings.TrimSuffix(second, " second") {
			t.Fatalf("a batch was interleaved: %q / %q", first, second)
		}
	}
}

func TestWriteError(t *testing.T) {
	w := &countingWriter{err: errors.New("broken pipe")}
	s, m, logs := newSink(t, "", w)
	if !consume(s, pipeline.Entry{Time: t0, Line: []byte("lost")}, pipeline.Entry{Time: t0, Line: []byte("lost too")}) {
		t.Error("batch not settled: a failed write is a counted drop")
	}
	if v := counter(t, m, "console", "write_error"); v != 2 {
		t.Errorf("dropped = %v, want 2", v)
	}
	if !strings.Contains(logs.String(), "broken pipe") {
		t.Errorf("not logged: %s", logs.String())
	}
	// The writer recovers.
	w.mu.Lock()
	w.err = nil
	w.mu.Unlock()
	consume(s, pipeline.Entry{Time: t0, Line: []byte("back")})
	if got := w.String(); !strings.HasSuffix(got, "\tback\n") || strings.Contains(got, "lost") {
		t.Errorf("after recovery: %q", got)
	}
}

func counter(t *testing.T, m *pipeline.Metrics, labels ...string) float64 {
	t.Helper()
	c, err := m.Dropped.GetMetricWithLabelValues(labels...)
	if err != nil {
		t.Fatal(err)
	}
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}

func TestConfig(t *testing.T) {
	tests := []struct {
		cfg, want string
	}{
		{"format: xml", `test.yaml:1:9: format must be text or json, got "xml"`},
		{"format: [json]", "test.yaml:1:9: format must be text or json"},
		{"colour: true", `test.yaml:1:1: unknown key "colour"`},
	}
	for _, tt := range tests {
		_, _, _, err := build(tt.cfg, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.cfg, err, tt.want)
		}
	}
	for _, ok := range []string{"", "format: text", "format: json"} {
		if _, _, _, err := build(ok, io.Discard); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	found := false
	for _, n := range pipeline.SinkTypes() {
		found = found || n == "stdout"
	}
	if !found {
		t.Error("sink type stdout not registered")
	}
}

func BenchmarkText(b *testing.B) {
	s, _, _, err := build("", io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	batch := pipeline.NewBatch(1000, nil)
	for i := range 1000 {
		batch.Entries = append(batch.Entries, pipeline.Entry{Time: t0 + int64(i),
			Line: bytes.Repeat([]byte("x"), 130), Labels: labels("filename", "/var/log/syslog", "job", "varlogs")})
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Consume(batch)
	}
}
