package processors

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jmespath/go-jmespath"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// Helpers shared by the parser stages' tests (docker, cri, json, logfmt,
// regex, replace, decolorize).

// parserStageForTest builds a registered stage from a YAML body, the way
// the config loader does.
type parserStageForTest struct {
	pipeline.Processor
	metrics *pipeline.Metrics
	name    string
}

func newParserStageForTest(t testing.TB, typ, body string) *parserStageForTest {
	t.Helper()
	p, m, err := buildParserStageForTest(typ, body)
	if err != nil {
		t.Fatalf("building %s stage: %v", typ, err)
	}
	return &parserStageForTest{Processor: p, metrics: m, name: typ}
}

func buildParserStageForTest(typ, body string) (pipeline.Processor, *pipeline.Metrics, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(body), &doc); err != nil {
		return nil, nil, err
	}
	node := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1, Column: 1}
	if len(doc.Content) > 0 && !(doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null") {
		node = doc.Content[0]
	}
	m := pipeline.NewTestMetrics()
	env := pipeline.Env{
		Name:    typ,
		Decoder: pipeline.Decoder{File: "x.yaml"},
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: m,
	}
	p, err := pipeline.NewProcessor(env, typ, node, node)
	return p, m, err
}

// errors returns the stage's error counter for reason.
func (s *parserStageForTest) errors(reason string) float64 {
	var m dto.Metric
	if err := s.metrics.StageErrors.WithLabelValues(s.name, reason).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func (s *parserStageForTest) drops(reason string) float64 {
	var m dto.Metric
	if err := s.metrics.Dropped.WithLabelValues(s.name, reason).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// totalErrors sums the stage's error counters over all reasons.
func (s *parserStageForTest) totalErrors() float64 {
	c := make(chan prometheus.Metric, 256)
	s.metrics.StageErrors.Collect(c)
	close(c)
	total := 0.0
	for m := range c {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			panic(err)
		}
		total += d.GetCounter().GetValue()
	}
	return total
}

// parserBatchForTest builds a batch of entries with the given lines and labels.
func parserBatchForTest(labels pipeline.Labels, lines ...string) *pipeline.Batch {
	b := pipeline.NewBatch(len(lines), nil)
	for i, l := range lines {
		b.Entries = append(b.Entries, pipeline.Entry{Time: int64(1000 + i), Line: []byte(l), Labels: labels})
	}
	return b
}

// parserRunForTest runs lines through stages in order and returns the entries.
func parserRunForTest(labels pipeline.Labels, lines []string, stages ...pipeline.Processor) []pipeline.Entry {
	b := parserBatchForTest(labels, lines...)
	for _, s := range stages {
		s.Process(b)
	}
	return b.Entries
}

func parserFieldsForTest(fs pipeline.Fields) map[string]string {
	m := map[string]string{}
	for _, f := range fs {
		m[f.Name] = f.Value
	}
	return m
}

func parserWantFieldsForTest(t *testing.T, got pipeline.Fields, want map[string]string) {
	t.Helper()
	if g := parserFieldsForTest(got); !reflect.DeepEqual(g, want) {
		t.Errorf("extracted = %q, want %q", g, want)
	}
}

// parserConfigErrorForTest asserts that building the stage fails with a
// position in x.yaml and a message containing want.
func parserConfigErrorForTest(t *testing.T, typ, body, wantPos, want string) {
	t.Helper()
	_, _, err := buildParserStageForTest(typ, body)
	if err == nil {
		t.Fatalf("%s stage accepted %q", typ, body)
	}
	var ce *pipeline.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a ConfigError", err)
	}
	if !strings.HasPrefix(err.Error(), "x.yaml:"+wantPos+": ") {
		t.Errorf("error %q does not point at x.yaml:%s", err, wantPos)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not mention %q", err, want)
	}
}

// ---------------------------------------------------------------------------

