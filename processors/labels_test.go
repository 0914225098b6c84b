package processors

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// procHarness builds a registered stage from a YAML snippet the way the
// config loader does and runs entries through it in batches.
type procHarness struct {
	t       testing.TB
	name    string
	proc    pipeline.Processor
	metrics *pipeline.Metrics
}

// parseStageBodyYAML parses a stage body written as YAML.
func parseStageBodyYAML(t testing.TB, body string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	if len(doc.Content) == 0 {
		// An empty body is an empty mapping, as StageList makes it.
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1, Column: 1}
	}
	return doc.Content[0]
}

func buildProcHarness(t testing.TB, typ, body string) (*procHarness, error) {
	t.Helper()
	m := pipeline.NewTestMetrics()
	env := pipeline.Env{Name: "test/" + typ, Decoder: pipeline.Decoder{File: "x.yaml"}, Metrics: m}
	node := parseStageBodyYAML(t, body)
	p, err := pipeline.NewProcessor(env, typ, node, node)
	if err != nil {
		return nil, err
	}
	return &procHarness{t: t, name: env.Name, proc: p, metrics: m}, nil
}

func newProcHarness(t testing.TB, typ, body string) *procHarness {
	t.Helper()
	h, err := buildProcHarness(t, typ, body)
	if err != nil {
		t.Fatalf("building %s stage: %v", typ, err)
	}
	return h
}

// procConfigErr returns the error building the stage fails with.
func procConfigErr(t *testing.T, typ, body string) *pipeline.ConfigError {
	t.Helper()
	_, err := buildProcHarness(t, typ, body)
	if err == nil {
		t.Fatalf("%s stage accepted bad config:\n%s", typ, body)
	}
	var ce *pipeline.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error is %T, not a ConfigError: %v", err, err)
	}
	if ce.File != "x.yaml" || ce.Line == 0 {
		t.Fatalf("error has no position: %v", err)
	}
	return ce
}

// run processes the entries as one batch and returns them.
func (h *procHarness) run(entries ...pipeline.Entry) []pipeline.Entry {
	h.t.Helper()
	b := pipeline.NewBatch(len(entries), nil)
	b.Entries = append(b.Entries, entries...)
	h.proc.Process(b)
	return b.Entries
}

