package host

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/blockdevice"
)

const (
	diskstatsDefaultExclude = `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`
	// /proc/diskstats counts time in milliseconds and sizes in 512-byte
	// sectors whatever the device's block size.
	diskstatsSecondsPerTick = 1.0 / 1000.0
	diskstatsSectorSize     = 512.0
)

func init() {
	Register(Spec{
		Name:           "diskstats",
		DefaultEnabled: true,
		Options: []Option{
			{Name: "device-exclude", Default: diskstatsDefaultExclude, Help: "Regexp of diskstats devices to exclude (mutually exclusive to device-include)."},
			{Name: "device-include", Help: "Regexp of diskstats devices to include (mutually exclusive to device-exclude)."},
			{Name: "ignored-devices", Help: "DEPRECATED: Use collector.diskstats.device-exclude"},
		},
		New: newDiskstatsCollector,
	})
}

// diskstatsUdev holds the udev properties diskstats reports. Only these are
// kept, so parsing a udev data file allocates a handful of strings.
type diskstatsUdev struct {
	dmLVLayer, dmLVName, dmName, dmUUID, dmVGName   string
	ata                                             string
	ataRotationRate, ataWriteCache, ataWriteCacheOn string
	hasRotationRate, hasWriteCache, hasWriteCacheOn bool
	fsType, fsUsage, fsUUID, fsVersion              string
	model, path, revision, serial, serialShort, wwn string
	scsiIdentSerial                                 string
}

type diskstatsUdevCacheEntry struct {
	modTime time.Time
	size    int64
	info    diskstatsUdev
}

type diskstatsCollector struct {
	fs      blockdevice.FS
	filter  *nameFilter
	logger  *slog.Logger
	udevDir string // "" when udev data is unreadable
	// udev data files change only when udev re-runs its rules; they are
	// re-parsed only when their mtime or size changes.
	udevCache map[string]*diskstatsUdevCacheEntry
	buf       []byte
	procPath  string          // /proc/diskstats
	statBuf   []byte          // its content
	lines     []diskstatsLine // its devices, reused

	info           typedDesc
	stats          []typedDesc
	filesystemInfo typedDesc
	dmInfo         typedDesc
	dmBacking      typedDesc
	ataWriteCache  typedDesc
	ataWriteCacheE typedDesc
	ataRotation    typedDesc
}

func newDiskstatsCollector(env *Env) (Collector, error) {
	fs, err := blockdevice.NewFS(env.Paths.Proc, env.Paths.Sys)
	if err != nil {
		return nil, fmt.Errorf("failed to open sysfs: %w", err)
	}
	filter, err := optionFilter(env, "device-exclude", "device-include", "ignored-devices", diskstatsDefaultExclude)
	if err != nil {
		return nil, fmt.Errorf("diskstats: %w", err)
	}

	dev := []string{"device"}
	d := func(name, help string, t prometheus.ValueType, labels ...string) typedDesc {
		if labels == nil {
			labels = dev
		}
		return typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "disk", name), help, labels, nil), t}
	}
	c := &diskstatsCollector{
		procPath:  env.Paths.ProcPath("diskstats"),
		fs:        fs,
		filter:    filter,
		logger:    env.Logger,
		udevCache: map[string]*diskstatsUdevCacheEntry{},
		info: d("info", "Info of /sys/block/<block_device>.", prometheus.GaugeValue,
			"device", "major", "minor", "path", "wwn", "model", "serial", "revision", "rotational"),
		// In /proc/diskstats field order: a kernel reporting fewer fields
		// gets fewer metrics, never zeros for what it does not count.
		stats: []typedDesc{
			d("reads_completed_total", "The total number of reads completed successfully.", prometheus.CounterValue),
			d("reads_merged_total", "The total number of reads merged.", prometheus.CounterValue),
			d("read_bytes_total", "The total number of bytes read successfully.", prometheus.CounterValue),
			d("read_time_seconds_total", "The total number of seconds spent by all reads.", prometheus.CounterValue),
			d("writes_completed_total", "The total number of writes completed successfully.", prometheus.CounterValue),
			d("writes_merged_total", "The number of writes merged.", prometheus.CounterValue),
			d("written_bytes_total", "The total number of bytes written successfully.", prometheus.CounterValue),
			d("write_time_seconds_total", "This is the total number of seconds spent by all writes.", prometheus.CounterValue),
			d("io_now", "The number of I/Os currently in progress.", prometheus.GaugeValue),
			d("io_time_seconds_total", "Total seconds spent doing I/Os.", prometheus.CounterValue),
			d("io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.", prometheus.CounterValue),
			d("discards_completed_total", "The total number of discards completed successfully.", prometheus.CounterValue),
			d("discards_merged_total", "The total number of discards merged.", prometheus.CounterValue),
			d("discarded_sectors_total", "The total number of sectors discarded successfully.", prometheus.CounterValue),
			d("discard_time_seconds_total", "This is the total number of seconds spent by all discards.", prometheus.CounterValue),
			d("flush_requests_total", "The total number of flush requests completed successfully", prometheus.CounterValue),
			d("flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests.", prometheus.CounterValue),
		},
		filesystemInfo: d("filesystem_info", "Info about disk filesystem.", prometheus.GaugeValue,
			"device", "type", "usage", "uuid", "version"),
		dmInfo: d("device_mapper_info", "Info about disk device mapper.", prometheus.GaugeValue,
			"device", "name", "uuid", "vg_name", "lv_name", "lv_layer"),
		dmBacking: d("device_mapper_backing_device_info", "Info about the underlying block devices of a device mapper device.", prometheus.GaugeValue,
			"device", "backing_device"),
		ataWriteCache:  d("ata_write_cache", "ATA disk has a write cache.", prometheus.GaugeValue),
		ataWriteCacheE: d("ata_write_cache_enabled", "ATA disk has its write cache enabled.", prometheus.GaugeValue),
		ataRotation:    d("ata_rotation_rate_rpm", "ATA disk rotation rate in RPMs (0 for SSDs).", prometheus.GaugeValue),
	}
	if st, err := os.Stat(env.Paths.UdevData); err != nil || !st.IsDir() {
		env.Logger.Error("Failed to open directory, disabling udev device properties", "path", env.Paths.UdevData)
	} else {
		c.udevDir = env.Paths.UdevData
	}
	return c, nil
}

