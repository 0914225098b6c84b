package host

import (
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// arp reads <procfs>/net/arp, which is node_exporter's
// --no-collector.arp.netlink path; node_exporter reads netlink by default.
// Both count every neighbour entry per device.
func init() {
	Register(Spec{
		Name:           "arp",
		DefaultEnabled: true,
		Options: []Option{
			{Name: "device-include", Help: "Regexp of arp devices to include (mutually exclusive to device-exclude)."},
			{Name: "device-exclude", Help: "Regexp of arp devices to exclude (mutually exclusive to device-include)."},
		},
		New: newARPCollector,
	})
}

type arpCollector struct {
	path   string
	filter *nameFilter
	desc   typedDesc
	buf    []byte
	counts map[string]uint32
}

func newARPCollector(env *Env) (Collector, error) {
	filter, err := newNameFilter(env.Option("device-exclude"), env.Option("device-include"))
	if err != nil {
		return nil, fmt.Errorf("arp: %w", err)
	}
	return &arpCollector{
		path:   env.Paths.ProcPath("net/arp"),
		filter: filter,
		desc: typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "arp", "entries"),
			"ARP entries by device", []string{"device"}, nil), prometheus.GaugeValue},
		counts: map[string]uint32{},
	}, nil
}

func (c *arpCollector) Update(ch chan<- prometheus.Metric) error {
	var err error
	c.buf, err = readFileInto(c.path, c.buf)
	if errors.Is(err, os.ErrNotExist) {
		return ErrNoData
	}
	if err != nil {
		return fmt.Errorf("could not get ARP entries: %w", err)
	}
	clear(c.counts)
	if err := parseARPDevices(c.buf, func(dev []byte) {
		c.counts[string(dev)]++ // no allocation once the device is known
	}); err != nil {
		return fmt.Errorf("could not get ARP entries: %s: %w", c.path, err)
	}
	for dev, n := range c.counts {
		if c.filter.ignored(dev) {
			continue
		}
		ch <- c.desc.mustNewConstMetric(float64(n), dev)
	}
	return nil
}

// parseARPDevices calls fn with the device of every entry of /proc/net/arp:
// a header line of 9 fields ("IP address  HW type  Flags  HW address  Mask
// Device"), then entries of 6 fields, the last being the device.
func parseARPDevices(data []byte, fn func(dev []byte)) error {
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		n := 0
		var last []byte
		for rest := line; ; {
			var f []byte
			f, rest = cutField(rest)
			if f == nil {
				break
			}
			n++
			last = f
		}
		switch n {
		case 0, 9:
		case 6:
			fn(last)
		default:
			return fmt.Errorf("%d columns found, but expected 6", n)
		}
	}
	return nil
}
