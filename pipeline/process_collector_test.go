package pipeline

import (
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// The agent's process collector reports what client_golang's does: the
// same families, help and types, and the same values for those that do
// not move between two reads.
func TestProcessCollectorMatchesClientGolang(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process metrics from /proc")
	}
	gather := func(c prometheus.Collector) map[string]*dto.MetricFamily {
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
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
	want := gather(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	got := gather(newProcessCollector())
	if len(got) != len(want) {
		t.Fatalf("got %d families, want %d", len(got), len(want))
	}
	value := func(mf *dto.MetricFamily) float64 {
		m := mf.GetMetric()[0]
		if m.Counter != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	for name, w := range want {
		g := got[name]
		if g == nil {
			t.Errorf("%s missing", name)
			continue
		}
		if g.GetHelp() != w.GetHelp() || g.GetType() != w.GetType() || len(g.GetMetric()) != 1 || len(g.GetMetric()[0].GetLabel()) != 0 {
			t.Errorf("%s: got %v, want %v", name, g, w)
			continue
		}
		switch name {
		case "process_start_time_seconds", "process_max_fds", "process_virtual_memory_max_bytes":
			if value(g) != value(w) {
				t.Errorf("%s = %v, want %v", name, value(g), value(w))
			}
		case "process_open_fds":
			if d := value(g) - value(w); d < -2 || d > 2 {
				t.Errorf("%s = %v, want about %v", name, value(g), value(w))
			}
		}
	}
	// A second scrape reports the start time it cached.
	again := gather(newProcessCollector())
	if value(again["process_start_time_seconds"]) != value(want["process_start_time_seconds"]) {
		t.Errorf("start time moved")
	}
}
