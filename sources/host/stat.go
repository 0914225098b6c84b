package host

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	Register(Spec{
		Name:           "stat",
		DefaultEnabled: true,
		Options: []Option{
			{Name: "softirq", Default: "false", Bool: true, Help: "Export softirq calls per vector"},
		},
		New: newStatCollector,
	})
}

type statCollector struct {
	env     *Env
	stat    *procStatReader
	softirq bool

	intr, ctxt, forks, btime, running, blocked, softirqs typedDesc
}

func newStatCollector(env *Env) (Collector, error) {
	d := func(name, help string, t prometheus.ValueType, labels ...string) typedDesc {
		return typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil), t}
	}
	return &statCollector{
		env:      env,
		stat:     env.procStatReader(env.Paths.ProcPath("stat")),
		softirq:  env.BoolOption("softirq"),
		intr:     d("intr_total", "Total number of interrupts serviced.", prometheus.CounterValue),
		ctxt:     d("context_switches_total", "Total number of context switches.", prometheus.CounterValue),
		forks:    d("forks_total", "Total number of forks.", prometheus.CounterValue),
		btime:    d("boot_time_seconds", "Node boot time, in unixtime.", prometheus.GaugeValue),
		running:  d("procs_running", "Number of processes in runnable state.", prometheus.GaugeValue),
		blocked:  d("procs_blocked", "Number of processes blocked waiting for I/O to complete.", prometheus.GaugeValue),
		softirqs: d("softirqs_total", "Number of softirq calls.", prometheus.CounterValue, "vector"),
	}, nil
}

func (c *statCollector) Update(ch chan<- prometheus.Metric) error {
	var s procStat
	err := c.stat.with(func(p *procStat) {
		s.intr, s.ctxt, s.processes, s.btime, s.running, s.blocked = p.intr, p.ctxt, p.processes, p.btime, p.running, p.blocked
		s.softIRQ = p.softIRQ
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.env.Paths.ProcPath("stat"), err)
	}
	ch <- c.intr.mustNewConstMetric(float64(s.intr))
	ch <- c.ctxt.mustNewConstMetric(float64(s.ctxt))
	ch <- c.forks.mustNewConstMetric(float64(s.processes))
	ch <- c.btime.mustNewConstMetric(float64(s.btime))
	ch <- c.running.mustNewConstMetric(float64(s.running))
	ch <- c.blocked.mustNewConstMetric(float64(s.blocked))
	if c.softirq {
		for i, name := range softIRQNames {
			ch <- c.softirqs.mustNewConstMetric(float64(s.softIRQ[i]), name)
		}
	}
	return nil
}

// softIRQNames are the vectors of /proc/stat's softirq line, in order.
var softIRQNames = [10]string{"hi", "timer", "net_tx", "net_rx", "block", "block_iopoll", "tasklet", "sched", "hrtimer", "rcu"}
