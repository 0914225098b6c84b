package containers

import (
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigilhq/vigil/internal/dockertest"
)

var nameSeq atomic.Int64

func TestMain(m *testing.M) {
	code := m.Run()
	dockertest.RemoveImages()
	os.Exit(code)
}

// needDocker skips without a reachable engine, except on CI, where a
// missing engine is a failure.
func needDocker(tb testing.TB) { tb.Helper(); dockertest.Need(tb) }

// burnerImage is the FROM scratch image of testdata/burner, with a health
// check that asks the burner itself.
func burnerImage(tb testing.TB) string {
	tb.Helper()
	return dockertest.Image(tb, "github.com/vigilhq/vigil/sources/containers/testdata/burner",
		`HEALTHCHECK --interval=1s --timeout=5s CMD ["/burner", "-health"]`)
}

func dockerCLI(tb testing.TB, args ...string) string {
	tb.Helper()
	return dockertest.Docker(tb, args...)
}

// uniqueName returns a container name with the test prefix; the container
// is removed when the test ends.
func uniqueName(tb testing.TB) string {
	name := fmt.Sprintf("vigiltest-ctr-%d-%d", os.Getpid(), nameSeq.Add(1))
	tb.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
	return name
}

// scrape is one gathered exposition, by metric name.
type scrape map[string]*dto.MetricFamily

func gather(tb testing.TB, c prometheus.Collector) scrape {
	tb.Helper()
	reg := prometheus.NewRegistry() // as vigil serves it: the series are not described
	if err := reg.Register(c); err != nil {
		tb.Fatal(err)
	}
	defer reg.Unregister(c)
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	out := scrape{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func matches(m *dto.Metric, match map[string]string) bool {
	ls := labelsOf(m)
	for k, v := range match {
		if ls[k] != v {
			return false
		}
	}
	return true
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// sum adds the values of name's series that match.
func (s scrape) sum(name string, match map[string]string) (float64, int) {
	var v float64
	n := 0
	if mf := s[name]; mf != nil {
		for _, m := range mf.Metric {
			if matches(m, match) {
				v += value(m)
				n++
			}
		}
	}
	return v, n
}

func (s scrape) series(name string, match map[string]string) []*dto.Metric {
	var out []*dto.Metric
	if mf := s[name]; mf != nil {
		for _, m := range mf.Metric {
			if matches(m, match) {
				out = append(out, m)
			}
		}
	}
	return out
}

func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
