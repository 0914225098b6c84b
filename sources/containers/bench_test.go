package containers

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/sys/unix"

	"github.com/vigilhq/vigil/internal/dockerengine"
)

// only is an inventory restricted to some containers, so the benchmark
// measures its own containers whatever else runs on the host.
type only struct {
	e   *dockerengine.Engine
	ids map[string]bool
}

func (o *only) Ready() bool { return o.e.Ready() }
func (o *only) Running() []dockerengine.Container {
	var out []dockerengine.Container
	for _, c := range o.e.Running() {
		if o.ids[c.ID] {
			out = append(out, c)
		}
	}
	return out
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScrape measures one scrape of the source, as /metrics serves
// it (collect, gather, encode as text), with 1, 10 and 50 running
// containers (the burner idling, on the default bridge), on the real host
// cgroups. It reports the CPU time per scrape and per container.
//
//	go test -run '^$' -bench Scrape -benchtime 200x ./sources/containers/
func BenchmarkScrape(b *testing.B) {
	img := burnerImage(b)
	const max = 50
	names := make([]string, max)
	for i := range names {
		names[i] = fmt.Sprintf("vigiltest-bench-%d-%d", os.Getpid(), i)
	}
	b.Cleanup(func() { _ = exec.Command("docker", append([]string{"rm", "-f"}, names...)...).Run() })
	ids := make([]string, max)
	for i, n := range names {
		ids[i] = dockerCLI(b, "run", "-d", "--name", n, "--no-healthcheck", img)
	}
	e, err := dockerengine.Open(DefaultHost, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	all := &only{e: e, ids: map[string]bool{}}
	for _, id := range ids {
		all.ids[id] = true
	}
	waitFor(b, 60*time.Second, "the engine to list the containers", func() bool { return len(all.Running()) == max })

	for _, n := range []int{1, 10, 50} {
		b.Run("containers="+strconv.Itoa(n), func(b *testing.B) {
			inv := &only{e: e, ids: map[string]bool{}}
			for _, id := range ids[:n] {
				inv.ids[id] = true
			}
			s, err := newSource(Config{}, nil, inv)
			if err != nil {
				b.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(s)
			scrapeOnce := func() int {
				mfs, err := reg.Gather()
				if err != nil {
					b.Fatal(err)
				}
				enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
				series := 0
				for _, mf := range mfs {
					series += len(mf.Metric)
					if err := enc.Encode(mf); err != nil {
						b.Fatal(err)
					}
				}
				return series
			}
			series := scrapeOnce()
			b.ReportAllocs()
			c0 := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				scrapeOnce()
			}
			b.StopTimer()
			cpu := float64(cpuTime()-c0) / float64(b.N)
			b.ReportMetric(cpu/1e3, "cpu-µs/op")
			b.ReportMetric(cpu/1e3/float64(n), "cpu-µs/container")
			b.ReportMetric(float64(series), "series")
		})
	}
}
