package processors

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// newMetricsForTest builds a metrics processor from the YAML body of the
// stage, registering on reg (a fresh registry when nil).
func newMetricsForTest(t testing.TB, reg *prometheus.Registry, body string) (*metrics, *pipeline.Metrics, *prometheus.Registry, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("test YAML: %v", err)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := pipeline.NewTestMetrics()
	env := pipeline.Env{
		Name:       "metrics_under_test",
		Decoder:    pipeline.Decoder{File: "x.yaml"},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:    m,
		Registerer: reg,
	}
	p, err := pipeline.NewProcessor(env, "metrics", doc.Content[0], doc.Content[0])
	if err != nil {
		return nil, m, reg, err
	}
	return p.(*metrics), m, reg, nil
}

// metricsGatherForTest renders every sample as `name{a="1",b="2"}` to its
// value; histograms give their _bucket, _sum and _count samples.
func metricsGatherForTest(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	key := func(name string, lps []*dto.LabelPair, extra ...string) string {
		var parts []string
		for _, lp := range lps {
			parts = append(parts, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
		}
		parts = append(parts, extra...)
		sort.Strings(parts)
		return name + "{" + strings.Join(parts, ",") + "}"
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				out[key(mf.GetName(), m.GetLabel())] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key(mf.GetName(), m.GetLabel())] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					out[key(mf.GetName()+"_bucket", m.GetLabel(), fmt.Sprintf("le=%q", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)))] = float64(b.GetCumulativeCount())
				}
				out[key(mf.GetName()+"_bucket", m.GetLabel(), `le="+Inf"`)] = float64(h.GetSampleCount())
				out[key(mf.GetName()+"_sum", m.GetLabel())] = h.GetSampleSum()
				out[key(mf.GetName()+"_count", m.GetLabel())] = float64(h.GetSampleCount())
			}
		}
	}
	return out
}