func TestJSONDocumentedExamples(t *testing.T) {
	tests := []struct {
		name   string
		stages []string
		line   string
		want   map[string]string
	}{
		{
			name:   "using the log line",
			stages: []string{"expressions: {output: log, stream: stream, timestamp: time}"},
			line:   `{"log":"log message\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}`,
			want:   map[string]string{"output": "log message\n", "stream": "stderr", "timestamp": "2019-04-30T02:12:41.8443515Z"},
		},
		{
			name: "using extracted data",
			stages: []string{
				"expressions: {output: log, stream: stream, timestamp: time, extra: }",
				"expressions: {user: }\nsource: extra",
			},
			line: `{"log":"log message\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z","extra":"{\"user\":\"marco\"}"}`,
			want: map[string]string{
				"output": "log message\n", "stream": "stderr", "timestamp": "2019-04-30T02:12:41.8443515Z",
				"extra": `{"user":"marco"}`, "user": "marco",
			},
		},
		{
			name:   "a JMESPath literal for a key with a dot",
			stages: []string{`expressions: {output: log, stream: '"grpc.stream"', timestamp: time}`},
			line:   `{"log":"log message\n","grpc.stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}`,
			want:   map[string]string{"output": "log message\n", "stream": "stderr", "timestamp": "2019-04-30T02:12:41.8443515Z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stages []pipeline.Processor
			for _, s := range tt.stages {
				stages = append(stages, newParserStageForTest(t, "json", s))
			}
			out := parserRunForTest(nil, []string{tt.line}, stages...)
			if len(out) != 1 {
				t.Fatalf("got %d entries", len(out))
			}
			parserWantFieldsForTest(t, out[0].Extracted, tt.want)
			if string(out[0].Line) != tt.line {
				t.Errorf("line changed to %q", out[0].Line)
			}
		})
	}
}

func TestJSONValues(t *testing.T) {
	stage := `expressions:
  s: s
  n: n
  f: f
  big: big
  exp: exp
  t: t
  fl: fl
  nul: nul
  obj: obj
  arr: arr
  nested: a.b.c
  notobj: s.x
  missing: nope
  esc: esc
  key: '"we\"ird"'
  dup: dup
  unicode: u
`
	line := `{"s":"plain","n":-42,"f":1.50,"big":12345678901234567890,"exp":1e3,"t":true,"fl":false,"nul":null,` +
		`"obj":{ "b" : [1, 2 ,{"c":"x y"}] },"arr":[ ],"a":{"b":{"c":"deep"}},"esc":"tab\there \"q\" \u00e9\ud83d\ude00",` +
		`"we\"ird":"k","dup":1,"dup":"last","u":"\u002F\/"}`
	s := newParserStageForTest(t, "json", stage)
	out := parserRunForTest(nil, []string{line}, s)
	parserWantFieldsForTest(t, out[0].Extracted, map[string]string{
		"s":       "plain",
		"n":       "-42",
		"f":       "1.5",
		"big":     "12345678901234567000",
		"exp":     "1000",
		"t":       "true",
		"fl":      "false",
		"obj":     `{"b":[1,2,{"c":"x y"}]}`,
		"arr":     `[]`,
		"nested":  "deep",
		"esc":     "tab\there \"q\" é😀",
		"key":     "k",
		"dup":     "last",
		"unicode": "//",
	})
	if s.totalErrors() != 0 {
		t.Errorf("errors counted for a valid line: %v", s.totalErrors())
	}
}

func TestJSONNullRemovesEarlierValue(t *testing.T) {
	first := newParserStageForTest(t, "json", "expressions: {level: }")
	second := newParserStageForTest(t, "json", "expressions: {level: lvl}")
	out := parserRunForTest(nil, []string{`{"level":"info","lvl":null}`}, first, second)
	if _, ok := out[0].Extracted.Get("level"); ok {
		t.Errorf("a null result kept the earlier value: %v", out[0].Extracted)
	}
}

