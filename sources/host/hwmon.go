package host

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	Register(Spec{
		Name:           "hwmon",
		DefaultEnabled: true,
		Options: []Option{
			{Name: "chip-include", Help: "Regexp of hwmon chip to include (mutually exclusive to device-exclude)."},
			{Name: "chip-exclude", Help: "Regexp of hwmon chip to exclude (mutually exclusive to device-include)."},
			{Name: "sensor-include", Help: "Regexp of hwmon sensor to include (mutually exclusive to sensor-exclude)."},
			{Name: "sensor-exclude", Help: "Regexp of hwmon sensor to exclude (mutually exclusive to sensor-include)."},
		},
		New: newHwmonCollector,
	})
}

// hwmonSensorTypes are the file-name prefixes read from a chip directory.
var hwmonSensorTypes = [...]string{
	"vrm", "beep_enable", "update_interval", "in", "cpu", "fan",
	"pwm", "temp", "curr", "power", "energy", "humidity",
	"intrusion", "freq",
}

// hwmonReadSize bounds each attribute read, as node_exporter does: some
// drivers misbehave on larger reads, and values are short.
const hwmonReadSize = 128

type hwmonCollector struct {
	classDir     string
	logger       *slog.Logger
	chipFilter   *nameFilter
	sensorFilter *nameFilter

	chipNames   *prometheus.Desc
	sensorLabel *prometheus.Desc
	// descs caches the chip/sensor descriptors, whose names depend on the
	// files found; Update is never concurrent with itself.
	descs map[hwmonDescKey]*prometheus.Desc

	// Reused between chips and scrapes.
	buf     [hwmonReadSize]byte
	sensors []hwmonSensor
	index   map[string]int
}

type hwmonDescKey struct{ name, help string }

type hwmonSensor struct {
	key   string // type and number, e.g. "temp1"
	props []hwmonProp
}

type hwmonProp struct{ name, value string }

func (s *hwmonSensor) get(name string) (string, bool) {
	for _, p := range s.props {
		if p.name == name {
			return p.value, true
		}
	}
	return "", false
}

func newHwmonCollector(env *Env) (Collector, error) {
	chips, err := newDeviceFilter(env.Option("chip-exclude"), env.Option("chip-include"))
	if err != nil {
		return nil, fmt.Errorf("hwmon: chip filter: %w", err)
	}
	sensors, err := newDeviceFilter(env.Option("sensor-exclude"), env.Option("sensor-include"))
	if err != nil {
		return nil, fmt.Errorf("hwmon: sensor filter: %w", err)
	}
	return &hwmonCollector{
		classDir:     env.Paths.SysPath("class", "hwmon"),
		logger:       env.Logger,
		chipFilter:   chips,
		sensorFilter: sensors,
		chipNames: prometheus.NewDesc("node_hwmon_chip_names",
			"Annotation metric for human-readable chip names", []string{"chip", "chip_name"}, nil),
		sensorLabel: prometheus.NewDesc("node_hwmon_sensor_label",
			"Label for given chip and sensor", []string{"chip", "sensor", "label"}, nil),
		descs: map[hwmonDescKey]*prometheus.Desc{},
		index: map[string]int{},
	}, nil
}

func (c *hwmonCollector) Update(ch chan<- prometheus.Metric) error {
	entries, err := os.ReadDir(c.classDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			c.logger.Debug("hwmon collector metrics are not available for this system")
			return ErrNoData
		}
		return fmt.Errorf("hwmon: %w", err)
	}
	// Pass 1: derive each chip's base name. Several hwmon devices can hang
	// off one parent device (asus-nb-wmi has two, a wifi phy one per band):
	// node_exporter then tells them apart by their name file, or failing
	// that by their hwmonN directory.
	type chipDir struct{ dir, base, nameFile string }
	var chips []chipDir
	baseCount := map[string]int{}
	pairCount := map[[2]string]int{}
	var lastErr error
	for _, e := range entries {
		dir := filepath.Join(c.classDir, e.Name())
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			fi, err := os.Stat(dir)
			if err != nil {
				continue
			}
			isDir = fi.IsDir()
		}
		if !isDir {
			continue
		}
		base, err := hwmonChipName(dir)
		if err != nil {
			lastErr = err
			continue
		}
		var nameFile string
		if raw, err := os.ReadFile(filepath.Join(dir, "name")); err == nil {
			nameFile = strings.TrimSpace(string(raw))
		}
		chips = append(chips, chipDir{dir, base, nameFile})
		baseCount[base]++
		pairCount[[2]string{base, nameFile}]++
	}

	// Pass 2: collect each chip under its unique name.
	for _, cd := range chips {
		chip := cd.base
		if baseCount[cd.base] > 1 {
			suffix := hwmonCleanName(cd.nameFile)
			if suffix == "" || pairCount[[2]string{cd.base, cd.nameFile}] > 1 {
				suffix = hwmonCleanName(filepath.Base(cd.dir))
			}
			chip += "_" + suffix
		}
		if err := c.updateChip(ch, cd.dir, chip); err != nil {
			lastErr = err
		}
	}
	return lastErr
}

