package host

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/sysfs"
)

func init() {
	Register(Spec{
		Name:           "cpu",
		DefaultEnabled: true,
		Options: []Option{
			{Name: "guest", Default: "true", Bool: true, Help: "Enables metric node_cpu_guest_seconds_total"},
			{Name: "info", Default: "false", Bool: true, Help: "Enables metric cpu_info"},
			{Name: "info.flags-include", Help: "Filter the `flags` field in cpuInfo with a value that must be a regular expression"},
			{Name: "info.bugs-include", Help: "Filter the `bugs` field in cpuInfo with a value that must be a regular expression"},
		},
		New: newCPUCollector,
	})
}

// jumpBackSeconds is how far a CPU's idle counter may go backwards before
// the CPU is taken to have been hot-plugged and its cached stats reset.
const jumpBackSeconds = 3.0

var nodeCPUSecondsDesc = prometheus.NewDesc(
	prometheus.BuildFQName(namespace, "cpu", "seconds_total"),
	"Seconds the CPUs spent in each mode.",
	[]string{"cpu", "mode"}, nil)

type cpuCollector struct {
	env   *Env
	fs    procfs.FS
	guest bool
	info  bool

	flagsInclude, bugsInclude *regexp.Regexp

	infoDesc, freqDesc, flagDesc, bugDesc, guestDesc *prometheus.Desc
	coreThrottle, packageThrottle, isolatedDesc      *prometheus.Desc

	isolated []string

	// stats is the last value seen per CPU: counters that go backwards
	// (a known kernel quirk, and CPU hotplug) are held at their last value
	// so rate() never sees a reset it did not deserve.
	mu    sync.Mutex
	stats map[int64]procStatCPU
	names map[int64]string
	cur   []procStatCPU // this scrape's reading, reused
	ids   map[int64]bool

	stat *procStatReader
}

func newCPUCollector(env *Env) (Collector, error) {
	fs, err := procfs.NewFS(env.Paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("failed to open procfs: %w", err)
	}
	sfs, err := sysfs.NewFS(env.Paths.Sys)
	if err != nil {
		return nil, fmt.Errorf("failed to open sysfs: %w", err)
	}
	c := &cpuCollector{
		env:   env,
		fs:    fs,
		guest: env.BoolOption("guest"),
		info:  env.BoolOption("info"),
		infoDesc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "cpu", "info"),
			"CPU information from /proc/cpuinfo.",
			[]string{"package", "core", "cpu", "vendor", "family", "model", "model_name", "microcode", "stepping", "cachesize"}, nil),
		freqDesc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "cpu", "frequency_hertz"),
			"CPU frequency in hertz from /proc/cpuinfo.",
			[]string{"package", "core", "cpu"}, nil),
		flagDesc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "cpu", "flag_info"),
			"The `flags` field of CPU information from /proc/cpuinfo taken from the first core.",
			[]string{"flag"}, nil),
		bugDesc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "cpu", "bug_info"),
			"The `bugs` field of CPU information from /proc/cpuinfo taken from the first core.",
			[]string{"bug"}, nil),
		guestDesc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "cpu", "guest_seconds_total"),
			"Seconds the CPUs spent in guests (VMs) for each mode.",
			[]string{"cpu", "mode"}, nil),
		coreThrottle: prometheus.NewDesc(prometheus.BuildFQName(namespace, "cpu", "core_throttles_total"),
			"Number of times this CPU core has been throttled.",
			[]string{"package", "core"}, nil),
		packageThrottle: prometheus.NewDesc(prometheus.BuildFQName(namespace, "cpu", "package_throttles_total"),
			"Number of times this CPU package has been throttled.",
			[]string{"package"}, nil),
		isolatedDesc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "cpu", "isolated"),
			"Whether each core is isolated, information from /sys/devices/system/cpu/isolated.",
			[]string{"cpu"}, nil),
		stats: map[int64]procStatCPU{},
		names: map[int64]string{},
		ids:   map[int64]bool{},
		stat:  env.procStatReader(env.Paths.ProcPath("stat")),
	}
	for opt, re := range map[string]**regexp.Regexp{"info.flags-include": &c.flagsInclude, "info.bugs-include": &c.bugsInclude} {
		if v := env.Option(opt); v != "" {
			if *re, err = regexp.Compile(v); err != nil {
				return nil, fmt.Errorf("option cpu.%s: invalid regular expression: %w", opt, err)
			}
			// As node_exporter: asking for flags or bugs asks for the info.
			c.info = true
		}
	}
	isolated, err := sfs.IsolatedCPUs()
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("reading isolated CPUs: %w", err)
	}
	for _, id := range isolated {
		c.isolated = append(c.isolated, strconv.Itoa(int(id)))
	}
	return c, nil
}

