package host

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	Register(Spec{Name: "filefd", DefaultEnabled: true, New: newFilefdCollector})
}

type filefdCollector struct {
	path      string
	allocated typedDesc
	maximum   typedDesc
}

func newFilefdCollector(env *Env) (Collector, error) {
	d := func(name, help string) typedDesc {
		return typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "filefd", name), help, nil, nil), prometheus.GaugeValue}
	}
	return &filefdCollector{
		path:      env.Paths.ProcPath("sys/fs/file-nr"),
		allocated: d("allocated", "File descriptor statistics: allocated."),
		maximum:   d("maximum", "File descriptor statistics: maximum."),
	}, nil
}

func (c *filefdCollector) Update(ch chan<- prometheus.Metric) error {
	b, err := readFile(c.path)
	if err != nil {
		return fmt.Errorf("couldn't get file-nr: %w", err)
	}
	allocated, maximum, err := filefdParse(b)
	if err != nil {
		return fmt.Errorf("could not parse %s: %w", c.path, err)
	}
	ch <- c.allocated.mustNewConstMetric(allocated)
	ch <- c.maximum.mustNewConstMetric(maximum)
	return nil
}

// filefdParse reads "allocated unused maximum" from file-nr.
func filefdParse(b []byte) (allocated, maximum float64, err error) {
	f := bytes.Fields(b)
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("expected 3 fields, got %d", len(f))
	}
	if allocated, err = strconv.ParseFloat(string(f[0]), 64); err != nil {
		return 0, 0, err
	}
	if maximum, err = strconv.ParseFloat(string(f[2]), 64); err != nil {
		return 0, 0, err
	}
	return allocated, maximum, nil
}
