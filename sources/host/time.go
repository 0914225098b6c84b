package host

import (
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"
)

func init() {
	Register(Spec{Name: "time", DefaultEnabled: true, New: newTimeCollector})
}

type timeCollector struct {
	env                           *Env
	fs                            sysfs.FS
	now, zone, available, current typedDesc
}

func newTimeCollector(env *Env) (Collector, error) {
	fs, err := sysfs.NewFS(env.Paths.Sys)
	if err != nil {
		return nil, fmt.Errorf("failed to open sysfs: %w", err)
	}
	g := prometheus.GaugeValue
	return &timeCollector{
		env: env,
		fs:  fs,
		now: typedDesc{prometheus.NewDesc(namespace+"_time_seconds",
			"System time in seconds since epoch (1970).", nil, nil), g},
		zone: typedDesc{prometheus.NewDesc(namespace+"_time_zone_offset_seconds",
			"System time zone offset in seconds.", []string{"time_zone"}, nil), g},
		available: typedDesc{prometheus.NewDesc(namespace+"_time_clocksource_available_info",
			"Available clocksources read from '/sys/devices/system/clocksource'.", []string{"device", "clocksource"}, nil), g},
		current: typedDesc{prometheus.NewDesc(namespace+"_time_clocksource_current_info",
			"Current clocksource read from '/sys/devices/system/clocksource'.", []string{"device", "clocksource"}, nil), g},
	}, nil
}

func (c *timeCollector) Update(ch chan<- prometheus.Metric) error {
	now := time.Now()
	ch <- c.now.mustNewConstMetric(float64(now.UnixNano()) / 1e9)
	name, offset := now.Zone()
	ch <- c.zone.mustNewConstMetric(float64(offset), name)

	sources, err := c.fs.ClockSources()
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("couldn't get clocksources: %w", err)
	}
	for _, s := range sources {
		for _, a := range s.Available {
			ch <- c.available.mustNewConstMetric(1, s.Name, a)
		}
		ch <- c.current.mustNewConstMetric(1, s.Name, s.Current)
	}
	return nil
}
