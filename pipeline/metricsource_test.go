package pipeline

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

var testMetricsDesc = prometheus.NewDesc("test_metrics_source_value", "A value from a test metrics source.", nil, nil)

type testMetricsCollector struct{ v float64 }

func (c testMetricsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- testMetricsDesc }
func (c testMetricsCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(testMetricsDesc, prometheus.GaugeValue, c.v)
}

func init() {
	RegisterMetricsSource("test_metrics", func(env Env, n *yaml.Node) (prometheus.Collector, error) {
		var c struct {
			Value float64 `yaml:"value"`
		}
		if err := env.Decoder.Decode(n, &c); err != nil {
			return nil, err
		}
		return testMetricsCollector{c.Value}, nil
	})
}

func gatherValue(t *testing.T, reg *prometheus.Registry) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "test_metrics_source_value" {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestMetricsSourceAlone(t *testing.T) {
	cfg := mustLoad(t, "sources:\n  m: {type: test_metrics, value: 1}\n")
	reg := prometheus.NewRegistry()
	g, err := BuildWith(cfg, quiet, NewTestMetrics(), reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := gatherValue(t, reg); ok {
		t.Fatal("served before the graph started")
	}
	g.Start()
	if v, ok := gatherValue(t, reg); !ok || v != 1 {
		t.Fatalf("value %v %v", v, ok)
	}
	if err := g.Stop(0); err != nil {
		t.Fatal(err)
	}
	if _, ok := gatherValue(t, reg); ok {
		t.Fatal("still served after stop")
	}
}

func TestMetricsSourceBesideLogPipelines(t *testing.T) {
	// Not used by any pipeline, and that is fine for a metrics source.
	mustLoad(t, `
sources:
  m: {type: test_metrics}
  src: {type: test_chan}
sinks: {snk: {type: test_hold}}
pipelines:
  p: {sources: [src], sinks: [snk]}
`)
	_, err := Load("test.yaml", []byte(`
sources:
  m: {type: test_metrics}
  src: {type: test_chan}
sinks: {snk: {type: test_hold}}
pipelines:
  p: {sources: [src, m], sinks: [snk]}
`), LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), `test.yaml:7:22: pipeline "p" uses source "m", a metrics source (type test_metrics): it is served on /metrics`) {
		t.Fatalf("got %v", err)
	}
	// A log source alone still needs a pipeline.
	if _, err := Load("test.yaml", []byte("sources: {src: {type: test_chan}}\n"), LoadOptions{}); err == nil {
		t.Fatal("log source without pipeline accepted")
	}
}

func TestMetricsSourceReloadSwaps(t *testing.T) {
	src := "sources:\n  m: {type: test_metrics, value: 1}\n"
	a := NewAgent(quiet, func() (*Config, error) { return Load("test.yaml", []byte(src), LoadOptions{}) })
	cfg, _ := a.Load()
	if err := a.Start(cfg); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	if v, _ := gatherValue(t, a.Registry); v != 1 {
		t.Fatalf("value %v", v)
	}
	src = "sources:\n  m: {type: test_metrics, value: 2}\n"
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if v, _ := gatherValue(t, a.Registry); v != 2 {
		t.Fatalf("after reload: value %v", v)
	}
	// A bad reload keeps the old one serving.
	src = "sources:\n  m: {type: test_metrics, valeu: 3}\n"
	if err := a.Reload(); err == nil {
		t.Fatal("bad config reloaded")
	}
	if v, _ := gatherValue(t, a.Registry); v != 2 {
		t.Fatalf("after failed reload: value %v", v)
	}
}

func TestTwoMetricsSourcesOfOneKind(t *testing.T) {
	cfg := mustLoad(t, "sources:\n  a: {type: test_metrics}\n  b: {type: test_metrics}\n")
	_, err := Build(cfg, quiet, NewTestMetrics())
	if err == nil || !strings.Contains(err.Error(), `source "b" (type test_metrics): cannot serve its metrics`) {
		t.Fatalf("got %v", err)
	}
}

// closingCollector counts its Close calls.
type closingCollector struct {
	testMetricsCollector
	closed *int
}

func (c closingCollector) Close() error { *c.closed++; return nil }

var closedCount int

func init() {
	RegisterMetricsSource("test_metrics_closer", func(env Env, n *yaml.Node) (prometheus.Collector, error) {
		return closingCollector{testMetricsCollector{2}, &closedCount}, nil
	})
}

// TestMetricsSourceClosed checks that a metrics source holding resources
// is closed once it is no longer served: when the graph stops, and when a
// graph built only to validate is discarded.
func TestMetricsSourceClosed(t *testing.T) {
	cfg := mustLoad(t, "sources:\n  m: {type: test_metrics_closer}\n")
	closedCount = 0
	g, err := BuildWith(cfg, quiet, NewTestMetrics(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	if closedCount != 0 {
		t.Fatalf("closed %d times while served", closedCount)
	}
	if err := g.Stop(0); err != nil {
		t.Fatal(err)
	}
	if closedCount != 1 {
		t.Fatalf("closed %d times after Stop, want 1", closedCount)
	}
	g, err = Build(cfg, quiet, NewTestMetrics())
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Discard(); err != nil {
		t.Fatal(err)
	}
	if closedCount != 2 {
		t.Fatalf("closed %d times after Discard, want 2", closedCount)
	}
}