func (c *cpuCollector) Update(ch chan<- prometheus.Metric) error {
	if c.info {
		if err := c.updateInfo(ch); err != nil {
			return err
		}
	}
	if err := c.updateStat(ch); err != nil {
		return err
	}
	for _, id := range c.isolated {
		ch <- newMetric(c.isolatedDesc, prometheus.GaugeValue, 1, id)
	}
	return c.updateThrottles(ch)
}

func (c *cpuCollector) updateInfo(ch chan<- prometheus.Metric) error {
	info, err := c.fs.CPUInfo()
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.env.Paths.ProcPath("cpuinfo"), err)
	}
	for _, cpu := range info {
		id := strconv.Itoa(int(cpu.Processor))
		ch <- newMetric(c.infoDesc, prometheus.GaugeValue, 1,
			cpu.PhysicalID, cpu.CoreID, id, cpu.VendorID, cpu.CPUFamily, cpu.Model,
			cpu.ModelName, cpu.Microcode, cpu.Stepping, cpu.CacheSize)
		if cpu.CPUMHz > 0 {
			ch <- newMetric(c.freqDesc, prometheus.GaugeValue, cpu.CPUMHz*1e6, cpu.PhysicalID, cpu.CoreID, id)
		}
	}
	if len(info) > 0 {
		emitMatching(ch, c.flagDesc, info[0].Flags, c.flagsInclude)
		emitMatching(ch, c.bugDesc, info[0].Bugs, c.bugsInclude)
	}
	return nil
}

// emitMatching reports the values that re matches; none without re, as
// node_exporter, since the full flag list is long and rarely wanted.
func emitMatching(ch chan<- prometheus.Metric, desc *prometheus.Desc, values []string, re *regexp.Regexp) {
	if re == nil {
		return
	}
	for _, v := range values {
		if re.MatchString(v) {
			ch <- newMetric(desc, prometheus.GaugeValue, 1, v)
		}
	}
}

