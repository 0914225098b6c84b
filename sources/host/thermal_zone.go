package host

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"
)

func init() {
	Register(Spec{Name: "thermal_zone", DefaultEnabled: true, New: newThermalZoneCollector})
}

type thermalZoneCollector struct {
	fs               sysfs.FS
	logger           *slog.Logger
	zoneTemp         typedDesc
	coolCur, coolMax typedDesc
}

func newThermalZoneCollector(env *Env) (Collector, error) {
	fs, err := sysfs.NewFS(env.Paths.Sys)
	if err != nil {
		return nil, fmt.Errorf("thermal_zone: open sysfs: %w", err)
	}
	return &thermalZoneCollector{
		fs:     fs,
		logger: env.Logger,
		zoneTemp: typedDesc{prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "thermal_zone", "temp"),
			"Zone temperature in Celsius", []string{"zone", "type"}, nil), prometheus.GaugeValue},
		coolCur: typedDesc{prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "cooling_device", "cur_state"),
			"Current throttle state of the cooling device", []string{"name", "type"}, nil), prometheus.GaugeValue},
		coolMax: typedDesc{prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "cooling_device", "max_state"),
			"Maximum throttle state of the cooling device", []string{"name", "type"}, nil), prometheus.GaugeValue},
	}, nil
}

func thermalZoneUnavailable(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrInvalid)
}

func (c *thermalZoneCollector) Update(ch chan<- prometheus.Metric) error {
	zones, err := c.fs.ClassThermalZoneStats()
	if err != nil {
		if thermalZoneUnavailable(err) {
			c.logger.Debug("could not read thermal zone stats", "err", err)
			return ErrNoData
		}
		return fmt.Errorf("thermal_zone: %w", err)
	}
	for _, z := range zones {
		if z.ReadErrors != nil {
			// A zone whose type or temperature could not be read would
			// otherwise be reported as 0 degrees.
			c.logger.Debug("skipping thermal zone", "zone", z.Name, "err", z.ReadErrors)
			continue
		}
		ch <- c.zoneTemp.mustNewConstMetric(float64(z.Temp)/1000.0, z.Name, z.Type)
	}

	devices, err := c.fs.ClassCoolingDeviceStats()
	if err != nil {
		if thermalZoneUnavailable(err) {
			c.logger.Debug("could not read cooling device stats", "err", err)
			return ErrNoData
		}
		return fmt.Errorf("thermal_zone: cooling devices: %w", err)
	}
	for _, d := range devices {
		ch <- c.coolCur.mustNewConstMetric(float64(d.CurState), d.Name, d.Type)
		ch <- c.coolMax.mustNewConstMetric(float64(d.MaxState), d.Name, d.Type)
	}
	return nil
}