func (c *hwmonCollector) updateChip(ch chan<- prometheus.Metric, dir, chip string) error {
	if c.chipFilter.ignored(chip) {
		c.logger.Debug("ignoring hwmon chip", "chip", chip)
		return nil
	}

	c.sensors = c.sensors[:0]
	clear(c.index)
	if err := c.collectSensors(dir); err != nil {
		return fmt.Errorf("hwmon: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "device")); err == nil {
		if err := c.collectSensors(filepath.Join(dir, "device")); err != nil {
			return fmt.Errorf("hwmon: %w", err)
		}
	}

	if raw, err := os.ReadFile(filepath.Join(dir, "name")); err == nil {
		if human := hwmonCleanName(string(raw)); human != "" {
			c.emit(ch, c.chipNames, prometheus.GaugeValue, 1, chip, human)
		}
	}

	for i := range c.sensors {
		c.emitSensor(ch, chip, &c.sensors[i])
	}
	return nil
}

// collectSensors reads the attribute files of known sensor types in dir.
// Files read later replace earlier values of the same sensor attribute.
func (c *hwmonCollector) collectSensors(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	var path []byte
	for _, name := range names {
		ok, typ, num, prop := hwmonExplode(name)
		if !ok || !hwmonKnownType(typ) {
			continue
		}
		path = append(append(append(path[:0], dir...), '/'), name...)
		value, ok := c.readValue(string(path))
		if !ok {
			continue
		}
		key := typ + strconv.Itoa(num)
		i, seen := c.index[key]
		if !seen {
			i = len(c.sensors)
			c.index[key] = i
			if i < cap(c.sensors) {
				c.sensors = c.sensors[:i+1]
				c.sensors[i].key = key
				c.sensors[i].props = c.sensors[i].props[:0]
			} else {
				c.sensors = append(c.sensors, hwmonSensor{key: key})
			}
		}
		s := &c.sensors[i]
		replaced := false
		for j := range s.props {
			if s.props[j].name == prop {
				s.props[j].value = value
				replaced = true
				break
			}
		}
		if !replaced {
			s.props = append(s.props, hwmonProp{prop, value})
		}
	}
	return nil
}

// readValue does one read(2) of at most hwmonReadSize bytes. Broken
// drivers answer EAGAIN, on which os.ReadFile would wait forever for a
// sysfs file that supports poll; one plain read either succeeds or fails.
func (c *hwmonCollector) readValue(path string) (string, bool) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	n, err := syscall.Read(fd, c.buf[:])
	for err == syscall.EINTR {
		n, err = syscall.Read(fd, c.buf[:])
	}
	syscall.Close(fd)
	if err != nil || n < 0 {
		return "", false
	}
	return strings.Trim(string(c.buf[:n]), "\n"), true
}

func (c *hwmonCollector) desc(name, help string) *prometheus.Desc {
	k := hwmonDescKey{name, help}
	d, ok := c.descs[k]
	if !ok {
		d = prometheus.NewDesc(name, help, []string{"chip", "sensor"}, nil)
		c.descs[k] = d
	}
	return d
}

func (c *hwmonCollector) emit(ch chan<- prometheus.Metric, d *prometheus.Desc, vt prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, vt, v, labels...)
	if err != nil {
		c.logger.Debug("hwmon: skipping metric", "err", err)
		return
	}
	ch <- m
}

