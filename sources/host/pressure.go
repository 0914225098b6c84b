package host

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	Register(Spec{Name: "pressure", DefaultEnabled: true, New: newPressureCollector})
}

// pressureResources are read in this order; irq needs Linux >= 6.1, the
// others >= 4.20 with CONFIG_PSI.
var pressureResources = [...]string{"cpu", "io", "memory", "irq"}

type pressureCollector struct {
	paths  [len(pressureResources)]string
	buf    []byte
	logger *slog.Logger

	cpu, io, ioFull, mem, memFull, irqFull typedDesc
}

func newPressureCollector(env *Env) (Collector, error) {
	d := func(name, help string) typedDesc {
		return typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "pressure", name), help, nil, nil), prometheus.CounterValue}
	}
	c := &pressureCollector{
		logger:  env.Logger,
		cpu:     d("cpu_waiting_seconds_total", "Total time in seconds that processes have waited for CPU time"),
		io:      d("io_waiting_seconds_total", "Total time in seconds that processes have waited due to IO congestion"),
		ioFull:  d("io_stalled_seconds_total", "Total time in seconds no process could make progress due to IO congestion"),
		mem:     d("memory_waiting_seconds_total", "Total time in seconds that processes have waited for memory"),
		memFull: d("memory_stalled_seconds_total", "Total time in seconds no process could make progress due to memory congestion"),
		irqFull: d("irq_stalled_seconds_total", "Total time in seconds no process could make progress due to IRQ congestion"),
	}
	for i, res := range pressureResources {
		c.paths[i] = env.Paths.ProcPath("pressure", res)
	}
	return c, nil
}

// psiTotals are the totals of a pressure file's some and full lines.
type psiTotals struct {
	some, full       uint64
	hasSome, hasFull bool
}

// readPSI reads a /proc/pressure file as procfs's PSIStatsForResource
// (which node_exporter uses) does, keeping only the totals.
func (c *pressureCollector) readPSI(path string) (psiTotals, error) {
	var t psiTotals
	var err error
	if c.buf, err = readFileInto(path, c.buf); err != nil {
		return t, fmt.Errorf("psi_stats: unavailable for %q: %w", path, err)
	}
	for b := c.buf; len(b) > 0; {
		var line []byte
		line, b = cutLine(b)
		kind, rest := cutField(line)
		var total *uint64
		switch string(kind) {
		case "some":
			total, t.hasSome = &t.some, true
		case "full":
			total, t.hasFull = &t.full, true
		default:
			continue // as procfs: kinds added later are ignored
		}
		found := false
		for {
			var f []byte
			if f, rest = cutField(rest); f == nil {
				break
			}
			if v, ok := bytes.CutPrefix(f, []byte("total=")); ok {
				if *total, err = strconv.ParseUint(string(v), 10, 64); err != nil {
					return t, fmt.Errorf("%s: couldn't parse %q: %w", path, line, err)
				}
				found = true
			}
		}
		if !found {
			return t, fmt.Errorf("%s: couldn't parse %q: no total", path, line)
		}
	}
	return t, nil
}

// pressureSeconds converts PSI microseconds to seconds. Dividing twice, as
// node_exporter does, keeps values bit-identical to its output.
func pressureSeconds(us uint64) float64 { return float64(us) / 1000.0 / 1000.0 }

func (c *pressureCollector) Update(ch chan<- prometheus.Metric) error {
	found := 0
	for i, res := range pressureResources {
		vals, err := c.readPSI(c.paths[i])
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
		if !vals.hasSome && res != "irq" {
			c.logger.Debug("pressure information returned no 'some' data", "resource", res)
			return ErrNoData
		}
		if !vals.hasFull && res != "cpu" {
			c.logger.Debug("pressure information returned no 'full' data", "resource", res)
			return ErrNoData
		}
		switch res {
		case "cpu":
			ch <- c.cpu.mustNewConstMetric(pressureSeconds(vals.some))
		case "io":
			ch <- c.io.mustNewConstMetric(pressureSeconds(vals.some))
			ch <- c.ioFull.mustNewConstMetric(pressureSeconds(vals.full))
		case "memory":
			ch <- c.mem.mustNewConstMetric(pressureSeconds(vals.some))
			ch <- c.memFull.mustNewConstMetric(pressureSeconds(vals.full))
		case "irq":
			ch <- c.irqFull.mustNewConstMetric(pressureSeconds(vals.full))
		}
		found++
	}
	if found == 0 {
		c.logger.Debug("pressure information is unavailable, you need a Linux kernel >= 4.20 and/or CONFIG_PSI enabled for your kernel")
		return ErrNoData
	}
	return nil
}
