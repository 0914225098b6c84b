package host

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

var testDesc = prometheus.NewDesc("node_test_value", "A test value.", []string{"from"}, nil)

// funcCollector is a Collector made of a function.
type funcCollector func(ch chan<- prometheus.Metric) error

func (f funcCollector) Update(ch chan<- prometheus.Metric) error { return f(ch) }

func value(from string) prometheus.Metric {
	return prometheus.MustNewConstMetric(testDesc, prometheus.GaugeValue, 1, from)
}

// newTestSource runs the given collectors without the registry.
func newTestSource(timeout time.Duration, logger *slog.Logger, cs map[string]Collector) *Source {
	s := &Source{timeout: timeout}
	for name, c := range cs {
		s.collectors = append(s.collectors, &running{name: name, c: c, logger: logger.With("collector", name)})
	}
	return s
}

func gather(t *testing.T, s *Source) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func success(t *testing.T, fams map[string]*dto.MetricFamily, collector string) float64 {
	t.Helper()
	v, ok := sampleOf(fams["node_scrape_collector_success"], "collector", collector)
	if !ok {
		t.Fatalf("no node_scrape_collector_success for %s", collector)
	}
	return v
}

func froms(fams map[string]*dto.MetricFamily) string {
	var out []string
	for _, m := range fams["node_test_value"].GetMetric() {
		out = append(out, m.GetLabel()[0].GetValue())
	}
	return strings.Join(out, ",")
}

func TestSlowCollectorTimesOutAlone(t *testing.T) {
	before := runtime.NumGoroutine()
	release := make(chan struct{})
	var slowCalls atomic.Int32
	s := newTestSource(100*time.Millisecond, slog.New(slog.DiscardHandler), map[string]Collector{
		"fast": funcCollector(func(ch chan<- prometheus.Metric) error { ch <- value("fast"); return nil }),
		"slow": funcCollector(func(ch chan<- prometheus.Metric) error {
			slowCalls.Add(1)
			ch <- value("slow-early")
			<-release
			// Sent after the scrape gave up: must never show up anywhere.
			for i := 0; i < 2*metricsBuffer; i++ {
				ch <- value(fmt.Sprintf("slow-late-%d", i))
			}
			return nil
		}),
	})

	start := time.Now()
	fams := gather(t, s)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("scrape took %v despite the 100ms timeout", d)
	}
	if success(t, fams, "fast") != 1 || success(t, fams, "slow") != 0 {
		t.Fatalf("success fast=%v slow=%v, want 1 and 0", success(t, fams, "fast"), success(t, fams, "slow"))
	}
	if got := froms(fams); strings.Contains(got, "slow-late") || !strings.Contains(got, "fast") {
		t.Fatalf("series from %s", got)
	}

	// The hung Update is not started again; the collector is reported
	// failed at once, without waiting for the timeout.
	start = time.Now()
	fams = gather(t, s)
	if d := time.Since(start); d > 90*time.Millisecond {
		t.Errorf("second scrape waited %v for a collector already known to hang", d)
	}
	if success(t, fams, "slow") != 0 || slowCalls.Load() != 1 {
		t.Fatalf("slow success %v after %d calls, want 0 after 1", success(t, fams, "slow"), slowCalls.Load())
	}

	close(release)
	// Once the hung call returns, its late metrics are discarded and the
	// collector runs again on the next scrape.
	deadline := time.Now().Add(5 * time.Second)
	for {
		fams = gather(t, s)
		if success(t, fams, "slow") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slow collector never recovered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The recovered call sends its values within its own scrape, once
	// each: a value leaked from the first call would be a duplicate series
	// and fail the gather.
	if got := froms(fams); strings.Count(got, "slow-late") != 2*metricsBuffer || !strings.Contains(got, "slow-early") {
		t.Fatalf("recovered scrape has series from %s", got)
	}
	if slowCalls.Load() != 2 {
		t.Fatalf("slow ran %d times, want 2", slowCalls.Load())
	}
	// No goroutine outlives the scrapes.
	deadline = time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCollectorsRunConcurrently(t *testing.T) {
	// Each collector waits for the other: run one after the other, they
	// would both time out.
	var wg sync.WaitGroup
	wg.Add(2)
	both := func(ch chan<- prometheus.Metric) error { wg.Done(); wg.Wait(); return nil }
	s := newTestSource(5*time.Second, slog.New(slog.DiscardHandler), map[string]Collector{"a": funcCollector(both), "b": funcCollector(both)})
	fams := gather(t, s)
	if success(t, fams, "a") != 1 || success(t, fams, "b") != 1 {
		t.Fatal("collectors did not run concurrently")
	}
}

func TestErrorsAndNoData(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newTestSource(time.Second, logger, map[string]Collector{
		"nodata": funcCollector(func(ch chan<- prometheus.Metric) error { return ErrNoData }),
		"broken": funcCollector(func(ch chan<- prometheus.Metric) error { return errors.New("reading /proc/x: bad") }),
		"panics": funcCollector(func(ch chan<- prometheus.Metric) error { panic("boom") }),
	})
	for i := 0; i < 3; i++ {
		fams := gather(t, s)
		for _, c := range []string{"nodata", "broken", "panics"} {
			if success(t, fams, c) != 0 {
				t.Fatalf("%s: success 1", c)
			}
		}
		if _, ok := sampleOf(fams["node_scrape_collector_duration_seconds"], "collector", "broken"); !ok {
			t.Fatal("no duration for broken")
		}
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if n := strings.Count(out, "reading /proc/x: bad"); n != 1 {
		t.Errorf("error logged %d times in 3 scrapes, want once a minute:\n%s", n, out)
	}
	if n := strings.Count(out, "panic: boom"); n != 1 {
		t.Errorf("panic logged %d times, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "level=DEBUG msg=\"collector returned no data\" collector=nodata") {
		t.Errorf("no-data not logged at debug:\n%s", out)
	}
	if strings.Contains(out, "level=ERROR msg=\"collector failed\" collector=nodata") {
		t.Errorf("no-data logged as an error:\n%s", out)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func decodeConfig(t *testing.T, src string) (Config, error) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	var c Config
	err := pipeline.Decoder{File: "host.yaml"}.Decode(&n, &c)
	return c, err
}

func TestConfigErrorsCarryPositions(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"enable: [cpu, loadavgg]\n", `host.yaml:1:15: unknown collector "loadavgg" (did you mean "loadavg"?)`},
		{"disable:\n  - statt\n", `host.yaml:2:5: unknown collector "statt" (did you mean "stat"?)`},
		{"options:\n  stat.softirqs: true\n", `host.yaml:2:3: unknown collector option "stat.softirqs" (did you mean "stat.softirq"?)`},
		{"options:\n  stat.softirq: maybe\n", `host.yaml:2:17: option "stat.softirq": invalid boolean "maybe"`},
		{"options:\n  stat.softirq: [true]\n", `host.yaml:2:17: option "stat.softirq": expected a single value`},
		{"procfs: /proc\nsysfss: /sys\n", `host.yaml:2:1: unknown key "sysfss" (did you mean "sysfs"?)`},
		{"collector_timeout: soon\n", `host.yaml:1:20: invalid duration "soon"`},
	} {
		_, err := decodeConfig(t, c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.src, err, c.want)
		}
	}
}

func TestConfigEnabled(t *testing.T) {
	for _, c := range []struct {
		src     string
		has     []string
		hasNot  []string
		wantErr string
	}{
		{src: "{}", has: []string{"cpu", "loadavg", "meminfo", "stat", "vmstat"}},
		{src: "disable: [cpu]", has: []string{"loadavg"}, hasNot: []string{"cpu"}},
		{src: "disable_defaults: true\nenable: [loadavg]", has: []string{"loadavg"}, hasNot: []string{"cpu", "stat"}},
		{src: "enable: [cpu]\ndisable: [cpu]", wantErr: `collector "cpu" is both enabled and disabled`},
	} {
		cfg, err := decodeConfig(t, c.src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cfg.Enabled()
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: got %v, want %q", c.src, err, c.wantErr)
			}
			continue
		}
		set := map[string]bool{}
		for _, n := range got {
			set[n] = true
		}
		for _, n := range c.has {
			if !set[n] {
				t.Errorf("%q: %s not enabled (%v)", c.src, n, got)
			}
		}
		for _, n := range c.hasNot {
			if set[n] {
				t.Errorf("%q: %s enabled (%v)", c.src, n, got)
			}
		}
	}
}

