package host

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

func init() {
	Register(Spec{Name: "timex", DefaultEnabled: true, New: newTimexCollector})
}

const (
	timexTimeError = 5      // adjtimex's TIME_ERROR: the clock is not synchronised
	timexStaNano   = 0x2000 // STA_NANO: offsets in nanoseconds, not microseconds
	ppm16frac      = 1000000.0 * 65536.0
	// |offset| beyond this is the kernel's 2^32ns overflow artifact
	// (KVM/pvclock), as node_exporter counts it.
	offsetOverflowSeconds = 4.0
)

type timexCollector struct {
	env *Env
	offset, freq, maxerror, esterror, status, constant, tick, ppsfreq, jitter, shift,
	stabil, jitcnt, calcnt, errcnt, stbcnt, tai, syncStatus, overflow typedDesc

	mu        sync.Mutex
	overflows uint64
}

func newTimexCollector(env *Env) (Collector, error) {
	d := func(name, help string, t prometheus.ValueType) typedDesc {
		return typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "timex", name), help, nil, nil), t}
	}
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	return &timexCollector{
		env:        env,
		offset:     d("offset_seconds", "Time offset in between local system and reference clock.", g),
		freq:       d("frequency_adjustment_ratio", "Local clock frequency adjustment.", g),
		maxerror:   d("maxerror_seconds", "Maximum error in seconds.", g),
		esterror:   d("estimated_error_seconds", "Estimated error in seconds.", g),
		status:     d("status", "Value of the status array bits.", g),
		constant:   d("loop_time_constant", "Phase-locked loop time constant.", g),
		tick:       d("tick_seconds", "Seconds between clock ticks.", g),
		ppsfreq:    d("pps_frequency_hertz", "Pulse per second frequency.", g),
		jitter:     d("pps_jitter_seconds", "Pulse per second jitter.", g),
		shift:      d("pps_shift_seconds", "Pulse per second interval duration.", g),
		stabil:     d("pps_stability_hertz", "Pulse per second stability, average of recent frequency changes.", g),
		jitcnt:     d("pps_jitter_total", "Pulse per second count of jitter limit exceeded events.", c),
		calcnt:     d("pps_calibration_total", "Pulse per second count of calibration intervals.", c),
		errcnt:     d("pps_error_total", "Pulse per second count of calibration errors.", c),
		stbcnt:     d("pps_stability_exceeded_total", "Pulse per second count of stability limit exceeded events.", c),
		tai:        d("tai_offset_seconds", "International Atomic Time (TAI) offset.", g),
		syncStatus: d("sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no).", g),
		overflow:   d("offset_overflow_total", "Count of adjtimex() offset readings indicating kernel overflow (|offset| > 4s). See https://github.com/prometheus/node_exporter/issues/3764", c),
	}, nil
}

func (c *timexCollector) Update(ch chan<- prometheus.Metric) error {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			c.env.Logger.Debug("not collecting timex metrics", "err", err)
			return ErrNoData
		}
		return fmt.Errorf("failed to retrieve adjtimex stats: %w", err)
	}
	synced := 1.0
	if state == timexTimeError {
		synced = 0
	}
	divisor := 1e6
	if tx.Status&timexStaNano != 0 {
		divisor = 1e9
	}
	offset := float64(tx.Offset) / divisor
	c.mu.Lock()
	if offset > offsetOverflowSeconds || offset < -offsetOverflowSeconds {
		c.overflows++
	}
	overflows := c.overflows
	c.mu.Unlock()

	ch <- c.syncStatus.mustNewConstMetric(synced)
	ch <- c.offset.mustNewConstMetric(offset)
	ch <- c.overflow.mustNewConstMetric(float64(overflows))
	ch <- c.freq.mustNewConstMetric(1 + float64(tx.Freq)/ppm16frac)
	ch <- c.maxerror.mustNewConstMetric(float64(tx.Maxerror) / 1e6)
	ch <- c.esterror.mustNewConstMetric(float64(tx.Esterror) / 1e6)
	ch <- c.status.mustNewConstMetric(float64(tx.Status))
	ch <- c.constant.mustNewConstMetric(float64(tx.Constant))
	ch <- c.tick.mustNewConstMetric(float64(tx.Tick) / 1e6)
	ch <- c.ppsfreq.mustNewConstMetric(float64(tx.Ppsfreq) / ppm16frac)
	ch <- c.jitter.mustNewConstMetric(float64(tx.Jitter) / divisor)
	ch <- c.shift.mustNewConstMetric(float64(tx.Shift))
	ch <- c.stabil.mustNewConstMetric(float64(tx.Stabil) / ppm16frac)
	ch <- c.jitcnt.mustNewConstMetric(float64(tx.Jitcnt))
	ch <- c.calcnt.mustNewConstMetric(float64(tx.Calcnt))
	ch <- c.errcnt.mustNewConstMetric(float64(tx.Errcnt))
	ch <- c.stbcnt.mustNewConstMetric(float64(tx.Stbcnt))
	ch <- c.tai.mustNewConstMetric(float64(tx.Tai))
	return nil
}
