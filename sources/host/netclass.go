package host

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"
	"golang.org/x/sys/unix"
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

// The numeric attributes of /sys/class/net/<iface> the collector reports,
// indexes into netclassIface.ints.
const (
	ncAddrAssignType = iota
	ncCarrier
	ncCarrierChanges
	ncCarrierUpCount
	ncCarrierDownCount
	ncDevID
	ncDormant
	ncFlags
	ncIfIndex
	ncIfLink
	ncLinkMode
	ncMTU
	ncNetDevGroup
	ncNameAssignType
	ncSpeed
	ncTxQueueLen
	ncType
	ncInts
)

// netclassIntAttrs are the files of the numeric attributes, by index.
var netclassIntAttrs = [ncInts]string{
	ncAddrAssignType: "addr_assign_type", ncCarrier: "carrier", ncCarrierChanges: "carrier_changes",
	ncCarrierUpCount: "carrier_up_count", ncCarrierDownCount: "carrier_down_count", ncDevID: "dev_id",
	ncDormant: "dormant", ncFlags: "flags", ncIfIndex: "ifindex", ncIfLink: "iflink", ncLinkMode: "link_mode",
	ncMTU: "mtu", ncNetDevGroup: "netdev_group", ncNameAssignType: "name_assign_type", ncSpeed: "speed",
	ncTxQueueLen: "tx_queue_len", ncType: "type",
}

// The string attributes, indexes into netclassIface.strs.
const (
	ncAddress = iota
	ncBroadcast
	ncDuplex
	ncIfAlias
	ncOperState
	ncStrs
)

var netclassStrAttrs = [ncStrs]string{
	ncAddress: "address", ncBroadcast: "broadcast", ncDuplex: "duplex", ncIfAlias: "ifalias", ncOperState: "operstate",
}

// netclassIface is what the collector reads of one interface: the
// attributes node_exporter reports, read as procfs's netclass parser reads
// them (an unreadable attribute is absent, a malformed number is 0).
type netclassIface struct {
	ints [ncInts]int64
	has  [ncInts]bool
	strs [ncStrs]string // "" when absent, as procfs leaves them
}

// netclassProp is one numeric attribute of /sys/class/net/<iface>.
type netclassProp struct {
	desc typedDesc
	attr int
}

type netclassCollector struct {
	dir                string // <sysfs>/class/net
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

	buf  [sysAttrMax]byte
	last map[string]*netclassIface // the previous scrape's, to reuse unchanged strings
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
		dir:                env.Paths.SysPath("class", "net"),
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
			{prop("address_assign_type", g), ncAddrAssignType},
			{prop("carrier", g), ncCarrier},
			{prop("carrier_changes_total", cnt), ncCarrierChanges},
			{prop("carrier_up_changes_total", cnt), ncCarrierUpCount},
			{prop("carrier_down_changes_total", cnt), ncCarrierDownCount},
			{prop("device_id", g), ncDevID},
			{prop("dormant", g), ncDormant},
			{prop("flags", g), ncFlags},
			{prop("iface_id", g), ncIfIndex},
			{prop("iface_link", g), ncIfLink},
			{prop("iface_link_mode", g), ncLinkMode},
			{prop("mtu_bytes", g), ncMTU},
			{prop("net_dev_group", g), ncNetDevGroup},
			{prop("name_assign_type", g), ncNameAssignType},
		},
		speed:    prop("speed_bytes", g),
		txQueue:  prop("transmit_queue_length", g),
		protocol: prop("protocol_type", g),
		last:     map[string]*netclassIface{},
	}, nil
}

func (c *netclassCollector) Update(ch chan<- prometheus.Metric) error {
	devices, err := c.fs.NetClassDevices()
	if err != nil {
		return c.noData(err)
	}
	seen := make(map[string]*netclassIface, len(devices))
	defer func() {
		// Forget devices that are gone; keep what this scrape read.
		c.last = seen
	}()
	for _, dev := range devices {
		if c.ignored.MatchString(dev) {
			continue
		}
		iface := c.last[dev]
		if iface == nil {
			iface = &netclassIface{}
		}
		if err := c.read(dev, iface); err != nil {
			if errors.Is(err, os.ErrNotExist) && !c.exists(dev) {
				// Removed while this scrape read it (a container's
				// veth, say): it is gone, not a failure.
				continue
			}
			return c.noData(err)
		}
		seen[dev] = iface
		up := 0.0
		if iface.strs[ncOperState] == "up" {
			up = 1
		}
		ch <- c.up.mustNewConstMetric(up, dev)
		var flags *int64
		if iface.has[ncFlags] {
			flags = &iface.ints[ncFlags]
		}
		ch <- c.info.mustNewConstMetric(1, dev, iface.strs[ncAddress], iface.strs[ncBroadcast], iface.strs[ncDuplex],
			iface.strs[ncOperState], netclassAdminState(flags), iface.strs[ncIfAlias])
		for _, p := range c.props {
			if iface.has[p.attr] {
				ch <- p.desc.mustNewConstMetric(float64(iface.ints[p.attr]), dev)
			}
		}
		// Some drivers report -1 when the speed is unknown.
		if s := iface.ints[ncSpeed]; iface.has[ncSpeed] && (s >= 0 || !c.ignoreInvalidSpeed) {
			ch <- c.speed.mustNewConstMetric(float64(s*1000*1000/8), dev)
		}
		if iface.has[ncTxQueueLen] {
			ch <- c.txQueue.mustNewConstMetric(float64(iface.ints[ncTxQueueLen]), dev)
		}
		if iface.has[ncType] {
			ch <- c.protocol.mustNewConstMetric(float64(iface.ints[ncType]), dev)
		}
	}
	return nil
}

// read fills iface with dev's attributes, reading only those reported.
func (c *netclassCollector) read(dev string, iface *netclassIface) error {
	path := c.dir + "/" + dev
	dirfd, err := openSysDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	attrErr := func(name string, err error) error {
		return fmt.Errorf("failed to read file %q: %w", path+"/"+name, &os.PathError{Op: "read", Path: path + "/" + name, Err: err})
	}
	for i, name := range netclassIntAttrs {
		b, err := readSysAttrAt(dirfd, name, &c.buf)
		if err != nil {
			if !sysAttrIgnorable(err) {
				return attrErr(name, err)
			}
			iface.has[i], iface.ints[i] = false, 0
			continue
		}
		// As procfs: base from the prefix (flags are hex), 0 when malformed.
		v, err := strconv.ParseInt(string(b), 0, 64)
		if err != nil {
			v = 0
		}
		iface.has[i], iface.ints[i] = true, v
	}
	for i, name := range netclassStrAttrs {
		b, err := readSysAttrAt(dirfd, name, &c.buf)
		if err != nil {
			if !sysAttrIgnorable(err) {
				return attrErr(name, err)
			}
			iface.strs[i] = ""
			continue
		}
		iface.strs[i] = internBytes(iface.strs[i], b)
	}
	return nil
}

// exists says whether the device is still in sysfs.
func (c *netclassCollector) exists(dev string) bool {
	_, err := os.Lstat(filepath.Join(c.dir, dev))
	return err == nil
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