func (c *hwmonCollector) emitSensor(ch chan<- prometheus.Metric, chip string, s *hwmonSensor) {
	// Filters see "<chip>;<sensor>", so one sensor of one chip can be
	// selected, e.g. "platform_coretemp_0;temp3".
	if c.sensorFilter.ignored(chip + ";" + s.key) {
		c.logger.Debug("ignoring sensor", "sensor", s.key)
		return
	}
	_, typ, _, _ := hwmonExplode(s.key)
	sensor := s.key
	gauge := prometheus.GaugeValue

	label, hasLabel := s.get("label")
	if hasLabel {
		c.emit(ch, c.sensorLabel, gauge, 1, chip, sensor, strings.ToValidUTF8(label, "\uFFFD"))
	}

	switch typ {
	case "beep_enable":
		v := 0.0
		if raw, _ := s.get(""); raw == "1" {
			v = 1
		}
		c.emit(ch, c.desc("node_hwmon_beep_enabled", "Hardware beep enabled"), gauge, v, chip, sensor)
		return
	case "vrm":
		raw, _ := s.get("")
		if v, err := strconv.ParseFloat(raw, 64); err == nil {
			c.emit(ch, c.desc("node_hwmon_voltage_regulator_version", "Hardware voltage regulator"), gauge, v, chip, sensor)
		}
		return
	case "update_interval":
		raw, _ := s.get("")
		if v, err := strconv.ParseFloat(raw, 64); err == nil {
			c.emit(ch, c.desc("node_hwmon_update_interval_seconds", "Hardware monitor update interval"), gauge, v*0.001, chip, sensor)
		}
		return
	}

	prefix := "node_hwmon_" + typ
	_, hasBare := s.get("")
	for _, p := range s.props {
		element := p.name
		if element == "label" {
			continue
		}
		name := prefix
		if element == "input" {
			// "<sensor>_input" is the value, unless a bare "<sensor>" file
			// holds it, in which case this one keeps its suffix.
			if hasBare {
				name += "_input"
			}
		} else if element != "" {
			name += "_" + hwmonCleanName(element)
		}
		v, err := strconv.ParseFloat(p.value, 64)
		if err != nil {
			continue
		}

		// The conversions below mirror node_exporter's arithmetic exactly
		// (x*0.001 versus x/1e6) so that values are bit-identical.
		switch {
		case element == "fault" || element == "alarm":
			c.emit(ch, c.desc(name, "Hardware sensor "+element+" status ("+typ+")"), gauge, v, chip, sensor)
		case element == "beep":
			c.emit(ch, c.desc(name+"_enabled", "Hardware monitor sensor has beeping enabled"), gauge, v, chip, sensor)
		case typ == "in" || typ == "cpu":
			c.emit(ch, c.desc(name+"_volts", "Hardware monitor for voltage ("+element+")"), gauge, v*0.001, chip, sensor)
		case typ == "temp" && element != "type":
			if element == "" {
				element = "input"
			}
			c.emit(ch, c.desc(name+"_celsius", "Hardware monitor for temperature ("+element+")"), gauge, v*0.001, chip, sensor)
		case typ == "curr":
			c.emit(ch, c.desc(name+"_amps", "Hardware monitor for current ("+element+")"), gauge, v*0.001, chip, sensor)
		case typ == "energy":
			c.emit(ch, c.desc(name+"_joule_total", "Hardware monitor for joules used so far ("+element+")"), prometheus.CounterValue, v/1000000.0, chip, sensor)
		case typ == "power" && element == "accuracy":
			c.emit(ch, c.desc(name, "Hardware monitor power meter accuracy, as a ratio"), gauge, v/1000000.0, chip, sensor)
		case typ == "power" && (element == "average_interval" || element == "average_interval_min" || element == "average_interval_max"):
			c.emit(ch, c.desc(name+"_seconds", "Hardware monitor power usage update interval ("+element+")"), gauge, v*0.001, chip, sensor)
		case typ == "power":
			c.emit(ch, c.desc(name+"_watt", "Hardware monitor for power usage in watts ("+element+")"), gauge, v/1000000.0, chip, sensor)
		case typ == "humidity":
			c.emit(ch, c.desc(name, "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity as a percentage) ("+element+")"), gauge, v/1000000.0, chip, sensor)
		case typ == "fan" && (element == "input" || element == "min" || element == "max" || element == "target"):
			c.emit(ch, c.desc(name+"_rpm", "Hardware monitor for fan revolutions per minute ("+element+")"), gauge, v, chip, sensor)
		case typ == "freq" && element == "input":
			// GPU clocks are reported under their label (sclk, mclk), and
			// only when they have one.
			if hasLabel {
				c.emit(ch, c.desc(name+"_freq_mhz", "Hardware monitor for GPU frequency in MHz"), gauge, v/1000000.0, chip, hwmonCleanName(label))
			}
		default:
			c.emit(ch, c.desc(name, "Hardware monitor "+typ+" element "+element), gauge, v, chip, sensor)
		}
	}
}

