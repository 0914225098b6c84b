package host

import (
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// exposeFormats are the formats a scrape may negotiate.
var exposeFormats = []expfmt.Format{
	expfmt.NewFormat(expfmt.TypeTextPlain),
	expfmt.NewFormat(expfmt.TypeOpenMetrics),
	expfmt.Format(expfmt.OpenMetricsType + `; version=` + expfmt.OpenMetricsVersion_1_0_0 + `; charset=utf-8; escaping=underscores`),
}

// viaRegistry renders metrics the way promhttp did before the fast path:
// a registry's Gather, then expfmt's encoder.
func viaRegistry(t *testing.T, ms []prometheus.Metric, format expfmt.Format) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metricSlice(ms))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// viaExpose renders the same metrics through the fast path.
func viaExpose(t *testing.T, ms []prometheus.Metric, format expfmt.Format) string {
	t.Helper()
	var fast []*hostMetric
	var other []prometheus.Metric
	for _, m := range ms {
		if hm, ok := m.(*hostMetric); ok {
			fast = append(fast, hm)
		} else {
			other = append(other, m)
		}
	}
	x, err := renderExposition(fast, other, format)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Release()
	var b strings.Builder
	for i, f := range x.Families {
		if i > 0 && x.Families[i-1].Name >= f.Name {
			t.Errorf("families out of order: %s after %s", f.Name, x.Families[i-1].Name)
		}
		b.Write(f.Text)
	}
	if format.FormatType() == expfmt.TypeOpenMetrics {
		b.WriteString("# EOF\n")
	}
	return b.String()
}

func collectAll(t *testing.T, s *Source) []prometheus.Metric {
	ch := make(chan prometheus.Metric, 64)
	go func() { s.Collect(ch); close(ch) }()
	var ms []prometheus.Metric
	for m := range ch {
		ms = append(ms, m)
	}
	return ms
}

func compareExposition(t *testing.T, ms []prometheus.Metric) {
	t.Helper()
	fast := 0
	for _, m := range ms {
		if _, ok := m.(*hostMetric); ok {
			fast++
		}
	}
	if fast == 0 {
		t.Fatal("no metric took the fast path")
	}
	for _, format := range exposeFormats {
		want, got := viaRegistry(t, ms, format), viaExpose(t, ms, format)
		if got != want {
			wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
			for i := range min(len(wl), len(gl)) {
				if wl[i] != gl[i] {
					t.Errorf("%s: line %d differs:\nregistry: %q\nexpose:   %q", format, i+1, wl[i], gl[i])
					break
				}
			}
			t.Errorf("%s: %d lines through the registry, %d through Expose", format, len(wl), len(gl))
		}
	}
	t.Logf("%d metrics, %d on the fast path", len(ms), fast)
}

// Every collector on the live host: Expose must write byte for byte what
// Gather and expfmt write, in text and OpenMetrics.
func TestExposeMatchesRegistryLive(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc")
	}
	var cfg Config
	for _, s := range Specs() {
		if s.Name != "textfile" {
			cfg.Enable = append(cfg.Enable, Name(s.Name))
		}
	}
	cfg.CollectorTimeout = time.Minute
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	compareExposition(t, collectAll(t, s))
}

// The fixture trees, with every collector (textfile's summaries and
// histograms take the registry's path within Expose).
func TestExposeMatchesRegistryFixtures(t *testing.T) {
	dir := fixtureDir(t)
	cfg := Config{Procfs: filepath.Join(dir, "proc"), Sysfs: filepath.Join(dir, "sys"), Rootfs: dir,
		UdevData: filepath.Join(dir, "udev/data"), CollectorTimeout: time.Minute,
		Options: Options{"textfile.directory": filepath.Join(dir, "textfile/two_metric_files"), "netdev.netlink": "false"}}
	for _, s := range Specs() {
		cfg.Enable = append(cfg.Enable, Name(s.Name))
	}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	compareExposition(t, collectAll(t, s))
}