func TestJSONGeneralExpressions(t *testing.T) {
	stage := `expressions:
  first: items[0].name
  count: length(items)
  names: items[*].name
  keys: keys(meta)
  joined: join(',', items[*].name)
  simple: meta.env
  bad: abs(meta.env)
`
	s := newParserStageForTest(t, "json", stage)
	b := parserBatchForTest(nil, `{"items":[{"name":"a"},{"name":"b"}],"meta":{"env":"prod"}}`)
	b.Entries[0].Extracted = pipeline.Fields{{Name: "bad", Value: "before"}}
	s.Process(b)
	parserWantFieldsForTest(t, b.Entries[0].Extracted, map[string]string{
		"first": "a", "count": "2", "names": `["a","b"]`, "keys": `["env"]`, "joined": "a,b", "simple": "prod",
		// A run-time error leaves what was there, as in Promtail.
		"bad": "before",
	})
}

func TestJSONNullDocument(t *testing.T) {
	s := newParserStageForTest(t, "json", "expressions: {a: a, n: length(@)}")
	b := parserBatchForTest(nil, " null ")
	b.Entries[0].Extracted = pipeline.Fields{{Name: "a", Value: "old"}}
	s.Process(b)
	// Promtail decodes null into an empty map: keys are nil, length is 0.
	parserWantFieldsForTest(t, b.Entries[0].Extracted, map[string]string{"n": "0"})
	if s.totalErrors() != 0 {
		t.Error("null counted as malformed")
	}
}

func TestJSONMalformed(t *testing.T) {
	bad := []string{
		``, ` `, `i'm not json`, `[1,2]`, `"str"`, `42`, `true`, `{`, `{"a":1`, `{"a":1,}`, `{"a" 1}`, `{"a":01}`,
		`{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{"a":.5}`, `{"a":tru}`, `{"a":nul}`, `{"a":"x}`, "{\"a\":\"x\ny\"}",
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":[1,]}`, `{"a":[1 2]}`, `{"a":{"b"}}`, `{"a":1} x`, `{"a":1}{}`,
		`{a:1}`, `{'a':1}`, `{"a":NaN}`, `{"a":+1}`, "{\"a\":1}\v",
	}
	s := newParserStageForTest(t, "json", "expressions: {a: a}")
	b := parserBatchForTest(pipeline.Labels{{Name: "job", Value: "x"}}, bad...)
	s.Process(b)
	if len(b.Entries) != len(bad) {
		t.Fatalf("malformed lines were dropped without drop_malformed")
	}
	for i, e := range b.Entries {
		if string(e.Line) != bad[i] || len(e.Extracted) != 0 || e.Time != int64(1000+i) {
			t.Errorf("malformed %q changed: %+v", bad[i], e)
		}
	}
	if got := s.errors("malformed_json"); got != float64(len(bad)) {
		t.Errorf("malformed_json errors = %v, want %d", got, len(bad))
	}
}

func TestJSONDropMalformed(t *testing.T) {
	s := newParserStageForTest(t, "json", "expressions: {a: a}\ndrop_malformed: true")
	out := parserRunForTest(nil, []string{`{"a":1}`, `not json`, `{"a":2}`, `{"a":`}, s)
	if len(out) != 2 || string(out[0].Line) != `{"a":1}` || string(out[1].Line) != `{"a":2}` {
		t.Fatalf("kept %v", out)
	}
	if got := s.drops("malformed_json"); got != 2 {
		t.Errorf("dropped counter = %v, want 2", got)
	}
}

func TestJSONSource(t *testing.T) {
	s := newParserStageForTest(t, "json", "expressions: {user: }\nsource: extra")
	b := parserBatchForTest(nil, `{"user":"line"}`, `{"user":"line"}`, `{"user":"line"}`)
	b.Entries[0].Extracted = pipeline.Fields{{Name: "extra", Value: `{"user":"marco"}`}}
	b.Entries[2].Extracted = pipeline.Fields{{Name: "extra", Value: `not json`}}
	s.Process(b)
	parserWantFieldsForTest(t, b.Entries[0].Extracted, map[string]string{"extra": `{"user":"marco"}`, "user": "marco"})
	parserWantFieldsForTest(t, b.Entries[1].Extracted, map[string]string{})
	parserWantFieldsForTest(t, b.Entries[2].Extracted, map[string]string{"extra": "not json"})
	if s.errors("source_missing") != 1 || s.errors("malformed_json") != 1 {
		t.Errorf("source_missing=%v malformed_json=%v, want 1 and 1", s.errors("source_missing"), s.errors("malformed_json"))
	}
}

