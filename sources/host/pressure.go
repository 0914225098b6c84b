package host

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

func init() {
	Register(Spec{Name: "pressure", DefaultEnabled: true, New: newPressureCollector})
}

// pressureResources are read in this order; irq needs Linux >= 6.1, the
// others >= 4.20 with CONFIG_PSI.
var pressureResources = [...]string{"cpu", "io", "memory", "irq"}

type pressureCollector struct {
	fs     procfs.FS
	logger *slog.Logger

	cpu, io, ioFull, mem, memFull, irqFull typedDesc
}

func newPressureCollector(env *Env) (Collector, error) {
	fs, err := procfs.NewFS(env.Paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("pressure: open procfs: %w", err)
	}
	d := func(name, help string) typedDesc {
		return typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "pressure", name), help, nil, nil), prometheus.CounterValue}
	}
	return &pressureCollector{
		fs:      fs,
		logger:  env.Logger,
		cpu:     d("cpu_waiting_seconds_total", "Total time in seconds that processes have waited for CPU time"),
		io:      d("io_waiting_seconds_total", "Total time in seconds that processes have waited due to IO congestion"),
		ioFull:  d("io_stalled_seconds_total", "Total time in seconds no process could make progress due to IO congestion"),
		mem:     d("memory_waiting_seconds_total", "Total time in seconds that processes have waited for memory"),
		memFull: d("memory_stalled_seconds_total", "Total time in seconds no process could make progress due to memory congestion"),
		irqFull: d("irq_stalled_seconds_total", "Total time in seconds no process could make progress due to IRQ congestion"),
	}, nil
}

// pressureSeconds converts PSI microseconds to seconds. Dividing twice, as
// node_exporter does, keeps values bit-identical to its output.
func pressureSeconds(us uint64) float64 { return float64(us) / 1000.0 / 1000.0 }

func (c *pressureCollector) Update(ch chan<- prometheus.Metric) error {
	found := 0
	for _, res := range pressureResources {
		vals, err := c.fs.PSIStatsForResource(res)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				c.logger.Debug("pressure information is unavailable, you need a Linux kernel >= 4.20 (6.1 for irq) and/or CONFIG_PSI enabled", "resource", res)
				continue
			}
			if errors.Is(err, syscall.ENOTSUP) {
				c.logger.Debug("pressure information is disabled, add psi=1 kernel command line to enable it")
				return ErrNoData
			}
			return fmt.Errorf("failed to retrieve pressure stats: %w", err)
		}
		// irq has no "some" line; cpu's "full" line is not exported.
		if vals.Some == nil && res != "irq" {
			c.logger.Debug("pressure information returned no 'some' data", "resource", res)
			return ErrNoData
		}
		if vals.Full == nil && res != "cpu" {
			c.logger.Debug("pressure information returned no 'full' data", "resource", res)
			return ErrNoData
		}
		switch res {
		case "cpu":
			ch <- c.cpu.mustNewConstMetric(pressureSeconds(vals.Some.Total))
		case "io":
			ch <- c.io.mustNewConstMetric(pressureSeconds(vals.Some.Total))
			ch <- c.ioFull.mustNewConstMetric(pressureSeconds(vals.Full.Total))
		case "memory":
			ch <- c.mem.mustNewConstMetric(pressureSeconds(vals.Some.Total))
			ch <- c.memFull.mustNewConstMetric(pressureSeconds(vals.Full.Total))
		case "irq":
			ch <- c.irqFull.mustNewConstMetric(pressureSeconds(vals.Full.Total))
		}
		found++
	}
	if found == 0 {
		c.logger.Debug("pressure information is unavailable, you need a Linux kernel >= 4.20 and/or CONFIG_PSI enabled for your kernel")
		return ErrNoData
	}
	return nil
}