func (c *diskstatsCollector) Update(ch chan<- prometheus.Metric) error {
	var err error
	if c.statBuf, err = readFileInto(c.procPath, c.statBuf); err != nil {
		return fmt.Errorf("couldn't get diskstats: %w", err)
	}
	if c.lines, err = parseProcDiskstats(c.statBuf, c.lines); err != nil {
		return fmt.Errorf("couldn't get diskstats: %s: %w", c.procPath, err)
	}
	for i := range c.lines {
		s := &c.lines[i]
		dev := s.name
		if c.filter.ignored(dev) {
			continue
		}
		info := c.udev(s.major, s.minor)

		serial := info.scsiIdentSerial // usually the serial printed on the label
		if serial == "" {
			serial = info.serialShort
		}
		if serial == "" {
			serial = info.serial // virtio devices
		}
		// A device without a queue (dm, md on some kernels) reports 0, as
		// node_exporter does.
		rotational, _ := c.fs.SysBlockDeviceRotational(dev)
		ch <- c.info.mustNewConstMetric(1, dev,
			strconv.FormatUint(uint64(s.major), 10),
			strconv.FormatUint(uint64(s.minor), 10),
			info.path, info.wwn, info.model, serial, info.revision,
			strconv.FormatUint(rotational, 2))

		v := &s.v
		values := [...]float64{
			float64(v[0]),
			float64(v[1]),
			float64(v[2]) * diskstatsSectorSize,
			float64(v[3]) * diskstatsSecondsPerTick,
			float64(v[4]),
			float64(v[5]),
			float64(v[6]) * diskstatsSectorSize,
			float64(v[7]) * diskstatsSecondsPerTick,
			float64(v[8]),
			float64(v[9]) * diskstatsSecondsPerTick,
			float64(v[10]) * diskstatsSecondsPerTick,
			float64(v[11]),
			float64(v[12]),
			float64(v[13]),
			float64(v[14]) * diskstatsSecondsPerTick,
			float64(v[15]),
			float64(v[16]) * diskstatsSecondsPerTick,
		}
		n := min(s.count-3, len(values)) // less major, minor and name
		for j := 0; j < n; j++ {
			ch <- c.stats[j].mustNewConstMetric(values[j], dev)
		}

		if info.fsType != "" {
			ch <- c.filesystemInfo.mustNewConstMetric(1, dev, info.fsType, info.fsUsage, info.fsUUID, info.fsVersion)
		}
		if info.dmName != "" {
			ch <- c.dmInfo.mustNewConstMetric(1, dev, info.dmName, info.dmUUID, info.dmVGName, info.dmLVName, info.dmLVLayer)
			c.updateBacking(ch, dev)
		}
		if info.ata != "" {
			c.ata(ch, dev, c.ataWriteCache, info.ataWriteCache, info.hasWriteCache)
			c.ata(ch, dev, c.ataWriteCacheE, info.ataWriteCacheOn, info.hasWriteCacheOn)
			c.ata(ch, dev, c.ataRotation, info.ataRotationRate, info.hasRotationRate)
		}
	}
	return nil
}

func (c *diskstatsCollector) ata(ch chan<- prometheus.Metric, dev string, d typedDesc, v string, present bool) {
	if !present {
		return
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		c.logger.Error("Failed to parse ATA value", "device", dev, "err", err)
		return
	}
	ch <- d.mustNewConstMetric(f, dev)
}

func (c *diskstatsCollector) updateBacking(ch chan<- prometheus.Metric, dev string) {
	under, err := c.fs.SysBlockDeviceUnderlyingDevices(dev)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			c.logger.Debug("Failed to get device mapper backing devices", "device", dev, "err", err)
		}
		return
	}
	sort.Strings(under.DeviceNames)
	for _, b := range under.DeviceNames {
		ch <- c.dmBacking.mustNewConstMetric(1, dev, b)
	}
}