func TestJSONDeepNesting(t *testing.T) {
	s := newParserStageForTest(t, "json", "expressions: {a: a}")
	deep := `{"a":"x","b":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`
	ok := `{"a":"x","b":` + strings.Repeat(`{"c":`, 500) + "1" + strings.Repeat("}", 500) + `}`
	out := parserRunForTest(nil, []string{deep, ok}, s)
	if len(out[0].Extracted) != 0 || s.errors("malformed_json") != 1 {
		t.Errorf("nesting past the limit was accepted")
	}
	parserWantFieldsForTest(t, out[1].Extracted, map[string]string{"a": "x"})
}

func TestJSONConfigErrors(t *testing.T) {
	tests := []struct{ body, pos, want string }{
		{"expressions: {a: 'foo[', b: c}", "1:18", "could not compile JMESPath"},
		{"expressions: {}", "1:14", "expressions is required"},
		{"source: x", "1:1", "expressions is required"},
		{"expressions: [a]", "1:14", "must be a mapping"},
		{"expressions: {a: [x]}", "1:18", "must be a string"},
		{"expressions: {a: b}\nsource: ''", "2:9", "source must not be empty"},
		{"expressions: {a: b}\nsources: x", "2:1", "sources"},
		{"expressions: {a: b}\ndrop_malformed: maybe", "2:17", "boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			parserConfigErrorForTest(t, "json", tt.body, tt.pos, tt.want)
		})
	}
}

func TestJMESPathFieldPath(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{"a", []string{"a"}},
		{"a.b_2.C", []string{"a", "b_2", "C"}},
		{`"grpc.stream"`, []string{"grpc.stream"}},
		{`a."b c".d`, []string{"a", "b c", "d"}},
		{`"a\"b"`, []string{`a"b`}},
		{`"\u00e9"`, []string{"é"}},
		{"a[0]", nil}, {"a.b[*]", nil}, {"@", nil}, {"a | b", nil}, {"a .b", nil}, {"1a", nil}, {"a.", nil},
		{"length(a)", nil}, {"`1`", nil}, {`"a`, nil}, {"", nil},
	}
	for _, tt := range tests {
		got, ok := jmespathFieldPath(tt.expr)
		if ok != (tt.want != nil) || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("jmespathFieldPath(%q) = %q, %v; want %q", tt.expr, got, ok, tt.want)
		}
	}
}

// promtailJSONForTest is what Promtail's json stage extracts, computed the
// way it does: decode into a map, search with go-jmespath, convert.
// ok is false when Promtail finds the line malformed; skip is true when
// encoding/json and the scanner legitimately differ (numbers beyond
// float64).
func promtailJSONForTest(data []byte, exprs map[string]string) (out map[string]any, ok, skip bool) {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && strings.HasPrefix(te.Value, "number") {
			return nil, false, true
		}
		return nil, false, false
	}
	out = map[string]any{}
	for name, expr := range exprs {
		r, err := jmespath.Search(expr, m)
		if err != nil {
			continue
		}
		switch v := r.(type) {
		case nil:
		case string:
			out[name] = v
		case float64:
			out[name] = strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			out[name] = strconv.FormatBool(v)
		default:
			out[name] = v // compared as decoded JSON
		}
	}
	return out, true, false
}

var fuzzJSONExprs = map[string]string{
	"a": "a", "b": "b", "nested": "a.b", "deeper": "a.b.c", "quoted": `"x y"`, "general": "a.b[0]",
}

