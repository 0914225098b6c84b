package host

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

func init() {
	Register(Spec{Name: "softnet", DefaultEnabled: true, New: newSoftnetCollector})
}

type softnetCollector struct {
	fs                                        procfs.FS
	processed, dropped, timeSqueezed          typedDesc
	cpuCollision, receivedRps, flowLimitCount typedDesc
	backlogLen                                typedDesc
	cpuLabels                                 []string // "0", "1", ...: no formatting per scrape
}

func newSoftnetCollector(env *Env) (Collector, error) {
	fs, err := procfs.NewFS(env.Paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("failed to open procfs: %w", err)
	}
	d := func(name, help string, t prometheus.ValueType) typedDesc {
		return typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "softnet", name), help, []string{"cpu"}, nil), t}
	}
	return &softnetCollector{
		fs:             fs,
		processed:      d("processed_total", "Number of processed packets", prometheus.CounterValue),
		dropped:        d("dropped_total", "Number of dropped packets", prometheus.CounterValue),
		timeSqueezed:   d("times_squeezed_total", "Number of times processing packets ran out of quota", prometheus.CounterValue),
		cpuCollision:   d("cpu_collision_total", "Number of collision occur while obtaining device lock while transmitting", prometheus.CounterValue),
		receivedRps:    d("received_rps_total", "Number of times cpu woken up received_rps", prometheus.CounterValue),
		flowLimitCount: d("flow_limit_count_total", "Number of times flow limit has been reached", prometheus.CounterValue),
		backlogLen:     d("backlog_len", "Softnet backlog status", prometheus.GaugeValue),
	}, nil
}

func (c *softnetCollector) Update(ch chan<- prometheus.Metric) error {
	stats, err := c.fs.NetSoftnetStat()
	if err != nil {
		return fmt.Errorf("could not get softnet statistics: %w", err)
	}
	for _, s := range stats {
		for int(s.Index) >= len(c.cpuLabels) {
			c.cpuLabels = append(c.cpuLabels, strconv.Itoa(len(c.cpuLabels)))
		}
		cpu := c.cpuLabels[s.Index]
		ch <- c.processed.mustNewConstMetric(float64(s.Processed), cpu)
		ch <- c.dropped.mustNewConstMetric(float64(s.Dropped), cpu)
		ch <- c.timeSqueezed.mustNewConstMetric(float64(s.TimeSqueezed), cpu)
		ch <- c.cpuCollision.mustNewConstMetric(float64(s.CPUCollision), cpu)
		ch <- c.receivedRps.mustNewConstMetric(float64(s.ReceivedRps), cpu)
		ch <- c.flowLimitCount.mustNewConstMetric(float64(s.FlowLimitCount), cpu)
		ch <- c.backlogLen.mustNewConstMetric(float64(s.SoftnetBacklogLen), cpu)
	}
	return nil
}
