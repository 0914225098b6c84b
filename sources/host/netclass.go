package host

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"
)

func init() {
	Register(Spec{
		Name:           "netclass",
		DefaultEnabled: true,
		Options: []Option{
			{Name: "ignored-devices", Default: "^$", Help: "Regexp of net devices to ignore for netclass collector."},
			{Name: "ignore-invalid-speed", Default: "false", Bool: true, Help: "Ignore devices where the speed is invalid. This will be the default behavior in 2.x."},
		},
		New: newNetclassCollector,
	})
}

// netclassProp is one numeric attribute of /sys/class/net/<iface>.
type netclassProp struct {
	desc  typedDesc
	value func(*sysfs.NetClassIface) *int64
}

type netclassCollector struct {
	fs                 sysfs.FS
	ignored            *regexp.Regexp
	ignoreInvalidSpeed bool
	logger             *slog.Logger

	up, info typedDesc
	props    []netclassProp // in node_exporter's order
	nameType typedDesc
	speed    typedDesc
	txQueue  typedDesc
	protocol typedDesc
}

func newNetclassCollector(env *Env) (Collector, error) {
	fs, err := sysfs.NewFS(env.Paths.Sys)
	if err != nil {
		return nil, fmt.Errorf("failed to open sysfs: %w", err)
	}
	ignored, err := regexp.Compile(env.Option("ignored-devices"))
	if err != nil {
		return nil, fmt.Errorf("netclass: bad ignored-devices: %w", err)
	}
	prop := func(name string, t prometheus.ValueType) typedDesc {
		return typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "network", name),
			"Network device property: "+name, []string{"device"}, nil), t}
	}
	g, cnt := prometheus.GaugeValue, prometheus.CounterValue
	return &netclassCollector{
		fs:                 fs,
		ignored:            ignored,
		ignoreInvalidSpeed: env.BoolOption("ignore-invalid-speed"),
		logger:             env.Logger,
		up: typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "network", "up"),
			"Value is 1 if operstate is 'up', 0 otherwise.", []string{"device"}, nil), g},
		info: typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "network", "info"),
			"Non-numeric data from /sys/class/net/<iface>, value is always 1.",
			[]string{"device", "address", "broadcast", "duplex", "operstate", "adminstate", "ifalias"}, nil), g},
		props: []netclassProp{
			{prop("address_assign_type", g), func(i *sysfs.NetClassIface) *int64 { return i.AddrAssignType }},
			{prop("carrier", g), func(i *sysfs.NetClassIface) *int64 { return i.Carrier }},
			{prop("carrier_changes_total", cnt), func(i *sysfs.NetClassIface) *int64 { return i.CarrierChanges }},
			{prop("carrier_up_changes_total", cnt), func(i *sysfs.NetClassIface) *int64 { return i.CarrierUpCount }},
			{prop("carrier_down_changes_total", cnt), func(i *sysfs.NetClassIface) *int64 { return i.CarrierDownCount }},
			{prop("device_id", g), func(i *sysfs.NetClassIface) *int64 { return i.DevID }},
			{prop("dormant", g), func(i *sysfs.NetClassIface) *int64 { return i.Dormant }},
			{prop("flags", g), func(i *sysfs.NetClassIface) *int64 { return i.Flags }},
			{prop("iface_id", g), func(i *sysfs.NetClassIface) *int64 { return i.IfIndex }},
			{prop("iface_link", g), func(i *sysfs.NetClassIface) *int64 { return i.IfLink }},
			{prop("iface_link_mode", g), func(i *sysfs.NetClassIface) *int64 { return i.LinkMode }},
			{prop("mtu_bytes", g), func(i *sysfs.NetClassIface) *int64 { return i.MTU }},
			{prop("net_dev_group", g), func(i *sysfs.NetClassIface) *int64 { return i.NetDevGroup }},
			{prop("name_assign_type", g), func(i *sysfs.NetClassIface) *int64 { return i.NameAssignType }},
		},
		speed:    prop("speed_bytes", g),
		txQueue:  prop("transmit_queue_length", g),
		protocol: prop("protocol_type", g),
	}, nil
}

func (c *netclassCollector) Update(ch chan<- prometheus.Metric) error {
	devices, err := c.fs.NetClassDevices()
	if err != nil {
		return c.noData(err)
	}
	for _, dev := range devices {
		if c.ignored.MatchString(dev) {
			continue
		}
		iface, err := c.fs.NetClassByIface(dev)
		if err != nil {
			return c.noData(err)
		}
		up := 0.0
		if iface.OperState == "up" {
			up = 1
		}
		ch <- c.up.mustNewConstMetric(up, iface.Name)
		ch <- c.info.mustNewConstMetric(1, iface.Name, iface.Address, iface.Broadcast, iface.Duplex,
			iface.OperState, netclassAdminState(iface.Flags), iface.IfAlias)
		for _, p := range c.props {
			if v := p.value(iface); v != nil {
				ch <- p.desc.mustNewConstMetric(float64(*v), iface.Name)
			}
		}
		// Some drivers report -1 when the speed is unknown.
		if s := iface.Speed; s != nil && (*s >= 0 || !c.ignoreInvalidSpeed) {
			ch <- c.speed.mustNewConstMetric(float64(*s*1000*1000/8), iface.Name)
		}
		if v := iface.TxQueueLen; v != nil {
			ch <- c.txQueue.mustNewConstMetric(float64(*v), iface.Name)
		}
		if v := iface.Type; v != nil {
			ch <- c.protocol.mustNewConstMetric(float64(*v), iface.Name)
		}
	}
	return nil
}

func (c *netclassCollector) noData(err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		c.logger.Debug("Could not read netclass file", "err", err)
		return ErrNoData
	}
	return fmt.Errorf("could not get net class info: %w", err)
}

// netclassAdminState is the IFF_UP bit of the interface flags.
func netclassAdminState(flags *int64) string {
	switch {
	case flags == nil:
		return "unknown"
	case *flags&1 == 1:
		return "up"
	default:
		return "down"
	}
}
