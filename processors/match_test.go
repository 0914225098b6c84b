package processors

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// Stand-ins for stages other people write, so match is tested with
// nested stages of every kind: parsing, labelling, output and carrying.
func init() {
	// test_match_json: {expressions: {name: key}} sets extracted fields
	// from top-level JSON keys (key defaults to name).
	pipeline.RegisterProcessor("test_match_json", func(env pipeline.Env, n *yaml.Node) (pipeline.Processor, error) {
		var cfg struct {
			Expressions map[string]string `yaml:"expressions"`
		}
		if err := env.Decoder.Decode(n, &cfg); err != nil {
			return nil, err
		}
		return matchTestStage(func(e *pipeline.Entry) {
			var obj map[string]any
			if json.Unmarshal(e.Line, &obj) != nil {
				return
			}
			for name, key := range cfg.Expressions {
				if key == "" {
					key = name
				}
				if v, ok := obj[key]; ok {
					if s, ok := v.(string); ok {
						e.Extracted.Set(name, s)
					} else {
						j, _ := json.Marshal(v)
						e.Extracted.Set(name, string(j))
					}
				}
			}
		}), nil
	})
	// test_match_labels: {name: source} sets labels from extracted fields.
	pipeline.RegisterProcessor("test_match_labels", func(env pipeline.Env, n *yaml.Node) (pipeline.Processor, error) {
		cfg := map[string]string{}
		if err := env.Decoder.Decode(n, &cfg); err != nil {
			return nil, err
		}
		return matchTestStage(func(e *pipeline.Entry) {
			for name, src := range cfg {
				if src == "" {
					src = name
				}
				if v, ok := e.Extracted.Get(src); ok {
					e.Labels = e.Labels.Set(name, v)
				}
			}
		}), nil
	})
	// test_match_output: {source: name} makes the field the line.
	pipeline.RegisterProcessor("test_match_output", func(env pipeline.Env, n *yaml.Node) (pipeline.Processor, error) {
		var cfg struct {
			Source string `yaml:"source"`
		}
		if err := env.Decoder.Decode(n, &cfg); err != nil {
			return nil, err
		}
		return matchTestStage(func(e *pipeline.Entry) {
			if v, ok := e.Extracted.Get(cfg.Source); ok {
				e.Line = []byte(v)
			}
		}), nil
	})
	// test_match_upper upper-cases the line.
	pipeline.RegisterProcessor("test_match_upper", func(env pipeline.Env, n *yaml.Node) (pipeline.Processor, error) {
		return matchTestStage(func(e *pipeline.Entry) {
			e.Line = []byte(strings.ToUpper(string(e.Line)))
		}), nil
	})
	// test_match_twice duplicates every entry: a nested stage may add
	// entries.
	pipeline.RegisterProcessor("test_match_twice", func(env pipeline.Env, n *yaml.Node) (pipeline.Processor, error) {
		return matchTwice{}, nil
	})
}

type matchTestStage func(e *pipeline.Entry)

func (f matchTestStage) Process(b *pipeline.Batch) {
	for i := range b.Entries {
		f(&b.Entries[i])
	}
}

type matchTwice struct{}

func (matchTwice) Process(b *pipeline.Batch) {
	n := len(b.Entries)
	for i := 0; i < n; i++ {
		b.Entries = append(b.Entries, b.Entries[i])
	}
}