func (c *cpuCollector) updateStat(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.stat.with(func(p *procStat) { c.cur = append(c.cur[:0], p.cpus...) })
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.env.Paths.ProcPath("stat"), err)
	}
	clear(c.ids)
	for _, n := range c.cur {
		id := n.id
		c.ids[id] = true
		old, seen := c.stats[id]
		if seen && old.idle-n.idle >= jumpBackSeconds {
			c.env.Logger.Debug("CPU idle counter jumped backwards; possible hotplug, resetting its stats", "cpu", id, "old_value", old.idle, "new_value", n.idle)
			old = procStatCPU{}
		}
		old.id = id
		old.user = monotonic(old.user, n.user)
		old.nice = monotonic(old.nice, n.nice)
		old.system = monotonic(old.system, n.system)
		old.idle = monotonic(old.idle, n.idle)
		old.iowait = monotonic(old.iowait, n.iowait)
		old.irq = monotonic(old.irq, n.irq)
		old.softIRQ = monotonic(old.softIRQ, n.softIRQ)
		old.steal = monotonic(old.steal, n.steal)
		old.guest = monotonic(old.guest, n.guest)
		old.guestNice = monotonic(old.guestNice, n.guestNice)
		c.stats[id] = old
		if _, ok := c.names[id]; !ok {
			c.names[id] = strconv.FormatInt(id, 10)
		}
	}
	// CPUs gone offline are forgotten.
	if len(c.stats) != len(c.ids) {
		for id := range c.stats {
			if !c.ids[id] {
				delete(c.stats, id)
				delete(c.names, id)
			}
		}
	}
	for id, s := range c.stats {
		cpu := c.names[id]
		ch <- newMetric(nodeCPUSecondsDesc, prometheus.CounterValue, s.user, cpu, "user")
		ch <- newMetric(nodeCPUSecondsDesc, prometheus.CounterValue, s.nice, cpu, "nice")
		ch <- newMetric(nodeCPUSecondsDesc, prometheus.CounterValue, s.system, cpu, "system")
		ch <- newMetric(nodeCPUSecondsDesc, prometheus.CounterValue, s.idle, cpu, "idle")
		ch <- newMetric(nodeCPUSecondsDesc, prometheus.CounterValue, s.iowait, cpu, "iowait")
		ch <- newMetric(nodeCPUSecondsDesc, prometheus.CounterValue, s.irq, cpu, "irq")
		ch <- newMetric(nodeCPUSecondsDesc, prometheus.CounterValue, s.softIRQ, cpu, "softirq")
		ch <- newMetric(nodeCPUSecondsDesc, prometheus.CounterValue, s.steal, cpu, "steal")
		if c.guest {
			// Guest time is also counted in user and nice.
			ch <- newMetric(c.guestDesc, prometheus.CounterValue, s.guest, cpu, "user")
			ch <- newMetric(c.guestDesc, prometheus.CounterValue, s.guestNice, cpu, "nice")
		}
	}
	return nil
}

func monotonic(old, cur float64) float64 {
	if cur >= old {
		return cur
	}
	return old
}

// updateThrottles reports thermal throttling per core and per package from
// sysfs. A CPU without topology or throttle files is skipped.
func (c *cpuCollector) updateThrottles(ch chan<- prometheus.Metric) error {
	dir := c.env.Paths.SysPath("devices", "system", "cpu")
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	type core struct{ pkg, core uint64 }
	pkgs := map[uint64]uint64{}
	cores := map[core]uint64{}
	seenCore := map[core]bool{}
	for _, e := range entries {
		name := e.Name()
		if !isCPUDir(name) {
			continue
		}
		cpu := filepath.Join(dir, name)
		pkg, err := readUint(filepath.Join(cpu, "topology", "physical_package_id"))
		if err != nil {
			continue
		}
		id, err := readUint(filepath.Join(cpu, "topology", "core_id"))
		if err != nil {
			continue
		}
		k := core{pkg, id}
		if !seenCore[k] {
			seenCore[k] = true
			if n, err := readUint(filepath.Join(cpu, "thermal_throttle", "core_throttle_count")); err == nil {
				cores[k] = n
			}
		}
		if _, ok := pkgs[pkg]; !ok {
			if n, err := readUint(filepath.Join(cpu, "thermal_throttle", "package_throttle_count")); err == nil {
				pkgs[pkg] = n
			}
		}
	}
	for pkg, n := range pkgs {
		ch <- newMetric(c.packageThrottle, prometheus.CounterValue, float64(n), strconv.FormatUint(pkg, 10))
	}
	keys := make([]core, 0, len(cores))
	for k := range cores {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].pkg < keys[j].pkg || keys[i].pkg == keys[j].pkg && keys[i].core < keys[j].core
	})
	for _, k := range keys {
		ch <- newMetric(c.coreThrottle, prometheus.CounterValue, float64(cores[k]), strconv.FormatUint(k.pkg, 10), strconv.FormatUint(k.core, 10))
	}
	return nil
}

// isCPUDir matches cpu[0-9]+, the per-CPU directories of sysfs.
func isCPUDir(name string) bool {
	if len(name) < 4 || !strings.HasPrefix(name, "cpu") {
		return false
	}
	for _, r := range name[3:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