func metricsCounterValueForTest(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// metricsEntry is an entry as earlier stages would leave it: stream
// labels and extracted fields given as "k=v" pairs.
func metricsEntry(line, labels string, extracted ...string) pipeline.Entry {
	e := pipeline.Entry{Line: []byte(line), Labels: relabelLabels(labels)}
	for _, kv := range extracted {
		k, v, _ := strings.Cut(kv, "=")
		e.Extracted.Set(k, v)
	}
	return e
}

func metricsRun(p pipeline.Processor, entries ...pipeline.Entry) *pipeline.Batch {
	b := pipeline.NewBatch(len(entries), nil)
	b.Entries = append(b.Entries, entries...)
	p.Process(b)
	return b
}

// The examples of Promtail's metrics stage documentation. The regex
// stages in front of the metrics stage there are replaced by the fields
// they extract.
func TestMetricsDocumentedExamples(t *testing.T) {
	tests := []struct {
		name    string
		stage   string
		entries []pipeline.Entry
		want    map[string]float64
	}{
		{
			name: "counter of lines and bytes per stream",
			stage: `
log_lines_total:
  type: Counter
  description: "total number of log lines"
  prefix: my_promtail_custom_
  max_idle_duration: 24h
  config:
    match_all: true
    action: inc
log_bytes_total:
  type: Counter
  description: "total bytes of log lines"
  prefix: my_promtail_custom_
  max_idle_duration: 24h
  config:
    match_all: true
    count_entry_bytes: true
    action: add`,
			entries: []pipeline.Entry{
				metricsEntry("hello", "job=a"),
				metricsEntry("hello world", "job=a"),
				metricsEntry("x", "job=b"),
			},
			want: map[string]float64{
				`my_promtail_custom_log_lines_total{job="a"}`: 2,
				`my_promtail_custom_log_lines_total{job="b"}`: 1,
				`my_promtail_custom_log_bytes_total{job="a"}`: 16,
				`my_promtail_custom_log_bytes_total{job="b"}`: 1,
			},
		},
		{
			name: "counter of lines where a regex group matched",
			stage: `
successful_orders_total:
  type: Counter
  description: "log lines with the message ` + "`order successful`" + `"
  source: order_success
  config:
    action: inc`,
			entries: []pipeline.Entry{
				metricsEntry("12:00 order successful id=1", "job=shop", "order_success=order successful"),
				metricsEntry("12:01 order failed id=2", "job=shop"),
				metricsEntry("12:02 order successful id=3", "job=shop", "order_success=order successful"),
			},
			want: map[string]float64{`promtail_custom_successful_orders_total{job="shop"}`: 2},
		},
		{
			name: "counters filtered by value",
			stage: `
successful_orders_total:
  type: Counter
  description: "successful orders"
  source: order_status
  config:
    value: success
    action: inc
failed_orders_total:
  type: Counter
  description: "failed orders"
  source: order_status
  config:
    value: fail
    action: inc`,
			entries: []pipeline.Entry{
				metricsEntry("a order_status=success b", "job=shop", "order_status=success"),
				metricsEntry("a order_status=fail b", "job=shop", "order_status=fail"),
				metricsEntry("a order_status=success b", "job=shop", "order_status=success"),
				metricsEntry("a order_status=pending b", "job=shop", "order_status=pending"),
			},
			want: map[string]float64{
				`promtail_custom_successful_orders_total{job="shop"}`: 2,
				`promtail_custom_failed_orders_total{job="shop"}`:     1,
			},
		},
		{
			name: "gauge adding the extracted value",
			stage: `
retries_total:
  type: Gauge
  description: "total retries"
  source: retries
  config:
    action: add`,
			entries: []pipeline.Entry{
				metricsEntry("x retries=3 y", "job=w", "retries=3"),
				metricsEntry("x retries=4 y", "job=w", "retries=4"),
			},
			want: map[string]float64{`promtail_custom_retries_total{job="w"}`: 7},
		},
		{
			name: "histogram of response times",
			stage: `
http_response_time_seconds:
  type: Histogram
  description: "length of each log line"
  source: response_time
  config:
    buckets: [0.001,0.0025,0.005,0.010,0.025,0.050]`,
			entries: []pipeline.Entry{
				metricsEntry("a", "job=h", "response_time=0.002"),
				metricsEntry("b", "job=h", "response_time=0.04"),
				metricsEntry("c", "job=h", "response_time=3ms"),
			},
			want: map[string]float64{
				`promtail_custom_http_response_time_seconds_bucket{job="h",le="0.001"}`:  0,
				`promtail_custom_http_response_time_seconds_bucket{job="h",le="0.0025"}`: 1,
				`promtail_custom_http_response_time_seconds_bucket{job="h",le="0.005"}`:  2,
				`promtail_custom_http_response_time_seconds_bucket{job="h",le="0.01"}`:   2,
				`promtail_custom_http_response_time_seconds_bucket{job="h",le="0.025"}`:  2,
				`promtail_custom_http_response_time_seconds_bucket{job="h",le="0.05"}`:   3,
				`promtail_custom_http_response_time_seconds_bucket{job="h",le="+Inf"}`:   3,
				`promtail_custom_http_response_time_seconds_sum{job="h"}`:                0.045,
				`promtail_custom_http_response_time_seconds_count{job="h"}`:              3,
			},
		},
		{
			// The "Supported values" section: numbers, durations in
			// seconds, and booleans as 1 and 0.
			name: "supported values",
			stage: `
v:
  type: Gauge
  config:
    action: add`,
			entries: []pipeline.Entry{
				metricsEntry("a", "job=v", "v=0.804"),
				metricsEntry("a", "job=v", "v=0.5ms"),
				metricsEntry("a", "job=v", "v=true"),
				metricsEntry("a", "job=v", "v=false"),
				metricsEntry("a", "job=v", "v=2"),
			},
			want: map[string]float64{`promtail_custom_v{job="v"}`: 0.804 + 0.0005 + 1 + 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _, reg, err := newMetricsForTest(t, nil, tc.stage)
			if err != nil {
				t.Fatal(err)
			}
			b := metricsRun(p, tc.entries...)
			if len(b.Entries) != len(tc.entries) {
				t.Fatalf("%d entries out, want %d", len(b.Entries), len(tc.entries))
			}
			got := metricsGatherForTest(t, reg)
			for k, want := range tc.want {
				if v, ok := got[k]; !ok || math.Abs(v-want) > 1e-9 {
					t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
				}
			}
			for k := range got {
				if _, ok := tc.want[k]; !ok {
					t.Errorf("unexpected sample %s = %v", k, got[k])
				}
			}
		})
	}
}

// The expectations of Promtail's own metrics stage test: one pipeline
// with a counter per value, a gauge that decrements, a histogram and the
// match_all counters, run over two lines.
func TestMetricsPromtailPipelineExpectations(t *testing.T) {
	p, _, reg, err := newMetricsForTest(t, nil, `
loki_count:
  type: Counter
  description: uhhhhhhh
  prefix: my_promtail_custom_
  source: app
  config:
    value: loki
    action: inc
bloki_count:
  type: Gauge
  description: blerrrgh
  source: app
  config:
    value: bloki
    action: dec
total_lines_count:
  type: Counter
  description: nothing to see here...
  config:
    match_all: true
    action: inc
total_bytes_count:
  type: Counter
  description: nothing to see here...
  config:
    match_all: true
    count_entry_bytes: true
    action: add
payload_size_bytes:
  type: Histogram
  description: grrrragh
  source: payload
  config:
    buckets: [10, 20]
`)
	if err != nil {
		t.Fatal(err)
	}
	line1 := strings.Repeat("a", 120)
	line2 := strings.Repeat("b", 135)
	metricsRun(p,
		metricsEntry(line1, "test=app", "app=loki", "payload=10"),
		metricsEntry(line2, "test=app", "app=bloki", "payload=20"))
	got := metricsGatherForTest(t, reg)
	want := map[string]float64{
		`my_promtail_custom_loki_count{test="app"}`:                       1,
		`promtail_custom_bloki_count{test="app"}`:                         -1,
		`promtail_custom_payload_size_bytes_bucket{le="10",test="app"}`:   1,
		`promtail_custom_payload_size_bytes_bucket{le="20",test="app"}`:   2,
		`promtail_custom_payload_size_bytes_bucket{le="+Inf",test="app"}`: 2,
		`promtail_custom_payload_size_bytes_sum{test="app"}`:              30,
		`promtail_custom_payload_size_bytes_count{test="app"}`:            2,
		`promtail_custom_total_bytes_count{test="app"}`:                   255,
		`promtail_custom_total_lines_count{test="app"}`:                   2,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("samples:\n got %v\nwant %v", got, want)
	}
}

func TestMetricsSeriesLabels(t *testing.T) {
	p, _, reg, err := newMetricsForTest(t, nil, `
lines:
  type: Counter
  config: {match_all: true, action: inc}
sizes:
  type: Histogram
  source: size
  config: {buckets: [1]}
`)
	if err != nil {
		t.Fatal(err)
	}
	ls := pipeline.Labels{{Name: "__path__", Value: "/x"}, {Name: "app", Value: "a"}, {Name: "bad-name", Value: "v"}, {Name: "le", Value: "z"}}
	metricsRun(p, pipeline.Entry{Labels: ls, Extracted: pipeline.Fields{{Name: "size", Value: "2"}}})
	got := metricsGatherForTest(t, reg)
	for _, k := range []string{
		`promtail_custom_lines{app="a",le="z"}`,
		`promtail_custom_sizes_count{app="a"}`,
	} {
		if got[k] != 1 {
			t.Errorf("%s = %v, want 1; all: %v", k, got[k], got)
		}
	}
}

func TestMetricsBadValuesCountErrorsAndPassEntries(t *testing.T) {
	p, m, reg, err := newMetricsForTest(t, nil, `
added:
  type: Counter
  source: n
  config: {action: add}
gauge:
  type: Gauge
  source: n
  config: {action: set}
hist:
  type: Histogram
  source: n
`)
	if err != nil {
		t.Fatal(err)
	}
	entries := []pipeline.Entry{
		metricsEntry("not a number", "job=a", "n=abc"),
		metricsEntry("negative", "job=a", "n=-2"),
		metricsEntry("nan", "job=a", "n=NaN"),
		metricsEntry("missing source", "job=a"),
	}
	b := metricsRun(p, entries...)
	if len(b.Entries) != 4 {
		t.Fatalf("%d entries passed, want 4", len(b.Entries))
	}
	for i, e := range b.Entries {
		if string(e.Line) != string(entries[i].Line) || e.Labels.String() != entries[i].Labels.String() {
			t.Errorf("entry %d changed: %q %v", i, e.Line, e.Labels)
		}
	}
	// "abc" fails for all three metrics; "-2" and "NaN" only for the counter.
	if v := metricsCounterValueForTest(t, m.StageErrors.WithLabelValues("metrics_under_test", "invalid_value")); v != 5 {
		t.Fatalf("invalid_value errors = %v, want 5", v)
	}
	got := metricsGatherForTest(t, reg)
	if _, ok := got[`promtail_custom_added{job="a"}`]; ok {
		t.Errorf("counter series created from bad values: %v", got)
	}
	if !math.IsNaN(got[`promtail_custom_gauge{job="a"}`]) {
		t.Errorf("gauge = %v, want NaN (set last)", got[`promtail_custom_gauge{job="a"}`])
	}
	if got[`promtail_custom_hist_count{job="a"}`] != 2 {
		t.Errorf("histogram count = %v, want 2", got[`promtail_custom_hist_count{job="a"}`])
	}

	// A label value that is not UTF-8 cannot be exposed: counted, and
	// the scrape of the other series still works.
	b = metricsRun(p, metricsEntry("x", "job=\xff", "n=1"))
	if len(b.Entries) != 1 {
		t.Fatal("entry with a bad label value was dropped")
	}
	if v := metricsCounterValueForTest(t, m.StageErrors.WithLabelValues("metrics_under_test", "invalid_labels")); v != 3 {
		t.Fatalf("invalid_labels errors = %v, want 3", v)
	}
	metricsGatherForTest(t, reg)
}

func TestMetricsGaugeActions(t *testing.T) {
	p, _, reg, err := newMetricsForTest(t, nil, `
g_set: {type: Gauge, source: v, config: {action: set}}
g_inc: {type: Gauge, source: v, config: {action: inc}}
g_dec: {type: Gauge, source: v, config: {action: DEC}}
g_add: {type: Gauge, source: v, config: {action: add}}
g_sub: {type: Gauge, source: v, config: {action: sub}}
c_inc: {type: counter, source: v, config: {action: Inc}}
c_add: {type: COUNTER, source: v, config: {action: add}}
`)
	if err != nil {
		t.Fatal(err)
	}
	metricsRun(p, metricsEntry("", "j=1", "v=5"), metricsEntry("", "j=1", "v=-1.5"), metricsEntry("", "j=1", "v=2"))
	got := metricsGatherForTest(t, reg)
	want := map[string]float64{
		`promtail_custom_g_set{j="1"}`: 2,
		`promtail_custom_g_inc{j="1"}`: 3,
		`promtail_custom_g_dec{j="1"}`: -3,
		`promtail_custom_g_add{j="1"}`: 5.5,
		`promtail_custom_g_sub{j="1"}`: -5.5,
		`promtail_custom_c_inc{j="1"}`: 3,
		`promtail_custom_c_add{j="1"}`: 7,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("samples:\n got %v\nwant %v", got, want)
	}
}

func TestMetricsIdleSeriesExpire(t *testing.T) {
	p, _, reg, err := newMetricsForTest(t, nil, `
lines:
  type: Counter
  max_idle_duration: 10m
  config: {match_all: true, action: inc}
`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	p.now = clock
	p.defs[0].coll.now = clock

	metricsRun(p, metricsEntry("", "s=a"), metricsEntry("", "s=b"))
	now = now.Add(6 * time.Minute)
	metricsRun(p, metricsEntry("", "s=b"))
	now = now.Add(6 * time.Minute)
	got := metricsGatherForTest(t, reg)
	if _, ok := got[`promtail_custom_lines{s="a"}`]; ok {
		t.Fatalf("series idle for 12m of a 10m window still served: %v", got)
	}
	if got[`promtail_custom_lines{s="b"}`] != 2 {
		t.Fatalf("active series: %v", got)
	}
	// An expired series starts over when its stream comes back, and the
	// processor's short cut does not keep updating the pruned one.
	now = now.Add(11 * time.Minute)
	b := pipeline.Labels{{Name: "s", Value: "b"}}
	metricsRun(p, pipeline.Entry{Labels: b})
	metricsRun(p, pipeline.Entry{Labels: b})
	got = metricsGatherForTest(t, reg)
	if got[`promtail_custom_lines{s="b"}`] != 2 || len(got) != 1 {
		t.Fatalf("after expiry: %v, want only s=b at 2", got)
	}
	// Processing alone prunes too, with nothing scraping.
	now = now.Add(time.Hour)
	metricsRun(p, metricsEntry("", "s=c"))
	if n := len(p.defs[0].coll.series); n != 1 {
		t.Fatalf("%d series held after an idle hour, want 1", n)
	}
}

// The same definition in two stages (two scrape configs) is one metric
// whose series add up.
func TestMetricsSharedDefinition(t *testing.T) {
	def := `
lines:
  type: Counter
  description: lines seen
  config: {match_all: true, action: inc}
`
	p1, _, reg, err := newMetricsForTest(t, nil, def)
	if err != nil {
		t.Fatal(err)
	}
	p2, _, _, err := newMetricsForTest(t, reg, def)
	if err != nil {
		t.Fatal(err)
	}
	metricsRun(p1, metricsEntry("", "job=x"))
	metricsRun(p2, metricsEntry("", "job=x"), metricsEntry("", "job=y"))
	got := metricsGatherForTest(t, reg)
	if got[`promtail_custom_lines{job="x"}`] != 2 || got[`promtail_custom_lines{job="y"}`] != 1 {
		t.Fatalf("samples: %v", got)
	}

	_, _, _, err = newMetricsForTest(t, reg, `
lines:
  type: Gauge
  description: lines seen
  config: {action: inc}
`)
	if err == nil || !strings.Contains(err.Error(), "x.yaml:2:1: metric promtail_custom_lines is already defined by another metrics stage as a counter") {
		t.Fatalf("error = %v", err)
	}
	_, _, _, err = newMetricsForTest(t, reg, `
lines:
  type: Counter
  description: other help
  config: {match_all: true, action: inc}
`)
	if err == nil || !strings.Contains(err.Error(), "x.yaml:2:1: metric promtail_custom_lines:") {
		t.Fatalf("error = %v", err)
	}
}

func TestMetricsConcurrentScrape(t *testing.T) {
	p, _, reg, err := newMetricsForTest(t, nil, `
lines:
  type: Counter
  max_idle_duration: 1s
  config: {match_all: true, action: inc}
h:
  type: Histogram
  source: v
`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				if _, err := reg.Gather(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for i := 0; i < 2000; i++ {
		metricsRun(p, metricsEntry("", "s="+strconv.Itoa(i%50), "v=1"))
	}
	close(stop)
	wg.Wait()
}

func TestMetricsConfigErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"empty", "{}", "x.yaml:1:1: empty metric stage configuration"},
		{"not a mapping", "[a]", "x.yaml:1:1: metrics: expected a mapping"},
		{"bad type", "m:\n  type: Pipe_line", "x.yaml:2:9: invalid metric type \"pipe_line\""},
		{"no type", "m:\n  description: x", "x.yaml:2:3: invalid metric type \"\""},
		{"unknown key", "m:\n  type: Counter\n  sourc: x", `x.yaml:3:3: unknown key "sourc" (did you mean "source"?)`},
		{"idle too short", "m:\n  type: Counter\n  max_idle_duration: 500ms\n  config: {action: inc}", "x.yaml:3:22: max_idle_duration less than 1s not allowed"},
		{"idle not a duration", "m:\n  type: Counter\n  max_idle_duration: 10f", `x.yaml:3:22: invalid duration "10f"`},
		{"counter without action", "m:\n  type: Counter\n  config: {value: x}", "x.yaml:3:11: counter action must be defined"},
		{"counter without config", "m:\n  type: Counter", "x.yaml:2:3: counter action must be defined"},
		{"counter bad action", "m:\n  type: Counter\n  config:\n    action: set", "x.yaml:4:13: action set is not valid"},
		{"match_all with value", "m:\n  type: Counter\n  config: {match_all: true, value: x, action: inc}", "x.yaml:3:11: `match_all: true` cannot be combined with `value`"},
		{"count bytes without match_all", "m:\n  type: Counter\n  config: {count_entry_bytes: true, action: add}", "x.yaml:3:11: `count_entry_bytes: true` can only be set with `match_all: true`"},
		{"count bytes with inc", "m:\n  type: Counter\n  config: {match_all: true, count_entry_bytes: true, action: inc}", "x.yaml:3:11: `count_entry_bytes: true` can only be used with `action: add`"},
		{"match_all add without bytes", "m:\n  type: Counter\n  config: {match_all: true, action: add}", "x.yaml:3:11: `match_all: true` with `action: add` needs `count_entry_bytes: true`"},
		{"gauge bad action", "m:\n  type: Gauge\n  config: {action: mul}", "x.yaml:3:20: action mul is not valid"},
		{"gauge key of a counter", "m:\n  type: Gauge\n  config: {action: inc, match_all: true}", `x.yaml:3:25: unknown key "match_all"`},
		{"histogram unsorted buckets", "m:\n  type: Histogram\n  config: {buckets: [2, 1]}", "x.yaml:3:21: histogram buckets must be in increasing order"},
		{"histogram bucket not a number", "m:\n  type: Histogram\n  config: {buckets: [a]}", `x.yaml:3:22: invalid number value "a"`},
		{"bad metric name", "bad-name:\n  type: Counter\n  config: {action: inc}", `x.yaml:1:1: "promtail_custom_bad-name" is not a valid Prometheus metric name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := newMetricsForTest(t, nil, tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestMetricsSteadyStateDoesNotAllocate(t *testing.T) {
	p, _, _, err := newMetricsForTest(t, nil, `
lines: {type: Counter, config: {match_all: true, action: inc}}
bytes: {type: Counter, config: {match_all: true, count_entry_bytes: true, action: add}}
status: {type: Counter, config: {value: "500", action: inc}}
latency: {type: Histogram, config: {buckets: [0.1, 1]}}
`)
	if err != nil {
		t.Fatal(err)
	}
	sets := []pipeline.Labels{relabelLabels("job=a,level=info"), relabelLabels("job=a,level=warn")}
	line := []byte("GET /x 500 0.2")
	ex := pipeline.Fields{{Name: "status", Value: "500"}, {Name: "latency", Value: "0.2"}}
	b := pipeline.NewBatch(64, nil)
	fill := func() {
		b.Entries = b.Entries[:0]
		for i := 0; i < 64; i++ {
			b.Entries = append(b.Entries, pipeline.Entry{Line: line, Labels: sets[i%2], Extracted: ex})
		}
	}
	fill()
	p.Process(b)
	if allocs := testing.AllocsPerRun(50, func() { fill(); p.Process(b) }); allocs != 0 {
		t.Fatalf("%v allocations per batch in steady state, want 0", allocs)
	}
}

func BenchmarkMetrics(b *testing.B) {
	p, _, _, err := newMetricsForTest(b, nil, `
lines: {type: Counter, config: {match_all: true, action: inc}}
bytes: {type: Counter, config: {match_all: true, count_entry_bytes: true, action: add}}
status: {type: Counter, config: {value: "500", action: inc}}
latency: {type: Histogram, config: {buckets: [0.1, 1]}}
`)
	if err != nil {
		b.Fatal(err)
	}
	sets := []pipeline.Labels{relabelLabels("job=a,level=info"), relabelLabels("job=a,level=warn")}
	line := []byte("GET /x 500 0.2")
	ex := pipeline.Fields{{Name: "status", Value: "500"}, {Name: "latency", Value: "0.2"}}
	const n = 256
	batch := pipeline.NewBatch(n, nil)
	perLine := startPerLineForRelabel(b)
	for i := 0; i < b.N; i++ {
		batch.Entries = batch.Entries[:0]
		for j := 0; j < n; j++ {
			batch.Entries = append(batch.Entries, pipeline.Entry{Line: line, Labels: sets[(j/8)%2], Extracted: ex})
		}
		p.Process(batch)
	}
	perLine(n)
}