// udev returns the udev properties of block device major:minor, or zero
// values when udev data is unavailable.
func (c *diskstatsCollector) udev(major, minor uint32) diskstatsUdev {
	if c.udevDir == "" {
		return diskstatsUdev{}
	}
	name := "b" + strconv.FormatUint(uint64(major), 10) + ":" + strconv.FormatUint(uint64(minor), 10)
	path := filepath.Join(c.udevDir, name)
	st, err := os.Stat(path)
	if err != nil {
		delete(c.udevCache, name)
		c.logger.Debug("Failed to parse udev info", "err", err)
		return diskstatsUdev{}
	}
	if e, ok := c.udevCache[name]; ok && e.modTime.Equal(st.ModTime()) && e.size == st.Size() {
		return e.info
	}
	if c.buf, err = readFileInto(path, c.buf); err != nil {
		c.logger.Debug("Failed to parse udev info", "err", err)
		return diskstatsUdev{}
	}
	e := &diskstatsUdevCacheEntry{modTime: st.ModTime(), size: st.Size(), info: parseDiskstatsUdev(c.buf)}
	if len(c.udevCache) > 4096 {
		clear(c.udevCache)
	}
	c.udevCache[name] = e
	return e.info
}

// parseDiskstatsUdev reads the device properties ("E:KEY=VALUE" lines) of a
// udev data file (see udevadm(8)); other lines are ignored.
func parseDiskstatsUdev(data []byte) diskstatsUdev {
	var u diskstatsUdev
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		if len(line) < 2 || line[0] != 'E' || line[1] != ':' {
			continue
		}
		key, value, ok := bytes.Cut(line[2:], []byte("="))
		if !ok {
			continue
		}
		switch string(key) {
		case "DM_LV_LAYER":
			u.dmLVLayer = string(value)
		case "DM_LV_NAME":
			u.dmLVName = string(value)
		case "DM_NAME":
			u.dmName = string(value)
		case "DM_UUID":
			u.dmUUID = string(value)
		case "DM_VG_NAME":
			u.dmVGName = string(value)
		case "ID_ATA":
			u.ata = string(value)
		case "ID_ATA_ROTATION_RATE_RPM":
			u.ataRotationRate, u.hasRotationRate = string(value), true
		case "ID_ATA_WRITE_CACHE":
			u.ataWriteCache, u.hasWriteCache = string(value), true
		case "ID_ATA_WRITE_CACHE_ENABLED":
			u.ataWriteCacheOn, u.hasWriteCacheOn = string(value), true
		case "ID_FS_TYPE":
			u.fsType = string(value)
		case "ID_FS_USAGE":
			u.fsUsage = string(value)
		case "ID_FS_UUID":
			u.fsUUID = string(value)
		case "ID_FS_VERSION":
			u.fsVersion = string(value)
		case "ID_MODEL":
			u.model = string(value)
		case "ID_PATH":
			u.path = string(value)
		case "ID_REVISION":
			u.revision = string(value)
		case "ID_SERIAL":
			u.serial = string(value)
		case "ID_SERIAL_SHORT":
			u.serialShort = string(value)
		case "ID_WWN":
			u.wwn = string(value)
		case "SCSI_IDENT_SERIAL":
			u.scsiIdentSerial = string(value)
		}
	}
	return u
}

// diskstatsLine is one device of /proc/diskstats: the counters after its
// name, count of the fields read in all (as procfs's IoStatsCount).
type diskstatsLine struct {
	major, minor uint32
	name         string
	v            [17]uint64
	count        int
}

// parseProcDiskstats parses /proc/diskstats as procfs's ProcDiskstats
// (which node_exporter uses) does, without fmt.Sscanf: lines with fewer
// than 14 fields are skipped, a field that is not a number fails the
// read. lines is reused, device names too while they do not change.
func parseProcDiskstats(b []byte, lines []diskstatsLine) ([]diskstatsLine, error) {
	n := 0
	for len(b) > 0 {
		var line []byte
		line, b = cutLine(b)
		if n == len(lines) {
			lines = append(lines, diskstatsLine{})
		}
		d := &lines[n]
		prev := d.name
		*d = diskstatsLine{}
		rest := line
		var f []byte
		for d.count < 20 {
			if f, rest = cutField(rest); f == nil {
				break
			}
			switch d.count {
			case 0, 1:
				v, err := strconv.ParseUint(string(f), 10, 32)
				if err != nil {
					return lines[:n], fmt.Errorf("couldn't parse %q: %w", line, err)
				}
				if d.count == 0 {
					d.major = uint32(v)
				} else {
					d.minor = uint32(v)
				}
			case 2:
				d.name = internBytes(prev, f)
			default:
				v, err := strconv.ParseUint(string(f), 10, 64)
				if err != nil {
					return lines[:n], fmt.Errorf("couldn't parse %q: %w", line, err)
				}
				d.v[d.count-3] = v
			}
			d.count++
		}
		if d.count >= 14 {
			n++
		} else {
			d.name = prev
		}
	}
	return lines[:n], nil
}
