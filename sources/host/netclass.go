package host

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"

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

// netclassAttrs are the files of both, numeric first.
var netclassAttrs = append(netclassIntAttrs[:], netclassStrAttrs[:]...)

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

	mu       sync.Mutex // held by Update, so Close does not close files in use
	closed   atomic.Bool
	holdable bool                     // the directory is on sysfs
	held     map[string]*netclassHeld // by device
}

// netclassHoldMax bounds the devices whose attribute files stay open: 22
// files each, and the kernel keeps a page for each open sysfs file, so
// at most about 1.5 MB of kernel memory.
const netclassHoldMax = 16

// netclassFds are a device's open attribute files, in netclassAttrs'
// order; -1 for one the device does not have.
type netclassFds [ncInts + ncStrs]int

type netclassHeld struct {
	ino uint64 // the device's sysfs directory
	fds netclassFds
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
	dir := env.Paths.SysPath("class", "net")
	var st unix.Statfs_t
	holdable := unix.Statfs(dir, &st) == nil && st.Type == unix.SYSFS_MAGIC
	return &netclassCollector{
		dir:                dir,
		holdable:           holdable,
		held:               map[string]*netclassHeld{},
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
	c.mu.Lock()
	defer func() {
		c.mu.Unlock()
		// Closed while this Update ran: release what it held.
		if c.closed.Load() && c.mu.TryLock() {
			c.releaseAll()
			c.mu.Unlock()
		}
	}()
	devices, err := c.fs.NetClassDevices()
	if err != nil {
		return c.noData(err)
	}
	seen := make(map[string]*netclassIface, len(devices))
	defer func() {
		// Forget devices that are gone; keep what this scrape read.
		for dev := range c.held {
			if seen[dev] == nil {
				c.release(dev)
			}
		}
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
// The attribute files of up to netclassHoldMax devices stay open between
// scrapes (see heldFile for why); a device's are read through them while
// its sysfs directory is the same one (a device renamed or replaced under
// the same name has another), else they are closed and opened afresh.
func (c *netclassCollector) read(dev string, iface *netclassIface) error {
	path := c.dir + "/" + dev
	if h := c.held[dev]; h != nil {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err == nil && st.Ino == h.ino {
			if err := c.readAttrs(path, &h.fds, iface); err == nil {
				return nil
			}
		}
		c.release(dev)
	}
	dirfd, err := openSysDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	var fds netclassFds
	for i, name := range netclassAttrs {
		fds[i], err = openSysAttrAt(dirfd, name)
		if err != nil {
			if !sysAttrIgnorable(err) {
				closeFds(fds[:i])
				return netclassAttrErr(path, name, err)
			}
			fds[i] = -1 // absent for this device
		}
	}
	if err := c.readAttrs(path, &fds, iface); err != nil {
		closeFds(fds[:])
		return err
	}
	var st unix.Stat_t
	if c.holdable && len(c.held) < netclassHoldMax && unix.Fstat(dirfd, &st) == nil {
		c.held[dev] = &netclassHeld{ino: st.Ino, fds: fds}
	} else {
		closeFds(fds[:])
	}
	return nil
}

// readAttrs reads the open attribute files fds of the device at path.
func (c *netclassCollector) readAttrs(path string, fds *netclassFds, iface *netclassIface) error {
	for i, fd := range fds {
		var b []byte
		var err error = unix.ENOENT
		if fd >= 0 {
			b, err = readSysAttr(fd, &c.buf)
		}
		if err != nil && !sysAttrIgnorable(err) {
			return netclassAttrErr(path, netclassAttrs[i], err)
		}
		ok := err == nil // else the attribute is absent
		if i < ncInts {
			// As procfs: base from the prefix (flags are hex), 0 when
			// malformed.
			var v int64
			if ok {
				if v, err = strconv.ParseInt(string(b), 0, 64); err != nil {
					v = 0
				}
			}
			iface.has[i], iface.ints[i] = ok, v
			continue
		}
		if ok {
			iface.strs[i-ncInts] = internBytes(iface.strs[i-ncInts], b)
		} else {
			iface.strs[i-ncInts] = ""
		}
	}
	return nil
}

func netclassAttrErr(path, name string, err error) error {
	return fmt.Errorf("failed to read file %q: %w", path+"/"+name, &os.PathError{Op: "read", Path: path + "/" + name, Err: err})
}

// release closes the held attribute files of dev.
func (c *netclassCollector) release(dev string) {
	if h := c.held[dev]; h != nil {
		closeFds(h.fds[:])
		delete(c.held, dev)
	}
}

// Close implements io.Closer: it closes the held attribute files, now or,
// when an Update is still running (one that timed out), as it ends.
func (c *netclassCollector) Close() error {
	c.closed.Store(true)
	if c.mu.TryLock() {
		c.releaseAll()
		c.mu.Unlock()
	}
	return nil
}

func (c *netclassCollector) releaseAll() {
	for dev := range c.held {
		c.release(dev)
	}
}

func closeFds(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
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