// Values and label values that need care: escaping, special floats, const
// labels sorted among variable ones, a counter without _total, untyped,
// and a family mixing fast and other metrics.
func TestExposeEdgeCases(t *testing.T) {
	d1 := prometheus.NewDesc("node_edge_total", "Help with \\ backslash\nand \"quotes\".", []string{"zeta", "alpha"}, prometheus.Labels{"mid": "c"})
	d2 := prometheus.NewDesc("node_edge_counter", "", nil, nil)
	d3 := prometheus.NewDesc("node_edge_untyped", "Untyped.", []string{"l"}, nil)
	d4 := prometheus.NewDesc("node_edge_mixed", "Mixed.", []string{"l"}, nil)
	var ms []prometheus.Metric
	for i, v := range []float64{0, 1, -1, math.NaN(), math.Inf(1), math.Inf(-1), 1e21, 0.1, 123456789, -0.0, 5e-324} {
		ms = append(ms, newMetric(d1, prometheus.CounterValue, v, "z\"\\\n"+string(rune('a'+i)), "a"))
	}
	ms = append(ms,
		newMetric(d2, prometheus.CounterValue, 3),
		newMetric(d3, prometheus.UntypedValue, 2.5, "b"),
		newMetric(d3, prometheus.UntypedValue, 1, "a"),
		newMetric(d4, prometheus.GaugeValue, 1, "fast"),
		prometheus.MustNewConstMetric(d4, prometheus.GaugeValue, 2, "const"),
	)
	compareExposition(t, ms)
}

func TestExposeDuplicateFails(t *testing.T) {
	d := prometheus.NewDesc("node_dup", "Dup.", []string{"l"}, nil)
	ms := []*hostMetric{
		newMetric(d, prometheus.GaugeValue, 1, "x").(*hostMetric),
		newMetric(d, prometheus.GaugeValue, 2, "x").(*hostMetric),
	}
	if _, err := renderExposition(ms, nil, expfmt.NewFormat(expfmt.TypeTextPlain)); err == nil || !strings.Contains(err.Error(), "collected before") {
		t.Errorf("err %v, want a duplicate error as Gather's", err)
	}
}

func TestNewMetricPanicsAsConstMetric(t *testing.T) {
	d := prometheus.NewDesc("node_p", "P.", []string{"l"}, nil)
	for name, f := range map[string]func(){
		"label count": func() { newMetric(d, prometheus.GaugeValue, 1) },
		"utf8":        func() { newMetric(d, prometheus.GaugeValue, 1, "\xff") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// Expose keeps the engine's per-collector timeout: a hung collector is
// reported failed and its late metrics never show up.
func TestExposeTimesOut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := newTestSource(100*time.Millisecond, slog.New(slog.DiscardHandler), map[string]Collector{
		"fast": funcCollector(func(ch chan<- prometheus.Metric) error {
			ch <- newMetric(testDesc, prometheus.GaugeValue, 1, "fast")
			return nil
		}),
		"slow": funcCollector(func(ch chan<- prometheus.Metric) error {
			ch <- value("slow-early")
			<-release
			ch <- value("slow-late")
			return nil
		}),
	})
	start := time.Now()
	x, err := s.Expose(expfmt.NewFormat(expfmt.TypeTextPlain))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Expose took %v despite the 100ms timeout", d)
	}
	var b strings.Builder
	for _, f := range x.Families {
		b.Write(f.Text)
	}
	x.Release()
	got := b.String()
	for _, want := range []string{
		`node_scrape_collector_success{collector="fast"} 1`,
		`node_scrape_collector_success{collector="slow"} 0`,
		`node_test_value{from="fast"} 1`,
		`node_test_value{from="slow-early"} 1`,
		"# TYPE node_scrape_collector_duration_seconds gauge",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "slow-late") {
		t.Errorf("late metric exposed:\n%s", got)
	}
}