// Documented by Promtail: https://grafana.com/docs/loki/latest/send-data/promtail/stages/match/
func TestMatchDocumentedExample(t *testing.T) {
	procs, reg := ftPipeline(t, `
- test_match_json:
    expressions:
      app:
- test_match_labels:
    app:
- match:
    selector: '{app="loki"}'
    stages:
    - test_match_json:
        expressions:
          msg: message
- match:
    pipeline_name: "app2"
    selector: '{app="pokey"}'
    action: keep
    stages:
    - test_match_json:
        expressions:
          msg: msg
- match:
    selector: '{app="promtail"} |~ ".*noisy error.*"'
    action: drop
    drop_counter_reason: promtail_noisy_error
- test_match_output:
    source: msg
`)
	b := ftBatch(
		pipeline.Entry{Line: []byte(`{ "time":"2012-11-01T22:08:41+00:00", "app":"loki", "component": ["parser","type"], "level" : "WARN", "message" : "app1 log line" }`)},
		pipeline.Entry{Line: []byte(`{ "time":"2012-11-01T22:08:41+00:00", "app":"promtail", "component": ["parser","type"], "level" : "ERROR", "message" : "foo noisy error" }`)},
	)
	ftRun(procs, b)
	if len(b.Entries) != 1 {
		t.Fatalf("got %q, want the noisy promtail line dropped", ftLines(b))
	}
	e := b.Entries[0]
	if string(e.Line) != "app1 log line" || e.Labels.Get("app") != "loki" {
		t.Fatalf("got line %q labels %s", e.Line, e.Labels)
	}
	if got := ftCounter(t, reg, "logentry_dropped_lines_total", map[string]string{"reason": "promtail_noisy_error"}); got != 1 {
		t.Fatalf("logentry_dropped_lines_total{reason=promtail_noisy_error} = %v, want 1", got)
	}
	if got := ftCounter(t, reg, "vigil_dropped_entries_total", map[string]string{"reason": "promtail_noisy_error", "component": "p/4/match"}); got != 1 {
		t.Fatalf("vigil_dropped_entries_total = %v, want 1", got)
	}
}

// Promtail's own matcher table: whether the nested stage ran, or the entry
// was dropped, for a selector and a label set.
func TestMatchSelectsByLabelsAndLine(t *testing.T) {
	tests := []struct {
		selector   string
		labels     map[string]string
		action     string
		shouldDrop bool
		shouldRun  bool
	}{
		{`{foo="bar"} |= "foo"`, map[string]string{"foo": "bar"}, "keep", false, true},
		{`{foo="bar"} |~ "foo"`, map[string]string{"foo": "bar"}, "keep", false, true},
		{`{foo="bar"} |= "bar"`, map[string]string{"foo": "bar"}, "keep", false, false},
		{`{foo="bar"} |~ "bar"`, map[string]string{"foo": "bar"}, "keep", false, false},
		{`{foo="bar"} != "bar"`, map[string]string{"foo": "bar"}, "keep", false, true},
		{`{foo="bar"} !~ "bar"`, map[string]string{"foo": "bar"}, "keep", false, true},
		{`{foo="bar"} != "foo"`, map[string]string{"foo": "bar"}, "keep", false, false},
		{`{foo="bar"} |= "foo"`, map[string]string{"foo": "bar"}, "drop", true, false},
		{`{foo="bar"} |~ "foo"`, map[string]string{"foo": "bar"}, "drop", true, false},
		{`{foo="bar"} |= "bar"`, map[string]string{"foo": "bar"}, "drop", false, false},
		{`{foo="bar"} |~ "bar"`, map[string]string{"foo": "bar"}, "drop", false, false},
		{`{foo="bar"} != "bar"`, map[string]string{"foo": "bar"}, "drop", true, false},
		{`{foo="bar"} !~ "bar"`, map[string]string{"foo": "bar"}, "drop", true, false},
		{`{foo="bar"} != "foo"`, map[string]string{"foo": "bar"}, "drop", false, false},
		{`{foo="bar"}`, map[string]string{"foo": "bar"}, "keep", false, true},
		{`{foo=""}`, map[string]string{"foo": "bar"}, "keep", false, false},
		{`{foo=""}`, map[string]string{}, "keep", false, true},
		{`{foo!="bar"}`, map[string]string{"foo": "bar"}, "keep", false, false},
		{`{foo!="bar"}`, map[string]string{"foo": "bar"}, "drop", false, false},
		{`{foo="bar",bar!="test"}`, map[string]string{"foo": "bar"}, "keep", false, true},
		{`{foo="bar",bar!="test"}`, map[string]string{"foo": "bar"}, "drop", true, false},
		{`{foo="bar",bar!="test"}`, map[string]string{"foo": "bar", "bar": "test"}, "keep", false, false},
		{`{foo="bar",bar=~"te.*"}`, map[string]string{"foo": "bar", "bar": "test"}, "drop", true, false},
		{`{foo="bar",bar=~"te.*"}`, map[string]string{"foo": "bar", "bar": "test"}, "keep", false, true},
		{`{foo="bar",bar!~"te.*"}`, map[string]string{"foo": "bar", "bar": "test"}, "keep", false, false},
		{`{foo="bar",bar!~"te.*"}`, map[string]string{"foo": "bar", "bar": "test"}, "drop", false, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v/%s", tt.selector, tt.labels, tt.action), func(t *testing.T) {
			cfg := fmt.Sprintf("selector: '%s'\naction: %s\n", tt.selector, tt.action)
			if tt.action == "keep" {
				cfg += "stages:\n- test_match_labels: {test_label: }\n"
			}
			p, _ := ftBuild(t, "match", cfg)
			e := pipeline.Entry{Line: []byte("foo"), Labels: pipeline.LabelsFromMap(tt.labels)}
			e.Extracted.Set("test_label", "unimportant value")
			b := ftBatch(e)
			p.Process(b)
			if tt.shouldDrop {
				if len(b.Entries) != 0 {
					t.Fatal("entry should have been dropped")
				}
				return
			}
			if len(b.Entries) != 1 {
				t.Fatalf("entry dropped")
			}
			ran := b.Entries[0].Labels.Get("test_label") != ""
			if ran != tt.shouldRun {
				t.Fatalf("nested stage ran = %v, want %v", ran, tt.shouldRun)
			}
		})
	}
}

