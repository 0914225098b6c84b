package host

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// netdev reads <procfs>/net/dev, which is node_exporter's
// --no-collector.netdev.netlink path. node_exporter reads netlink by default;
// the two differ only in that netlink adds receive_nohandler_total and reads
// the network namespace of the exporter's process rather than procfs'.
func init() {
	Register(Spec{
		Name:           "netdev",
		DefaultEnabled: true,
		Options: []Option{
			{Name: "device-include", Help: "Regexp of net devices to include (mutually exclusive to device-exclude)."},
			{Name: "device-exclude", Help: "Regexp of net devices to exclude (mutually exclusive to device-include)."},
			{Name: "device-whitelist", Help: "DEPRECATED: Use collector.netdev.device-include"},
			{Name: "device-blacklist", Help: "DEPRECATED: Use collector.netdev.device-exclude"},
			{Name: "address-info", Default: "false", Bool: true, Help: "Collect address-info for every device"},
			{Name: "enable-detailed-metrics", Default: "false", Bool: true, Help: "Use (incompatible) metric names that provide more detailed stats on Linux"},
		},
		New: newNetdevCollector,
	})
}

// netdevFields are the /proc/net/dev columns, in file order, under
// node_exporter's detailed and legacy (default) names.
var netdevFields = [16]struct{ detailed, legacy string }{
	{"receive_bytes", "receive_bytes"},
	{"receive_packets", "receive_packets"},
	{"receive_errors", "receive_errs"},
	{"receive_dropped", "receive_drop"},
	{"receive_fifo_errors", "receive_fifo"},
	{"receive_frame_errors", "receive_frame"},
	{"receive_compressed", "receive_compressed"},
	{"multicast", "receive_multicast"},
	{"transmit_bytes", "transmit_bytes"},
	{"transmit_packets", "transmit_packets"},
	{"transmit_errors", "transmit_errs"},
	{"transmit_dropped", "transmit_drop"},
	{"transmit_fifo_errors", "transmit_fifo"},
	{"collisions", "transmit_colls"},
	{"transmit_carrier_errors", "transmit_carrier"},
	{"transmit_compressed", "transmit_compressed"},
}

type netdevCollector struct {
	fs          procfs.FS
	filter      *nameFilter
	descs       [16]*prometheus.Desc
	addressInfo bool
	addrDesc    *prometheus.Desc
}

func newNetdevCollector(env *Env) (Collector, error) {
	fs, err := procfs.NewFS(env.Paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("failed to open procfs: %w", err)
	}
	include, exclude := env.Option("device-include"), env.Option("device-exclude")
	if old := env.Option("device-whitelist"); old != "" {
		if include != "" {
			return nil, errors.New("--collector.netdev.device-whitelist and --collector.netdev.device-include are mutually exclusive")
		}
		env.Logger.Warn("--collector.netdev.device-whitelist is DEPRECATED and will be removed in 2.0.0, use --collector.netdev.device-include")
		include = old
	}
	if old := env.Option("device-blacklist"); old != "" {
		if exclude != "" {
			return nil, errors.New("--collector.netdev.device-blacklist and --collector.netdev.device-exclude are mutually exclusive")
		}
		env.Logger.Warn("--collector.netdev.device-blacklist is DEPRECATED and will be removed in 2.0.0, use --collector.netdev.device-exclude")
		exclude = old
	}
	filter, err := newNameFilter(exclude, include)
	if err != nil {
		return nil, fmt.Errorf("netdev: %w", err)
	}
	c := &netdevCollector{
		fs:          fs,
		filter:      filter,
		addressInfo: env.BoolOption("address-info"),
		addrDesc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "network_address", "info"),
			"node network address by device", []string{"device", "address", "netmask", "scope"}, nil),
	}
	detailed := env.BoolOption("enable-detailed-metrics")
	for i, f := range netdevFields {
		key := f.legacy
		if detailed {
			key = f.detailed
		}
		c.descs[i] = prometheus.NewDesc(prometheus.BuildFQName(namespace, "network", key+"_total"),
			"Network device statistic "+key+".", []string{"device"}, nil)
	}
	return c, nil
}

func (c *netdevCollector) Update(ch chan<- prometheus.Metric) error {
	netDev, err := c.fs.NetDev()
	if err != nil {
		return fmt.Errorf("couldn't get netstats: %w", err)
	}
	for name, s := range netDev {
		if c.filter.ignored(name) {
			continue
		}
		values := [16]uint64{
			s.RxBytes, s.RxPackets, s.RxErrors, s.RxDropped, s.RxFIFO, s.RxFrame, s.RxCompressed, s.RxMulticast,
			s.TxBytes, s.TxPackets, s.TxErrors, s.TxDropped, s.TxFIFO, s.TxCollisions, s.TxCarrier, s.TxCompressed,
		}
		for i, v := range values {
			ch <- prometheus.MustNewConstMetric(c.descs[i], prometheus.CounterValue, float64(v), name)
		}
	}
	if c.addressInfo {
		ifaces, err := net.Interfaces()
		if err != nil {
			return fmt.Errorf("could not get network interfaces: %w", err)
		}
		for _, iface := range ifaces {
			addrs, _ := iface.Addrs()
			for _, addr := range addrs {
				ip, ipNet, err := net.ParseCIDR(addr.String())
				if err != nil {
					continue
				}
				size, _ := ipNet.Mask.Size()
				ch <- prometheus.MustNewConstMetric(c.addrDesc, prometheus.GaugeValue, 1,
					iface.Name, ip.String(), strconv.Itoa(size), netdevScope(ip))
			}
		}
	}
	return nil
}

func netdevScope(ip net.IP) string {
	switch {
	case ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsInterfaceLocalMulticast():
		return "interface-local"
	case ip.IsGlobalUnicast():
		return "global"
	}
	return ""
}
