package processors

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// Helpers shared by the tests of drop, match, sampling, limit and
// multiline (prefix ft, "filter test").

// ftEnv is an Env whose metrics, vigil's and the stages' own, live in reg.
func ftEnv(name string) (pipeline.Env, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return pipeline.Env{
		Name:       name,
		Decoder:    pipeline.Decoder{File: "x.yaml"},
		Logger:     slog.New(slog.DiscardHandler),
		Metrics:    pipeline.NewMetrics(reg),
		Registerer: reg,
	}, reg
}

func ftNode(t testing.TB, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("test YAML: %v", err)
	}
	if len(doc.Content) == 0 {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	return doc.Content[0]
}

// ftBuild builds a stage of type typ from its YAML settings.
func ftBuild(t testing.TB, typ, src string) (pipeline.Processor, *prometheus.Registry) {
	t.Helper()
	env, reg := ftEnv("stage")
	n := ftNode(t, src)
	p, err := pipeline.NewProcessor(env, typ, n, n)
	if err != nil {
		t.Fatalf("building %s: %v", typ, err)
	}
	return p, reg
}

// ftBuildErr builds a stage that must fail and returns the error text.
func ftBuildErr(t *testing.T, typ, src string) string {
	t.Helper()
	env, _ := ftEnv("stage")
	n := ftNode(t, src)
	_, err := pipeline.NewProcessor(env, typ, n, n)
	if err == nil {
		t.Fatalf("%s config was accepted:\n%s", typ, src)
	}
	var ce *pipeline.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("%s config error is not a ConfigError with a position: %v", typ, err)
	}
	return err.Error()
}

// ftPipeline builds a Promtail-style stage list, the way pipeline_stages
// become processors.
func ftPipeline(t testing.TB, src string) ([]pipeline.Processor, *prometheus.Registry) {
	t.Helper()
	env, reg := ftEnv("p")
	stages, err := pipeline.StageList(env.Decoder, ftNode(t, src))
	if err != nil {
		t.Fatal(err)
	}
	var out []pipeline.Processor
	for i, st := range stages {
		e := env
		e.Name = fmt.Sprintf("p/%d/%s", i, st.Type)
		p, err := pipeline.NewProcessor(e, st.Type, st.At, st.Node)
		if err != nil {
			t.Fatalf("stage %d (%s): %v", i, st.Type, err)
		}
		out = append(out, p)
	}
	return out, reg
}

// ftRun runs b through procs as the runner does.
func ftRun(procs []pipeline.Processor, b *pipeline.Batch) {
	for _, p := range procs {
		p.Process(b)
		if len(b.Entries) == 0 {
			return
		}
	}
}

// ftCounter sums the series of a counter in reg that have the given
// labels; 0 when there are none.
func ftCounter(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// ftEntry is an entry of stream {app="test"} unless labels are given.
func ftEntry(line string, labels ...string) pipeline.Entry {
	ls := pipeline.Labels{{Name: "app", Value: "test"}}
	if len(labels) > 0 {
		m := map[string]string{}
		for i := 0; i+1 < len(labels); i += 2 {
			m[labels[i]] = labels[i+1]
		}
		ls = pipeline.LabelsFromMap(m)
	}
	return pipeline.Entry{Time: 1, Line: []byte(line), Labels: ls}
}

func ftBatch(entries ...pipeline.Entry) *pipeline.Batch {
	b := pipeline.NewBatch(len(entries), nil)
	b.Entries = append(b.Entries, entries...)
	return b
}

func ftLines(b *pipeline.Batch) []string {
	out := make([]string, 0, len(b.Entries))
	for _, e := range b.Entries {
		out = append(out, string(e.Line))
	}
	return out
}

// ftBench runs p over copies of entries and reports ns and allocations
// per line. Refilling the batch is not timed. A Flusher is flushed after
// every batch, as if the runner's tick came that often.
func ftBench(b *testing.B, p pipeline.Processor, entries []pipeline.Entry) {
	batch := pipeline.NewBatch(len(entries), nil)
	flusher, _ := p.(pipeline.Flusher)
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		batch.Entries = append(batch.Entries[:0], entries...)
		b.StartTimer()
		p.Process(batch)
		if flusher != nil {
			if out := flusher.Flush(time.Now(), false); out != nil {
				out.Settle()
			}
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	lines := float64(b.N) * float64(len(entries))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/lines, "ns/line")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/lines, "allocs/line")
}

// Documented by Promtail: https://grafana.com/docs/loki/latest/send-data/promtail/stages/drop/
// The doc's JSON lines are not valid JSON (unescaped quotes in msg), so
// these tests set the extracted fields a json stage would have set.
const dropDocMsg = `11.11.11.11 - "POST /loki/api/push/ HTTP/1.1" 200 932 "-" "Mozilla/5.0 (Windows; U; Windows NT 5.1; de; rv:1.9.1.7) Gecko/20091221 Firefox/3.5.7 GTB6"`

