package host

import (
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// newSequentialTestSource is newTestSource with the collectors of the
// given names run on the sequential path, in the order given.
func newSequentialTestSource(timeout time.Duration, names []string, cs map[string]Collector) *Source {
	s := &Source{timeout: timeout}
	for _, name := range names {
		s.collectors = append(s.collectors, &running{name: name, c: cs[name], logger: slog.New(slog.DiscardHandler), sequential: sequentialCollectors[name]})
	}
	return s
}

// A sequential collector that hangs does not hold the ones after it: past
// the budget they run concurrently, each succeeds or times out on its own,
// the scrape ends within about the timeout, and nothing leaks.
func TestSequentialCollectorHangs(t *testing.T) {
	before := runtime.NumGoroutine()
	release := make(chan struct{})
	s := newSequentialTestSource(300*time.Millisecond, []string{"stat", "cpu", "loadavg", "textfile"}, map[string]Collector{
		"stat": funcCollector(func(ch chan<- prometheus.Metric) error { ch <- value("stat"); return nil }),
		"cpu": funcCollector(func(ch chan<- prometheus.Metric) error {
			ch <- value("cpu-early")
			<-release
			ch <- value("cpu-late")
			return nil
		}),
		"loadavg":  funcCollector(func(ch chan<- prometheus.Metric) error { ch <- value("loadavg"); return nil }),
		"textfile": funcCollector(func(ch chan<- prometheus.Metric) error { ch <- value("textfile"); return nil }),
	})
	if !s.collectors[0].sequential || !s.collectors[1].sequential || s.collectors[3].sequential {
		t.Fatal("stat and cpu should be sequential, textfile not")
	}
	start := time.Now()
	fams := gather(t, s)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("scrape took %v with a 300ms timeout", d)
	}
	for name, want := range map[string]float64{"stat": 1, "cpu": 0, "loadavg": 1, "textfile": 1} {
		if got := success(t, fams, name); got != want {
			t.Errorf("%s success %v, want %v", name, got, want)
		}
	}
	if got := froms(fams); strings.Contains(got, "cpu-late") || !strings.Contains(got, "loadavg") || !strings.Contains(got, "stat") {
		t.Errorf("series from %s", got)
	}
	// The fast path's scrape skips the hung one and keeps the others.
	x, err := s.Expose(expfmt.NewFormat(expfmt.TypeTextPlain))
	if err != nil {
		t.Fatal(err)
	}
	x.Release()
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		fams = gather(t, s)
		if success(t, fams, "cpu") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cpu never recovered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := froms(fams); !strings.Contains(got, "cpu-late") || !strings.Contains(got, "cpu-early") {
		t.Errorf("recovered scrape has series from %s", got)
	}
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A panic in a sequential collector fails it alone.
func TestSequentialCollectorPanics(t *testing.T) {
	s := newSequentialTestSource(time.Second, []string{"stat", "cpu"}, map[string]Collector{
		"stat": funcCollector(func(ch chan<- prometheus.Metric) error { panic("boom") }),
		"cpu":  funcCollector(func(ch chan<- prometheus.Metric) error { ch <- value("cpu"); return nil }),
	})
	fams := gather(t, s)
	if success(t, fams, "stat") != 0 || success(t, fams, "cpu") != 1 {
		t.Fatalf("success stat=%v cpu=%v, want 0 and 1", success(t, fams, "stat"), success(t, fams, "cpu"))
	}
}

// Concurrent scrapes of one Source (two Prometheus servers) each get every
// collector's metrics once, or the collector skipped as busy.
func TestConcurrentScrapes(t *testing.T) {
	cs := map[string]Collector{}
	var names []string
	for _, name := range []string{"stat", "cpu", "loadavg", "textfile", "hwmon"} {
		name := name
		names = append(names, name)
		cs[name] = funcCollector(func(ch chan<- prometheus.Metric) error {
			for i := range 3 * metricsBuffer {
				ch <- value(name + "-" + strconv.Itoa(i))
			}
			return nil
		})
	}
	s := newSequentialTestSource(5*time.Second, names, cs)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				x, err := s.Expose(expfmt.NewFormat(expfmt.TypeTextPlain))
				if err != nil {
					t.Error(err)
					return
				}
				x.Release()
				reg := prometheus.NewRegistry()
				reg.MustRegister(s)
				if _, err := reg.Gather(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