func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":"x","b":2}`, `{"a":{"b":{"c":true}},"x y":null}`, `{"a":{"b":[1,"2",{"c":3}]}}`, `null`, `[]`, `{"a":1e400}`,
		`{"a":"\ud800\u0041","b":"\\\/\"\b\f\n\r\t"}`, `{"a" : { "b" : [ 1.5e-3 , -0 ] } }`, `{"a":1,"a":{"b":"dup"}}`,
		`{"\u0061":"escaped key"}`, `{"a":"x"} `, `{"a":"x"}x`, `{"b":12345678901234567890}`, `{"b":0.1e1}`,
	} {
		f.Add([]byte(s))
	}
	stage := "expressions:\n"
	for name, expr := range fuzzJSONExprs {
		stage += fmt.Sprintf("  %s: '%s'\n", strconv.Quote(name), expr)
	}
	s := newParserStageForTest(f, "json", stage)
	f.Fuzz(func(t *testing.T, data []byte) {
		b := parserBatchForTest(nil, string(data))
		errsBefore := s.totalErrors()
		s.Process(b)
		if len(b.Entries) != 1 {
			t.Fatal("entry lost")
		}
		e := b.Entries[0]
		malformed := s.totalErrors() > errsBefore
		want, ok, skip := promtailJSONForTest(data, fuzzJSONExprs)
		if skip {
			return
		}
		if malformed == ok {
			t.Fatalf("malformed=%v but encoding/json ok=%v for %q", malformed, ok, data)
		}
		if !ok || !utf8.Valid(data) {
			return
		}
		got := parserFieldsForTest(e.Extracted)
		if len(got) != len(want) {
			t.Fatalf("extracted %q, Promtail would extract %v, from %q", got, want, data)
		}
		for name, w := range want {
			g, present := got[name]
			if !present {
				t.Fatalf("%s missing; want %v from %q", name, w, data)
			}
			if ws, isStr := w.(string); isStr {
				if g != ws {
					t.Fatalf("%s = %q, want %q from %q", name, g, ws, data)
				}
				continue
			}
			var gv any
			if err := json.Unmarshal([]byte(g), &gv); err != nil || !reflect.DeepEqual(gv, w) {
				t.Fatalf("%s = %s, want %v from %q", name, g, w, data)
			}
		}
	})
}

const jsonBenchLine = `{"ts":"2025-06-01T12:34:56.123456789Z","level":"info","tenant":"rentguy","caller":"api/handler.go:142",` +
	`"msg":"request served","path":"/api/v1/items?page=2","duration_ms":12.5}`

func BenchmarkJSON(b *testing.B) {
	s := newParserStageForTest(b, "json", "expressions: {level: level, tenant: tenant, ts: ts}")
	parserBenchForTest(b, s, jsonBenchLine)
}

func BenchmarkJSONGeneral(b *testing.B) {
	s := newParserStageForTest(b, "json", "expressions: {level: level, tenant: tenant, ts: 'ts || caller'}")
	parserBenchForTest(b, s, jsonBenchLine)
}

// parserBenchForTest runs batches of 1024 copies of line through s and
// reports per-line figures. Each batch is rebuilt from a template, as a
// source would emit fresh entries.
func parserBenchForTest(b *testing.B, s pipeline.Processor, lines ...string) {
	const n = 1024
	tmpl := make([]pipeline.Entry, n)
	labels := pipeline.Labels{{Name: "job", Value: "bench"}, {Name: "filename", Value: "/var/log/x.log"}}
	for i := range tmpl {
		l := lines[i%len(lines)]
		tmpl[i] = pipeline.Entry{Line: []byte(l), Labels: labels, Time: int64(i)}
	}
	batch := pipeline.NewBatch(n, nil)
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpuBefore := parserCPUTimeForTest()
	b.ResetTimer()
	for b.Loop() {
		batch.Entries = batch.Entries[:0]
		// Lines are never written in place by the stages, so the
		// template's line bytes can be shared by every round.
		batch.Entries = append(batch.Entries, tmpl...)
		s.Process(batch)
	}
	b.StopTimer()
	cpu := parserCPUTimeForTest() - cpuBefore
	runtime.ReadMemStats(&after)
	total := float64(b.N) * n
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/line")
	// CPU time is steadier than wall time on a shared machine.
	b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/line")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/line")
	if ps, ok := s.(*parserStageForTest); ok && ps.totalErrors() != 0 {
		b.Fatalf("the benchmark lines are not all well-formed: %v errors", ps.totalErrors())
	}
}

// parserCPUTimeForTest is the CPU time (user and system) the process has used.
func parserCPUTimeForTest() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