// Nested stages see only the selected entries, and every entry keeps its
// place in the batch.
func TestMatchKeepsOrderAroundSelectedRuns(t *testing.T) {
	p, _ := ftBuild(t, "match", `
selector: '{app="a"}'
stages:
- test_match_upper:
- drop: {expression: "DROP ME"}
- test_match_twice:
`)
	b := ftBatch(
		ftEntry("a1", "app", "a"),
		ftEntry("b1", "app", "b"),
		ftEntry("a2", "app", "a"),
		ftEntry("a3 drop me", "app", "a"),
		ftEntry("b2", "app", "b"),
		ftEntry("b3", "app", "b"),
		ftEntry("a4", "app", "a"),
	)
	p.Process(b)
	want := []string{"A1", "A1", "b1", "A2", "A2", "b2", "b3", "A4", "A4"}
	if got := ftLines(b); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestMatchWholeBatchAndNoneSelected(t *testing.T) {
	p, _ := ftBuild(t, "match", "selector: '{app=\"a\"}'\nstages: [{test_match_upper: }]\n")
	b := ftBatch(ftEntry("x", "app", "a"), ftEntry("y", "app", "a"))
	p.Process(b)
	if got := ftLines(b); fmt.Sprint(got) != "[X Y]" {
		t.Fatalf("all selected: %q", got)
	}
	b = ftBatch(ftEntry("x", "app", "b"), ftEntry("y", "app", "c"))
	p.Process(b)
	if got := ftLines(b); fmt.Sprint(got) != "[x y]" {
		t.Fatalf("none selected: %q", got)
	}
	b = ftBatch()
	p.Process(b)
	if len(b.Entries) != 0 {
		t.Fatal("entries from nowhere")
	}
}

// Documented by Promtail (sampling stage): sampling nested in a match
// only thins out the selected stream.
func TestMatchNestedSamplingDocumentedExample(t *testing.T) {
	procs, reg := ftPipeline(t, `
- test_match_json:
    expressions:
      app:
- test_match_labels:
    app:
- match:
    pipeline_name: "app2"
    selector: '{app="poki"}'
    stages:
    - sampling:
        rate: 0.1
`)
	var in []pipeline.Entry
	for i := 0; i < 2000; i++ {
		in = append(in, pipeline.Entry{Line: []byte(`{"app":"poki"}`)}, pipeline.Entry{Line: []byte(`{"app":"other"}`)})
	}
	b := ftBatch(in...)
	ftRun(procs, b)
	poki, other := 0, 0
	for _, e := range b.Entries {
		switch e.Labels.Get("app") {
		case "poki":
			poki++
		case "other":
			other++
		}
	}
	if other != 2000 {
		t.Fatalf("%d of 2000 unselected entries left, want all", other)
	}
	if poki < 100 || poki > 300 {
		t.Fatalf("%d of 2000 sampled entries kept, want about 200", poki)
	}
	if got := ftCounter(t, reg, "logentry_dropped_lines_total", map[string]string{"reason": "sampling_stage"}); got != float64(2000-poki) {
		t.Fatalf("dropped counter %v, want %d", got, 2000-poki)
	}
	// Nested stages are named after the match and its pipeline_name.
	if got := ftCounter(t, reg, "vigil_dropped_entries_total", map[string]string{"component": "p/2/match/app2/0/sampling"}); got != float64(2000-poki) {
		t.Fatalf("nested stage's vigil_dropped_entries_total = %v, want %d", got, 2000-poki)
	}
}

func TestMatchIsAFlusherOnlyWithACarryingStage(t *testing.T) {
	plain, _ := ftBuild(t, "match", "selector: '{a=\"b\"}'\nstages: [{test_match_upper: }]\n")
	if _, ok := plain.(pipeline.Flusher); ok {
		t.Fatal("match without a carrying stage is a Flusher: the runner would tick it for nothing")
	}
	dropping, _ := ftBuild(t, "match", "selector: '{a=\"b\"}'\naction: drop\n")
	if _, ok := dropping.(pipeline.Flusher); ok {
		t.Fatal("dropping match is a Flusher")
	}
	nested, _ := ftBuild(t, "match", `
selector: '{a="b"}'
stages:
- match:
    selector: '{c="d"}'
    stages: [{multiline: {firstline: "^S"}}]
`)
	if _, ok := nested.(pipeline.Flusher); !ok {
		t.Fatal("match around a match around multiline is not a Flusher")
	}
}

// A nested multiline carries blocks across batches: the match flushes
// them through the nested stages after it, and the source batch waits for
// the flushed entries.
func TestMatchFlushesNestedCarriedEntries(t *testing.T) {
	p, _ := ftBuild(t, "match", `
selector: '{app="java"}'
stages:
- multiline:
    firstline: '^\d'
    max_wait_time: 1s
- test_match_upper:
`)
	f, ok := p.(pipeline.Flusher)
	if !ok {
		t.Fatal("match with a nested multiline is not a Flusher")
	}
	var settled atomic.Int32
	b := pipeline.NewBatch(4, func() { settled.Add(1) })
	b.Entries = append(b.Entries,
		ftEntry("1 exception", "app", "java"),
		ftEntry("other app", "app", "go"),
		ftEntry("  at frame", "app", "java"),
	)
	p.Process(b)
	if got := ftLines(b); fmt.Sprint(got) != "[other app]" {
		t.Fatalf("after Process: %q", got)
	}
	b.Settle() // the runner's reference, once the sinks have the batch
	if settled.Load() != 0 {
		t.Fatal("source batch settled while multiline carries its lines")
	}
	if out := f.Flush(time.Now(), false); out != nil {
		t.Fatalf("flushed before max_wait_time: %q", ftLines(out))
	}
	out := f.Flush(time.Now().Add(2*time.Second), false)
	if out == nil {
		t.Fatal("nothing flushed after max_wait_time")
	}
	if got := ftLines(out); fmt.Sprint(got) != fmt.Sprint([]string{"1 EXCEPTION\n  AT FRAME"}) {
		t.Fatalf("flushed %q, want the block through the stages after multiline", got)
	}
	if settled.Load() != 0 {
		t.Fatal("source batch settled before the flushed batch")
	}
	out.Settle()
	if settled.Load() != 1 {
		t.Fatal("source batch not settled after the flushed batch")
	}
}

// Blocks of two nested carrying stages come out in one batch, and a flushed
// batch whose entries a later nested stage drops is settled.
func TestMatchFlushCombinesAndSettles(t *testing.T) {
	p, _ := ftBuild(t, "match", `
selector: '{app=~"x|y"}'
stages:
- multiline: {firstline: '^A'}
- drop: {expression: "^A1"}
- multiline: {firstline: '^B'}
`)
	f := p.(pipeline.Flusher)
	var settled atomic.Int32
	b := pipeline.NewBatch(0, func() { settled.Add(1) })
	b.Entries = append(b.Entries, ftEntry("A1", "app", "x"))
	p.Process(b)
	b.Settle()
	if out := f.Flush(time.Now().Add(time.Hour), true); out != nil {
		t.Fatalf("flushed %q, want the dropped block gone", ftLines(out))
	}
	if settled.Load() != 1 {
		t.Fatal("a batch whose carried entry was dropped never settled")
	}

	// Stream x's block is carried by the first multiline, stream y's by
	// the second: one flush returns both.
	settled.Store(0)
	b = pipeline.NewBatch(0, func() { settled.Add(1) })
	b.Entries = append(b.Entries, ftEntry("A2", "app", "x"), ftEntry("B1", "app", "y"), ftEntry("more", "app", "y"))
	p.Process(b)
	if len(b.Entries) != 0 {
		t.Fatalf("left in the batch: %q", ftLines(b))
	}
	b.Settle()
	out := f.Flush(time.Now().Add(time.Hour), true)
	if out == nil {
		t.Fatal("nothing flushed")
	}
	if got := ftLines(out); fmt.Sprint(got) != fmt.Sprint([]string{"A2", "B1\nmore"}) {
		t.Fatalf("flushed %q", got)
	}
	if settled.Load() != 0 {
		t.Fatal("settled before the flushed batch")
	}
	out.Settle()
	if settled.Load() != 1 {
		t.Fatal("not settled after the flushed batch")
	}
}

func TestMatchConfigErrors(t *testing.T) {
	tests := []struct {
		name, cfg, want string
	}{
		{"empty pipeline_name", "selector: '{a=\"b\"}'\npipeline_name: \"\"\nstages: [{test_match_upper: }]\n", `x.yaml:2:16: match stage: pipeline_name may be omitted but not empty`},
		{"no selector", "stages: [{test_match_upper: }]\n", `x.yaml:1:1: match stage needs a selector`},
		{"bad action", "selector: '{a=\"b\"}'\naction: maybe\n", `x.yaml:2:9: match stage: action must be keep or drop, not "maybe"`},
		{"keep without stages", "selector: '{a=\"b\"}'\n", `x.yaml:1:1: match stage with action keep needs at least one stage`},
		{"drop with stages", "selector: '{a=\"b\"}'\naction: drop\nstages: [{test_match_upper: }]\n", `x.yaml:3:9: match stage with action drop cannot have stages`},
		{"bad selector", "selector: '{a=\"b}'\naction: drop\n", `x.yaml:1:11: match stage: invalid selector "{a=\"b}": at character 4: unterminated string`},
		{"bad selector regexp", "selector: '{a=~\"(\"}'\naction: drop\n", `x.yaml:1:11: match stage: invalid selector`},
		{"empty selector", "selector: '{}'\naction: drop\n", `x.yaml:1:11: match stage: invalid selector "{}": at character 2: expected a label name`},
		{"unknown nested stage", "selector: '{a=\"b\"}'\nstages:\n- jsn: {}\n", `x.yaml:3:3: unknown stage "jsn"`},
		{"nested stage error", "selector: '{a=\"b\"}'\nstages:\n- multiline:\n    firstline: '('\n", `x.yaml:4:16: multiline stage: invalid firstline`},
		{"stages not a list", "selector: '{a=\"b\"}'\nstages: {test_match_upper: }\n", `x.yaml:2:9: expected a list of stages`},
		{"unknown key", "selector: '{a=\"b\"}'\nstage: []\n", `x.yaml:2:1: unknown key "stage"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ftBuildErr(t, "match", tt.cfg)
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("error %q, want prefix %q", got, tt.want)
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	p, _ := ftBuild(b, "match", `
selector: '{app="api"} |= "error"'
action: drop
`)
	api := pipeline.Labels{{Name: "app", Value: "api"}}
	web := pipeline.Labels{{Name: "app", Value: "web"}}
	entries := make([]pipeline.Entry, 1024)
	for i := range entries {
		e := pipeline.Entry{Line: []byte(`level=info msg="request served" path=/api/v1/users status=200 duration=12ms`), Labels: api}
		if i%10 == 0 {
			e.Line = []byte(`level=error msg="request failed" path=/api/v1/users status=500 duration=12ms`)
		}
		if i%3 == 0 {
			e.Labels = web
		}
		entries[i] = e
	}
	ftBench(b, p, entries)
}

func BenchmarkMatchKeepNested(b *testing.B) {
	p, _ := ftBuild(b, "match", `
selector: '{app="api"}'
stages:
- drop: {longer_than: 1kb}
`)
	api := pipeline.Labels{{Name: "app", Value: "api"}}
	web := pipeline.Labels{{Name: "app", Value: "web"}}
	entries := make([]pipeline.Entry, 1024)
	for i := range entries {
		e := pipeline.Entry{Line: []byte(`level=info msg="request served" path=/api/v1/users status=200 duration=12ms`), Labels: api}
		if (i/64)%2 == 1 { // runs of 64 entries per stream, as batches from two files interleave
			e.Labels = web
		}
		entries[i] = e
	}
	ftBench(b, p, entries)
}