func TestOptionsReachCollectors(t *testing.T) {
	cfg := fixtureConfig(t, "stat")
	cfg.Options = Options{"stat.softirq": "false"}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := gather(t, s)["node_softirqs_total"]; ok {
		t.Fatal("stat.softirq=false still exports node_softirqs_total")
	}
	cfg.Options = Options{"stat.softirq": "true"}
	if s, err = New(cfg, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := gather(t, s)["node_softirqs_total"]; !ok {
		t.Fatal("stat.softirq=true does not export node_softirqs_total")
	}
}

func TestLiveHost(t *testing.T) {
	// Every default collector of this package works on the machine the
	// tests run on (Linux with /proc and /sys).
	s, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fams := gather(t, s)
	// Collectors for hardware or kernel features a VM may lack report no
	// data (success 0, as in node_exporter) when their files are absent.
	needs := map[string]string{
		"bonding":      "/sys/class/net/bonding_masters",
		"hwmon":        "/sys/class/hwmon",
		"mdadm":        "/proc/mdstat",
		"schedstat":    "/proc/schedstat",
		"thermal_zone": "/sys/class/thermal",
		"pressure":     "/proc/pressure",
		"conntrack":    "/proc/sys/net/netfilter/nf_conntrack_count",
	}
	for _, name := range s.Collectors() {
		if p, ok := needs[name]; ok {
			if _, err := os.Stat(p); err != nil {
				t.Logf("collector %s: %s is absent on this host", name, p)
				continue
			}
		}
		if v, _ := sampleOf(fams["node_scrape_collector_success"], "collector", name); v != 1 {
			t.Errorf("collector %s failed on this host", name)
		}
	}
}

func newRegistryForTest() *prometheus.Registry { return prometheus.NewRegistry() }

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