func (h *procHarness) errors(reason string) float64 {
	var m dto.Metric
	if err := h.metrics.StageErrors.WithLabelValues(h.name, reason).Write(&m); err != nil {
		h.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func fieldsOf(kv ...string) pipeline.Fields {
	var fs pipeline.Fields
	for i := 0; i+1 < len(kv); i += 2 {
		fs = append(fs, pipeline.Field{Name: kv[i], Value: kv[i+1]})
	}
	return fs
}

func labelsOf(kv ...string) pipeline.Labels {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return pipeline.LabelsFromMap(m)
}

func TestLabels(t *testing.T) {
	tests := []struct {
		name      string
		config    string
		labels    pipeline.Labels
		extracted pipeline.Fields
		want      pipeline.Labels
		invalid   float64
	}{
		{
			// Promtail docs: json extracts stream, labels turns it into a label.
			name:      "docs: extracted stream becomes a label",
			config:    "stream:",
			extracted: fieldsOf("stream", "stderr", "time", "2019-04-30T02:12:41.8443515Z"),
			want:      labelsOf("stream", "stderr"),
		},
		{
			name:      "value names the extracted key",
			config:    "level: lvl\nsvc: service",
			labels:    labelsOf("job", "app"),
			extracted: fieldsOf("lvl", "warn", "service", "api"),
			want:      labelsOf("job", "app", "level", "warn", "svc", "api"),
		},
		{
			name:      "empty string value means the same name",
			config:    "level: ''",
			extracted: fieldsOf("level", "info"),
			want:      labelsOf("level", "info"),
		},
		{
			name:      "missing value leaves labels alone",
			config:    "level:",
			labels:    labelsOf("job", "app"),
			extracted: fieldsOf("other", "x"),
			want:      labelsOf("job", "app"),
		},
		{
			name:      "extracted value replaces an existing label",
			config:    "job:",
			labels:    labelsOf("job", "app"),
			extracted: fieldsOf("job", "other"),
			want:      labelsOf("job", "other"),
		},
		{
			name:      "empty extracted value removes the label",
			config:    "job:",
			labels:    labelsOf("job", "app", "x", "1"),
			extracted: fieldsOf("job", ""),
			want:      labelsOf("x", "1"),
		},
		{
			// Promtail's extracted map starts with the entry's labels.
			name:   "a label can be read as an extracted value",
			config: "file: filename",
			labels: labelsOf("filename", "/var/log/a.log"),
			want:   labelsOf("file", "/var/log/a.log", "filename", "/var/log/a.log"),
		},
		{
			name:      "invalid UTF-8 is skipped and counted",
			config:    "level:",
			labels:    labelsOf("job", "app"),
			extracted: fieldsOf("level", "bad\xffvalue"),
			want:      labelsOf("job", "app"),
			invalid:   1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newProcHarness(t, "labels", tt.config)
			out := h.run(pipeline.Entry{Line: []byte("line"), Labels: tt.labels, Extracted: tt.extracted})
			if got := out[0].Labels.String(); got != tt.want.String() {
				t.Errorf("labels = %s, want %s", got, tt.want)
			}
			if got := h.errors("invalid_label_value"); got != tt.invalid {
				t.Errorf("invalid_label_value errors = %v, want %v", got, tt.invalid)
			}
			if string(out[0].Line) != "line" {
				t.Errorf("line changed to %q", out[0].Line)
			}
		})
	}
}

func TestLabelsReusesLabelSets(t *testing.T) {
	h := newProcHarness(t, "labels", "level:\ntenant:")
	base := labelsOf("job", "app", "filename", "/a.log")
	mk := func(level, tenant string) pipeline.Entry {
		return pipeline.Entry{Labels: base, Extracted: fieldsOf("level", level, "tenant", tenant)}
	}
	out := h.run(mk("info", "a"), mk("warn", "a"), mk("info", "a"), mk("warn", "b"), mk("info", "a"))
	same := func(a, b pipeline.Labels) bool { return unsafe.SliceData(a) == unsafe.SliceData(b) }
	if !same(out[0].Labels, out[2].Labels) || !same(out[0].Labels, out[4].Labels) {
		t.Error("entries with the same stream and values do not share a label set")
	}
	if same(out[0].Labels, out[1].Labels) || same(out[1].Labels, out[3].Labels) {
		t.Error("entries with different values share a label set")
	}
	if got, want := out[3].Labels.String(), `{filename="/a.log", job="app", level="warn", tenant="b"}`; got != want {
		t.Errorf("labels = %s, want %s", got, want)
	}
	in := []pipeline.Entry{mk("info", "a"), mk("warn", "a"), mk("warn", "b")}
	batch := pipeline.NewBatch(len(in), nil)
	allocs := testing.AllocsPerRun(100, func() {
		batch.Entries = append(batch.Entries[:0], in...)
		h.proc.Process(batch)
	})
	if allocs != 0 {
		t.Errorf("steady state allocates %.1f times per batch", allocs)
	}
}

func TestLabelsOwnValuesTakenFromLines(t *testing.T) {
	// Extracted values may point into a line; labels outlive the batch, so
	// the stage must copy them.
	h := newProcHarness(t, "labels", "level:")
	line := []byte(`level=warn`)
	v := unsafe.String(&line[6], 4)
	out := h.run(pipeline.Entry{Line: line, Extracted: fieldsOf("level", v)})
	copy(line[6:], "XXXX")
	if got := out[0].Labels.Get("level"); got != "warn" {
		t.Errorf("label changed with the line's bytes: %q", got)
	}
	// And the memo compares against its own copy, not the old line.
	out = h.run(pipeline.Entry{Line: []byte("level=XXXX"), Extracted: fieldsOf("level", "XXXX")})
	if got := out[0].Labels.Get("level"); got != "XXXX" {
		t.Errorf("label = %q, want XXXX", got)
	}
}

func TestLabelsMemoIsBounded(t *testing.T) {
	h := newProcHarness(t, "labels", "id:")
	s := h.proc.(*labelsStage)
	base := labelsOf("job", "app")
	for i := 0; i < maxMemoEntries+10; i++ {
		id := fmt.Sprint(i)
		out := h.run(pipeline.Entry{Labels: base, Extracted: fieldsOf("id", id)})
		if got := out[0].Labels.Get("id"); got != id {
			t.Fatalf("entry %d: id label %q", i, got)
		}
	}
	if len(s.memo.m) > maxMemoEntries {
		t.Errorf("memo holds %d entries, more than %d", len(s.memo.m), maxMemoEntries)
	}
}

func TestLabelsConfigErrors(t *testing.T) {
	tests := []struct {
		name, config string
		line, col    int
		msg          string
	}{
		{"invalid label name", "ok: x\n1bad: y", 2, 1, "invalid label name"},
		{"dotted label name", "a.b:", 1, 1, "invalid label name"},
		{"empty", "{}", 1, 1, "cannot be empty"},
		{"list instead of mapping", "- a\n- b", 1, 1, "expects a mapping"},
		{"value not a name", "a: [x]", 1, 4, "must be the name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce := procConfigErr(t, "labels", tt.config)
			if ce.Line != tt.line || ce.Column != tt.col || !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("error = %v, want x.yaml:%d:%d: ...%s...", ce, tt.line, tt.col, tt.msg)
			}
		})
	}
}

func BenchmarkLabels(b *testing.B) {
	h := newProcHarness(b, "labels", "level:\ntenant:")
	base := labelsOf("job", "app", "filename", "/var/log/app.log")
	levels := []string{"info", "warn", "error", "debug"}
	const n = 256
	batch := pipeline.NewBatch(n, nil)
	for i := 0; i < n; i++ {
		batch.Entries = append(batch.Entries, pipeline.Entry{
			Labels:    base,
			Extracted: fieldsOf("level", levels[i%len(levels)], "tenant", "rentguy", "ts", "2024-05-01T10:00:00Z"),
		})
	}
	benchStageBatches(b, h.proc, batch)
}

// benchStageBatches runs the same batch through p repeatedly and reports the
// cost per line. Stages that rewrite a field each time are idempotent on
// these inputs, so the steady state is what is measured.
func benchStageBatches(b *testing.B, p pipeline.Processor, batch *pipeline.Batch) {
	b.Helper()
	n := len(batch.Entries)
	orig := append([]pipeline.Entry(nil), batch.Entries...)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch.Entries = batch.Entries[:n]
		copy(batch.Entries, orig)
		p.Process(batch)
	}
	b.StopTimer()
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N*n)
	b.ReportMetric(ns, "ns/line")
	allocs := testing.AllocsPerRun(10, func() {
		batch.Entries = batch.Entries[:n]
		copy(batch.Entries, orig)
		p.Process(batch)
	})
	b.ReportMetric(allocs/float64(n), "allocs/line")
}
