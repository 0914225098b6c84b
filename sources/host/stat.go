package host

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
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
	fs      procfs.FS
	softirq bool

	intr, ctxt, forks, btime, running, blocked, softirqs typedDesc
}

func newStatCollector(env *Env) (Collector, error) {
	fs, err := procfs.NewFS(env.Paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("failed to open procfs: %w", err)
	}
	d := func(name, help string, t prometheus.ValueType, labels ...string) typedDesc {
		return typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil), t}
	}
	return &statCollector{
		env:      env,
		fs:       fs,
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
	s, err := c.fs.Stat()
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.env.Paths.ProcPath("stat"), err)
	}
	ch <- c.intr.mustNewConstMetric(float64(s.IRQTotal))
	ch <- c.ctxt.mustNewConstMetric(float64(s.ContextSwitches))
	ch <- c.forks.mustNewConstMetric(float64(s.ProcessCreated))
	ch <- c.btime.mustNewConstMetric(float64(s.BootTime))
	ch <- c.running.mustNewConstMetric(float64(s.ProcessesRunning))
	ch <- c.blocked.mustNewConstMetric(float64(s.ProcessesBlocked))
	if c.softirq {
		si := s.SoftIRQ
		for _, v := range []struct {
			name  string
			value uint64
		}{
			{"hi", si.Hi}, {"timer", si.Timer}, {"net_tx", si.NetTx}, {"net_rx", si.NetRx},
			{"block", si.Block}, {"block_iopoll", si.BlockIoPoll}, {"tasklet", si.Tasklet},
			{"sched", si.Sched}, {"hrtimer", si.Hrtimer}, {"rcu", si.Rcu},
		} {
			ch <- c.softirqs.mustNewConstMetric(float64(v.value), v.name)
		}
	}
	return nil
}
