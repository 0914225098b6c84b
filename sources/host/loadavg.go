package host

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	Register(Spec{Name: "loadavg", DefaultEnabled: true, New: newLoadavgCollector})
}

type loadavgCollector struct {
	path  string
	descs [3]typedDesc
}

func newLoadavgCollector(env *Env) (Collector, error) {
	c := &loadavgCollector{path: env.Paths.ProcPath("loadavg")}
	for i, n := range []string{"1", "5", "15"} {
		c.descs[i] = typedDesc{prometheus.NewDesc(namespace+"_load"+n, n+"m load average.", nil, nil), prometheus.GaugeValue}
	}
	return c, nil
}

func (c *loadavgCollector) Update(ch chan<- prometheus.Metric) error {
	b, err := readFile(c.path)
	if err != nil {
		return fmt.Errorf("couldn't get load: %w", err)
	}
	loads, err := parseLoad(b)
	if err != nil {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	for i, v := range loads {
		ch <- c.descs[i].mustNewConstMetric(v)
	}
	return nil
}

// parseLoad reads the first three fields of /proc/loadavg.
func parseLoad(b []byte) ([3]float64, error) {
	var out [3]float64
	fields := bytes.Fields(b)
	if len(fields) < 3 {
		return out, fmt.Errorf("unexpected content %q", b)
	}
	for i := range out {
		v, err := strconv.ParseFloat(string(fields[i]), 64)
		if err != nil {
			return out, fmt.Errorf("could not parse load %q: %w", fields[i], err)
		}
		out[i] = v
	}
	return out, nil
}
