package host

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	Register(Spec{Name: "entropy", DefaultEnabled: true, New: newEntropyCollector})
}

// entropyCollector reads the two files of /proc/sys/kernel/random that it
// exports, rather than procfs.KernelRandom, which reads five.
type entropyCollector struct {
	availPath, poolPath string
	avail, pool         typedDesc
}

func newEntropyCollector(env *Env) (Collector, error) {
	d := func(name, help string) typedDesc {
		return typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "entropy", name), help, nil, nil), prometheus.GaugeValue}
	}
	return &entropyCollector{
		availPath: env.Paths.ProcPath("sys/kernel/random/entropy_avail"),
		poolPath:  env.Paths.ProcPath("sys/kernel/random/poolsize"),
		avail:     d("available_bits", "Bits of available entropy."),
		pool:      d("pool_size_bits", "Bits of entropy pool."),
	}, nil
}

func (c *entropyCollector) Update(ch chan<- prometheus.Metric) error {
	v, err := readUint(c.availPath)
	if err != nil {
		return fmt.Errorf("couldn't get entropy_avail: %w", err)
	}
	ch <- c.avail.mustNewConstMetric(float64(v))
	if v, err = readUint(c.poolPath); err != nil {
		return fmt.Errorf("couldn't get entropy poolsize: %w", err)
	}
	ch <- c.pool.mustNewConstMetric(float64(v))
	return nil
}
