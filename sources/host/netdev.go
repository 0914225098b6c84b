package host

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// netdev reads the devices' counters over netlink by default, as
// node_exporter does (--collector.netdev.netlink), which adds
// receive_nohandler_total and, with enable-detailed-metrics, the kernel's
// detailed error counters; both read the network namespace of the process.
// With netlink off it reads <procfs>/net/dev, as node_exporter does.
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
			{Name: "netlink", Default: "true", Bool: true, Help: "Use netlink to gather stats instead of /proc/net/dev."},
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

// netdevLinkFields are the netlink counters node_exporter reports, in
// struct rtnl_link_stats64's order, under its detailed names; legacy is
// the default name, with sum naming the counters the kernel adds into the
// matching /proc/net/dev column (net/core/net-procfs.c), as node_exporter
// does. An empty legacy name is a counter only the detailed names report.
var netdevLinkFields = [...]struct {
	field            int
	detailed, legacy string
	sum              []int
}{
	{linkRxPackets, "receive_packets", "receive_packets", nil},
	{linkTxPackets, "transmit_packets", "transmit_packets", nil},
	{linkRxBytes, "receive_bytes", "receive_bytes", nil},
	{linkTxBytes, "transmit_bytes", "transmit_bytes", nil},
	{linkRxErrors, "receive_errors", "receive_errs", nil},
	{linkTxErrors, "transmit_errors", "transmit_errs", nil},
	{linkRxDropped, "receive_dropped", "receive_drop", []int{linkRxMissedErrors}},
	{linkTxDropped, "transmit_dropped", "transmit_drop", nil},
	{linkMulticast, "multicast", "receive_multicast", nil},
	{linkCollisions, "collisions", "transmit_colls", nil},
	{linkRxLengthErrors, "receive_length_errors", "", nil},
	{linkRxOverErrors, "receive_over_errors", "", nil},
	{linkRxCRCErrors, "receive_crc_errors", "", nil},
	{linkRxFrameErrors, "receive_frame_errors", "receive_frame", []int{linkRxLengthErrors, linkRxOverErrors, linkRxCRCErrors}},
	{linkRxFIFOErrors, "receive_fifo_errors", "receive_fifo", nil},
	{linkRxMissedErrors, "receive_missed_errors", "", nil},
	{linkTxAbortedErrors, "transmit_aborted_errors", "", nil},
	{linkTxCarrierErrors, "transmit_carrier_errors", "transmit_carrier", []int{linkTxAbortedErrors, linkTxHeartbeatErrors, linkTxWindowErrors}},
	{linkTxFIFOErrors, "transmit_fifo_errors", "transmit_fifo", nil},
	{linkTxHeartbeatErrors, "transmit_heartbeat_errors", "", nil},
	{linkTxWindowErrors, "transmit_window_errors", "", nil},
	{linkRxCompressed, "receive_compressed", "receive_compressed", nil},
	{linkTxCompressed, "transmit_compressed", "transmit_compressed", nil},
	{linkRxNoHandler, "receive_nohandler", "receive_nohandler", nil},
}

// netdevLinkDesc is one family the netlink path reports.
type netdevLinkDesc struct {
	desc  *prometheus.Desc
	field int
	sum   []int
}

type netdevCollector struct {
	fs          procfs.FS
	filter      *nameFilter
	descs       [16]*prometheus.Desc
	addressInfo bool
	addrDesc    *prometheus.Desc

	netlink   bool
	links     netlinkLinks
	linkDescs []netdevLinkDesc
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
	if c.netlink = env.BoolOption("netlink"); c.netlink {
		for _, f := range netdevLinkFields {
			key, sum := f.legacy, f.sum
			if detailed {
				key, sum = f.detailed, nil
			}
			if key == "" {
				continue
			}
			c.linkDescs = append(c.linkDescs, netdevLinkDesc{
				desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "network", key+"_total"),
					"Network device statistic "+key+".", []string{"device"}, nil),
				field: f.field,
				sum:   sum,
			})
		}
	}
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
	if c.netlink {
		err := c.links.dump(func(name string, s *linkStats) {
			if c.filter.ignored(name) {
				return
			}
			for _, d := range c.linkDescs {
				v := s[d.field]
				for _, f := range d.sum {
					v += s[f]
				}
				ch <- newMetric(d.desc, prometheus.CounterValue, float64(v), name)
			}
		})
		if err != nil {
			return fmt.Errorf("couldn't get netstats: %w", err)
		}
		return c.updateAddressInfo(ch)
	}
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
			ch <- newMetric(c.descs[i], prometheus.CounterValue, float64(v), name)
		}
	}
	return c.updateAddressInfo(ch)
}

func (c *netdevCollector) updateAddressInfo(ch chan<- prometheus.Metric) error {
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
				ch <- newMetric(c.addrDesc, prometheus.GaugeValue, 1,
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