func dropEntry(line string, ts time.Time, fields ...string) pipeline.Entry {
	e := ftEntry(line)
	e.Time = ts.UnixNano()
	for i := 0; i+1 < len(fields); i += 2 {
		e.Extracted.Set(fields[i], fields[i+1])
	}
	return e
}

func TestDropDocumentedExamples(t *testing.T) {
	now := time.Date(2020, 8, 12, 12, 0, 0, 0, time.UTC)
	long := strings.Repeat("x", 8192)
	tests := []struct {
		name   string
		stages string // one or more drop stages (an OR)
		in     []pipeline.Entry
		kept   []string // lines that remain
		reason string   // logentry_dropped_lines_total reason
	}{
		{
			name:   "source list without value drops when every field exists",
			stages: `[{drop: {source: ["level", "msg"]}}]`,
			in: []pipeline.Entry{
				dropEntry("both", now, "level", "info", "msg", "m"),
				dropEntry("level only", now, "level", "info"),
				dropEntry("none", now),
			},
			kept:   []string{"level only", "none"},
			reason: "drop_stage",
		},
		{
			name:   "expression on the line",
			stages: `[{drop: {expression: ".*debug.*"}}]`,
			in: []pipeline.Entry{
				dropEntry("level=debug msg=x", now),
				dropEntry("level=info msg=x", now),
			},
			kept:   []string{"level=info msg=x"},
			reason: "drop_stage",
		},
		{
			name: "expression on concatenated sources",
			stages: `
- drop:
    source:     ["level","msg"]
    separator:   "#"
    expression:  '(error|ERROR)#.*\/loki\/api\/push.*'
`,
			in: []pipeline.Entry{
				dropEntry("first", now, "level", "error", "msg", dropDocMsg),
				dropEntry("second", now, "level", "ERROR", "msg", dropDocMsg),
				dropEntry("third", now, "level", "info", "msg", dropDocMsg),
			},
			kept:   []string{"third"},
			reason: "drop_stage",
		},
		{
			name:   "value of a source",
			stages: `[{drop: {source: "level", value: "error"}}]`,
			in: []pipeline.Entry{
				dropEntry("error", now, "level", "error", "msg", dropDocMsg),
				dropEntry("errors", now, "level", "errors"),
				dropEntry("missing", now),
			},
			kept:   []string{"errors", "missing"},
			reason: "drop_stage",
		},
		{
			name:   "older than 24h at 2020-08-12T12:00:00Z",
			stages: `[{drop: {older_than: 24h, drop_counter_reason: "line_too_old"}}]`,
			in: []pipeline.Entry{
				dropEntry("11:00", time.Date(2020, 8, 11, 11, 0, 0, 0, time.UTC)),
				dropEntry("13:00", time.Date(2020, 8, 11, 13, 0, 0, 0, time.UTC)),
			},
			kept:   []string{"13:00"},
			reason: "line_too_old",
		},
		{
			name:   "longer than 8kb",
			stages: `[{drop: {longer_than: 8kb, drop_counter_reason: "line_too_long"}}]`,
			in: []pipeline.Entry{
				dropEntry(long, now),
				dropEntry(long+"y", now),
			},
			kept:   []string{long},
			reason: "line_too_long",
		},
		{
			name:   "expression AND length",
			stages: `[{drop: {expression: ".*debug.*", longer_than: 1kb}}]`,
			in: []pipeline.Entry{
				dropEntry("debug "+strings.Repeat("d", 1024), now),
				dropEntry("debug short", now),
				dropEntry("info "+strings.Repeat("i", 1024), now),
			},
			kept:   []string{"debug short", "info " + strings.Repeat("i", 1024)},
			reason: "drop_stage",
		},
		{
			name: "time OR length OR regex on a source, as three stages",
			stages: `
- drop:
    older_than: 24h
- drop:
    longer_than: 8kb
- drop:
    source: "msg"
    expression: ".*trace.*"
`,
			in: []pipeline.Entry{
				dropEntry("old", now.Add(-25*time.Hour), "msg", "fine"),
				dropEntry(long+"z", now, "msg", "fine"),
				dropEntry("traced", now, "msg", "a trace here"),
				dropEntry("kept", now, "msg", "fine"),
			},
			kept:   []string{"kept"},
			reason: "drop_stage",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			procs, reg := ftPipeline(t, tt.stages)
			for _, p := range procs {
				p.(*dropStage).now = func() time.Time { return now }
			}
			b := ftBatch(tt.in...)
			ftRun(procs, b)
			got := ftLines(b)
			if fmt.Sprint(got) != fmt.Sprint(tt.kept) {
				t.Fatalf("kept %q, want %q", got, tt.kept)
			}
			dropped := float64(len(tt.in) - len(tt.kept))
			if c := ftCounter(t, reg, "logentry_dropped_lines_total", map[string]string{"reason": tt.reason}); c != dropped {
				t.Errorf("logentry_dropped_lines_total{reason=%q} = %v, want %v", tt.reason, c, dropped)
			}
			if c := ftCounter(t, reg, "vigil_dropped_entries_total", map[string]string{"reason": tt.reason}); c != dropped {
				t.Errorf("vigil_dropped_entries_total{reason=%q} = %v, want %v", tt.reason, c, dropped)
			}
		})
	}
}