func hwmonKnownType(t string) bool {
	for _, k := range hwmonSensorTypes {
		if k == t {
			return true
		}
	}
	return false
}

// hwmonExplode splits an attribute file name into <type><num>_<property>
// with the semantics of node_exporter's regexp
// ^(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?$ (leftmost-first,
// greedy), without running a regexp per file.
func hwmonExplode(name string) (ok bool, typ string, num int, prop string) {
	d := 0
	for d < len(name) && (name[d] < '0' || name[d] > '9') {
		d++
	}
	if d == 0 {
		return false, "", 0, ""
	}
	// Greedy: the type runs up to the first digit, then all the digits.
	m := d
	for m < len(name) && name[m] >= '0' && name[m] <= '9' {
		m++
	}
	if rest := name[m:]; rest == "" || hwmonIsProperty(rest) {
		typ = name[:d]
		if rest != "" {
			prop = rest[1:]
		}
		if m > d {
			n, err := strconv.Atoi(name[d:m])
			if err != nil {
				return false, typ, 0, prop
			}
			num = n
		}
		return true, typ, num, prop
	}
	// Backtrack: a shorter type, no number, and the rest as property; the
	// type must then end just before an underscore.
	for k := d - 1; k >= 1; k-- {
		if name[k] == '_' && hwmonIsProperty(name[k:]) {
			return true, name[:k], 0, name[k+1:]
		}
	}
	return false, "", 0, ""
}

// hwmonIsProperty reports whether s matches `_.+` where . excludes '\n'.
func hwmonIsProperty(s string) bool {
	if len(s) < 2 || s[0] != '_' {
		return false
	}
	for _, r := range s[1:] {
		if r == '\n' {
			return false
		}
	}
	return true
}

// hwmonCleanName lowercases s, replaces every character outside
// [a-z0-9:_] by '_' and trims '_' at both ends, as node_exporter does.
func hwmonCleanName(s string) string {
	s = strings.ToLower(s)
	clean := true
	for i := 0; i < len(s); i++ {
		if !hwmonNameByte(s[i]) {
			clean = false
			break
		}
	}
	if !clean {
		b := make([]byte, 0, len(s))
		for i := 0; i < len(s); {
			if hwmonNameByte(s[i]) {
				b = append(b, s[i])
				i++
				continue
			}
			// One replacement per character; an invalid byte counts as one.
			_, size := utf8.DecodeRuneInString(s[i:])
			b = append(b, '_')
			i += size
		}
		s = string(b)
	}
	return strings.Trim(s, "_")
}

func hwmonNameByte(b byte) bool {
	return (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b == ':' || b == '_'
}

// hwmonChipName derives a stable chip name: from the device the hwmon
// belongs to ("platform_coretemp_0"), else from its name file, else from
// the hwmonN directory.
func hwmonChipName(dir string) (string, error) {
	if dev, err := filepath.EvalSymlinks(filepath.Join(dir, "device")); err == nil {
		prefix, devName := filepath.Split(dev)
		_, devType := filepath.Split(strings.TrimRight(prefix, "/"))
		cleanName, cleanType := hwmonCleanName(devName), hwmonCleanName(devType)
		if cleanType != "" && cleanName != "" {
			return cleanType + "_" + cleanName, nil
		}
		if cleanName != "" {
			return cleanName, nil
		}
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "name")); err == nil && len(raw) > 0 {
		if n := hwmonCleanName(string(raw)); n != "" {
			return n, nil
		}
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	if n := hwmonCleanName(filepath.Base(real)); n != "" {
		return n, nil
	}
	return "", errors.New("could not derive a monitoring name for " + dir)
}
