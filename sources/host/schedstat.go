package host

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

func init() {
	Register(Spec{Name: "schedstat", DefaultEnabled: true, New: newSchedstatCollector})
}

type schedstatCollector struct {
	fs                         procfs.FS
	logger                     *slog.Logger
	running, waiting, timeslic typedDesc
}

func newSchedstatCollector(env *Env) (Collector, error) {
	fs, err := procfs.NewFS(env.Paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("schedstat: open procfs: %w", err)
	}
	d := func(name, help string) typedDesc {
		return typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "schedstat", name), help, []string{"cpu"}, nil), prometheus.CounterValue}
	}
	return &schedstatCollector{
		fs:       fs,
		logger:   env.Logger,
		running:  d("running_seconds_total", "Number of seconds CPU spent running a process."),
		waiting:  d("waiting_seconds_total", "Number of seconds spent by processing waiting for this CPU."),
		timeslic: d("timeslices_total", "Number of timeslices executed by CPU."),
	}, nil
}

func (c *schedstatCollector) Update(ch chan<- prometheus.Metric) error {
	stats, err := c.fs.Schedstat()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			c.logger.Debug("schedstat file does not exist")
			return ErrNoData
		}
		return fmt.Errorf("schedstat: %w", err)
	}
	for _, cpu := range stats.CPUs {
		ch <- c.running.mustNewConstMetric(float64(cpu.RunningNanoseconds)/1e9, cpu.CPUNum)
		ch <- c.waiting.mustNewConstMetric(float64(cpu.WaitingNanoseconds)/1e9, cpu.CPUNum)
		ch <- c.timeslic.mustNewConstMetric(float64(cpu.RunTimeslices), cpu.CPUNum)
	}
	return nil
}