func TestDropSemantics(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	tests := []struct {
		name string
		cfg  string
		in   pipeline.Entry
		drop bool
	}{
		{"missing source keeps", `{source: level, value: error}`, dropEntry("x", now), false},
		{"value joins only the fields that exist", `{source: [a, b], value: "1"}`, dropEntry("x", now, "a", "1"), true},
		{"value joins with the default separator", `{source: [a, b], value: "1;2"}`, dropEntry("x", now, "a", "1", "b", "2"), true},
		{"value is compared whole", `{source: [a], value: "1"}`, dropEntry("x", now, "a", "11"), false},
		{"value with regexp characters is literal", `{source: a, value: "a.c"}`, dropEntry("x", now, "a", "abc"), false},
		{"empty value matches an empty field", `{source: a, value: ""}`, dropEntry("x", now, "a", ""), true},
		{"custom separator", `{source: [a, b], separator: "", expression: "^12$"}`, dropEntry("x", now, "a", "1", "b", "2"), true},
		{"expression on a source is unanchored", `{source: a, expression: "rr"}`, dropEntry("x", now, "a", "error"), true},
		{"expression on a missing source matches the empty join", `{source: a, expression: "^$"}`, dropEntry("x", now), true},
		{"longer_than as an integer", `{longer_than: 3}`, dropEntry("abcd", now), true},
		{"longer_than is strictly longer", `{longer_than: 4}`, dropEntry("abcd", now), false},
		{"longer_than 1KiB", `{longer_than: 1KiB}`, dropEntry(strings.Repeat("a", 1025), now), true},
		{"older_than keeps the present", `{older_than: 1h}`, dropEntry("x", now), false},
		{"older_than in days", `{older_than: 1d}`, dropEntry("x", now.Add(-25*time.Hour)), true},
		{"every condition must hold", `{older_than: 1h, source: a}`, dropEntry("x", now.Add(-2*time.Hour)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := ftBuild(t, "drop", tt.cfg)
			p.(*dropStage).now = func() time.Time { return now }
			b := ftBatch(tt.in)
			p.Process(b)
			if dropped := len(b.Entries) == 0; dropped != tt.drop {
				t.Fatalf("dropped = %v, want %v", dropped, tt.drop)
			}
		})
	}
}

func TestDropConfigErrors(t *testing.T) {
	tests := []struct {
		name, cfg, want string
	}{
		{"nothing to test", "drop_counter_reason: x\n", "x.yaml:1:1: drop stage needs at least one of"},
		{"value without source", "longer_than: 1\nvalue: x\n", "x.yaml:2:8: drop stage: value needs a source"},
		{"value and expression", "source: a\nvalue: x\nexpression: y\n", "x.yaml:3:13: drop stage: value and expression cannot both be set"},
		{"bad expression", "expression: \"(\"\n", "x.yaml:1:13: drop stage: invalid expression"},
		{"bad longer_than", "longer_than: 8 parsecs\n", "x.yaml:1:14: longer_than: invalid size"},
		{"bad unit", "longer_than: 8xb\n", "x.yaml:1:14: longer_than: invalid size unit"},
		{"bad older_than", "older_than: soon\n", "x.yaml:1:13: invalid duration"},
		{"source is a mapping", "source: {a: b}\n", "x.yaml:1:9: source: expected a field name"},
		{"empty source list", "source: []\n", "x.yaml:1:9: drop stage: source is an empty list"},
		{"unknown key", "sources: [a]\n", "x.yaml:1:1: unknown key \"sources\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ftBuildErr(t, "drop", tt.cfg)
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("error %q, want prefix %q", got, tt.want)
			}
		})
	}
}

// Two drop stages share Promtail's counter instead of failing to
// register it twice.
func TestDropStagesShareTheDroppedLinesCounter(t *testing.T) {
	procs, reg := ftPipeline(t, `[{drop: {expression: a}}, {drop: {expression: b}}]`)
	b := ftBatch(ftEntry("a"), ftEntry("b"), ftEntry("c"))
	ftRun(procs, b)
	if got := ftCounter(t, reg, "logentry_dropped_lines_total", map[string]string{"reason": "drop_stage"}); got != 2 {
		t.Fatalf("dropped = %v, want 2", got)
	}
}

func BenchmarkDrop(b *testing.B) {
	p, _ := ftBuild(b, "drop", `{source: [level, msg], expression: "^debug;"}`)
	entries := make([]pipeline.Entry, 1024)
	for i := range entries {
		lvl := "info"
		if i%4 == 0 {
			lvl = "debug"
		}
		entries[i] = dropEntry("a log line of moderate length for the benchmark", time.Now(), "level", lvl, "msg", "hello world")
	}
	ftBench(b, p, entries)
}
