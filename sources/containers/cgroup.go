package containers

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// userHZ is the unit of cpuacct.stat (USER_HZ, 100 on every Linux ABI).
const userHZ = 100

// stats is what one scrape reads for one cgroup. It lives with the
// container between scrapes so its slices are reused.
type stats struct {
	cpuTotal, cpuUser, cpuSystem float64 // seconds

	// CFS bandwidth, only when a quota is set (as cAdvisor).
	periods, throttledPeriods uint64
	throttled                 float64 // seconds

	memUsage, memWorkingSet, memRSS, memCache, memSwap uint64
	memMaxUsage, memFailcnt                            uint64
	hasMaxUsage, hasFailcnt                            bool
	oomKills                                           uint64
	hasOOM                                             bool

	// Spec.
	memLimit      float64 // 0 when unlimited, as cAdvisor
	hasMemLimit   bool
	quota, period uint64 // quota 0: none
	shares        uint64
	hasCPUSpec    bool

	io  []ioEntry
	net []netIface
}

// maxMemory is the size above which cAdvisor takes a limit for "none": the
// kernel rounds "unlimited" down to a page multiple below 2^63.
const maxMemory = 1 << 62

// layout is the host's cgroup hierarchy, detected once at start.
type layout struct {
	root string // the cgroupfs mount, e.g. /sys/fs/cgroup
	v2   bool
	// cgroup v1: where each controller's hierarchy is mounted ("" when
	// the controller is not mounted).
	cpu, cpuacct, memory, blkio string
}

// detectLayout finds the cgroup version and, for v1, the controllers'
// mount points. A pure v2 host has cgroup.controllers at the root; a v1 or
// hybrid host has one directory per controller (hybrid hosts keep v2 at
// unified/, with no controllers vigil reads).
func detectLayout(root string) (*layout, error) {
	l := &layout{root: root}
	if exists(filepath.Join(root, "cgroup.controllers")) {
		l.v2 = true
		return l, nil
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("reading the cgroup mount %s: %w", root, err)
	}
	find := func(ctl string) string {
		if p := filepath.Join(root, ctl); exists(filepath.Join(p, "cgroup.procs")) {
			return p
		}
		for _, e := range entries {
			for _, c := range strings.Split(e.Name(), ",") {
				if c == ctl {
					return filepath.Join(root, e.Name())
				}
			}
		}
		return ""
	}
	l.cpu, l.cpuacct, l.memory, l.blkio = find("cpu"), find("cpuacct"), find("memory"), find("blkio")
	if l.cpuacct == "" && l.memory == "" {
		return nil, fmt.Errorf("%s holds neither a cgroup v2 hierarchy nor the v1 cpuacct and memory controllers", root)
	}
	return l, nil
}

// group reads one cgroup's files. Its paths are joined once, when the
// container is first seen.
type group interface {
	read(r *reader, st *stats) error
}

// resolve finds a container's cgroup: the path its init process reports
// in /proc/<pid>/cgroup when that path exists under the mount, else
// Docker's two layouts (cgroupfs driver: /docker/<id>; systemd driver:
// /system.slice/docker-<id>.scope). The process's own view fails when
// vigil runs in a cgroup namespace of its own, where the paths of host
// processes start with "/..".
func (l *layout) resolve(procfs, id string, pid int) (string, error) {
	probe := l.root
	if !l.v2 {
		probe = l.memory
		if probe == "" {
			probe = l.cpuacct
		}
	}
	if pid > 0 {
		if b, err := os.ReadFile(filepath.Join(procfs, fmt.Sprint(pid), "cgroup")); err == nil {
			if p := l.pathFromProc(b); p != "" && !strings.Contains(p, "/..") && exists(filepath.Join(probe, p)) {
				return p, nil
			}
		}
	}
	for _, p := range []string{"/docker/" + id, "/system.slice/docker-" + id + ".scope"} {
		if exists(filepath.Join(probe, p)) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no cgroup found for container %.12s under %s", id, probe)
}

// pathFromProc picks the relevant path out of /proc/<pid>/cgroup: the
// unified line ("0::/path") on v2, the memory (or cpuacct) controller's
// line on v1.
func (l *layout) pathFromProc(b []byte) string {
	var fallback string
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		parts := bytes.SplitN(line, []byte(":"), 3)
		if len(parts) != 3 {
			continue
		}
		ctls, p := string(parts[1]), string(parts[2])
		if l.v2 {
			if ctls == "" && string(parts[0]) == "0" {
				return p
			}
			continue
		}
		for _, c := range strings.Split(ctls, ",") {
			switch c {
			case "memory":
				return p
			case "cpuacct":
				fallback = p
			}
		}
	}
	return fallback
}

// newGroup builds the reader of cgroup path rel ("/" for the root).
func (l *layout) newGroup(rel, procfs string) group {
	if l.v2 {
		return newV2Group(filepath.Join(l.root, rel), procfs, rel == "/")
	}
	return newV1Group(l, rel)
}

// v1Group reads a cgroup v1 container: cpuacct, cpu, memory and blkio.
type v1Group struct {
	cpuacctUsage, cpuacctStat                    string
	cpuStat, cfsQuota, cfsPeriod, cpuShares      string
	memUsage, memMax, memFailcnt, memLimit       string
	memStat, memOOM                              string
	blkio                                        string
	noOOM, noBlkio, noCPU, noMaxUsage, noFailcnt bool
}

func newV1Group(l *layout, rel string) *v1Group {
	g := &v1Group{}
	join := func(dir, file string) string {
		if dir == "" {
			return ""
		}
		return filepath.Join(dir, rel, file)
	}
	g.cpuacctUsage = join(l.cpuacct, "cpuacct.usage")
	g.cpuacctStat = join(l.cpuacct, "cpuacct.stat")
	g.cpuStat = join(l.cpu, "cpu.stat")
	g.cfsQuota = join(l.cpu, "cpu.cfs_quota_us")
	g.cfsPeriod = join(l.cpu, "cpu.cfs_period_us")
	g.cpuShares = join(l.cpu, "cpu.shares")
	g.memUsage = join(l.memory, "memory.usage_in_bytes")
	g.memMax = join(l.memory, "memory.max_usage_in_bytes")
	g.memFailcnt = join(l.memory, "memory.failcnt")
	g.memLimit = join(l.memory, "memory.limit_in_bytes")
	g.memStat = join(l.memory, "memory.stat")
	g.memOOM = join(l.memory, "memory.oom_control")
	// blkio.throttle.* counts every byte submitted to a device whatever
	// its I/O scheduler; the CFQ/BFQ files only count for devices that use
	// that scheduler (and CFQ is gone from current kernels).
	g.blkio = join(l.blkio, "blkio.throttle.io_service_bytes_recursive")
	if g.blkio != "" && !exists(g.blkio) {
		g.blkio = join(l.blkio, "blkio.io_service_bytes_recursive")
	}
	g.noBlkio = g.blkio == ""
	g.noCPU = g.cfsQuota == ""
	g.noOOM = g.memOOM == ""
	return g
}

// optional reads a file that older kernels or some cgroups lack; a missing
// file turns *missing on so later scrapes skip it.
func optional(r *reader, path string, missing *bool) ([]byte, bool, error) {
	if *missing || path == "" {
		return nil, false, nil
	}
	b, err := r.read(path)
	if err != nil {
		if gone(err) {
			*missing = true
			return nil, false, nil
		}
		return nil, false, err
	}
	return b, true, nil
}

func readUint(r *reader, path string) (uint64, error) {
	b, err := r.read(path)
	if err != nil {
		return 0, err
	}
	v, ok := parseUint(b)
	if !ok {
		return 0, fmt.Errorf("%s: not a number: %q", path, trim(b))
	}
	return v, nil
}

func (g *v1Group) read(r *reader, st *stats) error {
	if g.memStat != "" {
		b, err := r.read(g.memStat)
		if err != nil {
			return err
		}
		var inactiveFile uint64
		hasInactive := false
		// The total_ keys include child cgroups (use_hierarchy is always
		// on for Docker's cgroups), which cAdvisor reads.
		forEachKV(b, func(k []byte, v uint64) {
			switch string(k) {
			case "total_rss":
				st.memRSS = v
			case "total_cache":
				st.memCache = v
			case "total_swap":
				st.memSwap = v
			case "total_inactive_file":
				inactiveFile, hasInactive = v, true
			}
		})
		if st.memUsage, err = readUint(r, g.memUsage); err != nil {
			return err
		}
		st.memWorkingSet = workingSet(st.memUsage, inactiveFile, hasInactive)
		if b, ok, err := optional(r, g.memMax, &g.noMaxUsage); err != nil {
			return err
		} else if ok {
			st.memMaxUsage, st.hasMaxUsage = parseUint(b)
		}
		if b, ok, err := optional(r, g.memFailcnt, &g.noFailcnt); err != nil {
			return err
		} else if ok {
			st.memFailcnt, st.hasFailcnt = parseUint(b)
		}
		if b, ok, err := optional(r, g.memOOM, &g.noOOM); err != nil {
			return err
		} else if ok {
			st.hasOOM = false
			forEachKV(b, func(k []byte, v uint64) {
				if string(k) == "oom_kill" {
					st.oomKills, st.hasOOM = v, true
				}
			})
			if !st.hasOOM {
				g.noOOM = true // a kernel before 4.13 has no oom_kill count
			}
		}
		lim, err := readUint(r, g.memLimit)
		if err != nil {
			return err
		}
		st.memLimit, st.hasMemLimit = specMemory(lim), true
	}
	if g.cpuacctUsage != "" {
		ns, err := readUint(r, g.cpuacctUsage)
		if err != nil {
			return err
		}
		st.cpuTotal = float64(ns) / 1e9
		b, err := r.read(g.cpuacctStat)
		if err != nil {
			return err
		}
		forEachKV(b, func(k []byte, v uint64) {
			switch string(k) {
			case "user":
				st.cpuUser = float64(v) / userHZ
			case "system":
				st.cpuSystem = float64(v) / userHZ
			}
		})
	}
	if !g.noCPU {
		b, err := r.read(g.cfsQuota)
		if err != nil {
			return err
		}
		st.quota = 0
		if q, ok := parseInt(b); ok && q > 0 {
			st.quota = uint64(q)
		}
		if st.period, err = readUint(r, g.cfsPeriod); err != nil {
			return err
		}
		if st.shares, err = readUint(r, g.cpuShares); err != nil {
			return err
		}
		st.hasCPUSpec = true
		if st.quota > 0 {
			b, err := r.read(g.cpuStat)
			if err != nil {
				return err
			}
			forEachKV(b, func(k []byte, v uint64) {
				switch string(k) {
				case "nr_periods":
					st.periods = v
				case "nr_throttled":
					st.throttledPeriods = v
				case "throttled_time":
					st.throttled = float64(v) / 1e9
				}
			})
		}
	}
	st.io = st.io[:0]
	if b, ok, err := optional(r, g.blkio, &g.noBlkio); err != nil {
		return err
	} else if ok {
		st.io = parseBlkioV1(b, st.io)
	}
	return nil
}

// specMemory turns a memory limit into cAdvisor's value: 0 for none.
func specMemory(v uint64) float64 {
	if v > maxMemory {
		return 0
	}
	return float64(v)
}

// v2Group reads a cgroup v2 container. The root cgroup has no memory.*
// or cpu.max files; its memory comes from /proc/meminfo, as runc (and so
// cAdvisor) does.
type v2Group struct {
	cpuStat, cpuMax, cpuWeight                string
	memCurrent, memMax, memStat, memEvents    string
	memSwap, memPeak, ioStat                  string
	meminfo                                   string
	root                                      bool
	noSwap, noPeak, noIO, noEvents, noCPUSpec bool
	noMemSpec                                 bool
}

func newV2Group(dir, procfs string, root bool) *v2Group {
	j := func(f string) string { return filepath.Join(dir, f) }
	g := &v2Group{
		cpuStat: j("cpu.stat"), cpuMax: j("cpu.max"), cpuWeight: j("cpu.weight"),
		memCurrent: j("memory.current"), memMax: j("memory.max"), memStat: j("memory.stat"),
		memEvents: j("memory.events"), memSwap: j("memory.swap.current"), memPeak: j("memory.peak"),
		ioStat: j("io.stat"), meminfo: filepath.Join(procfs, "meminfo"), root: root,
	}
	if root {
		g.noCPUSpec, g.noMemSpec, g.noPeak, g.noEvents, g.noSwap = true, true, true, true, true
	}
	return g
}

func (g *v2Group) read(r *reader, st *stats) error {
	b, err := r.read(g.cpuStat)
	if err != nil {
		return err
	}
	forEachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "usage_usec":
			st.cpuTotal = float64(v) / 1e6
		case "user_usec":
			st.cpuUser = float64(v) / 1e6
		case "system_usec":
			st.cpuSystem = float64(v) / 1e6
		case "nr_periods":
			st.periods = v
		case "nr_throttled":
			st.throttledPeriods = v
		case "throttled_usec":
			st.throttled = float64(v) / 1e6
		}
	})
	if !g.noCPUSpec {
		b, err := r.read(g.cpuMax)
		if err != nil {
			return err
		}
		q, p := nextField(b)
		p, _ = nextField(p)
		st.quota = 0
		if v, ok := parseUint(q); ok {
			st.quota = v
		}
		st.period, _ = parseUint(p)
		w, err := readUint(r, g.cpuWeight)
		if err != nil {
			return err
		}
		st.shares = weightToShares(w)
		st.hasCPUSpec = true
	}
	if g.root {
		return g.readRootMemory(r, st)
	}
	if b, err = r.read(g.memStat); err != nil {
		return err
	}
	var inactiveFile uint64
	hasInactive := false
	forEachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "anon":
			st.memRSS = v
		case "file":
			st.memCache = v
		case "inactive_file":
			inactiveFile, hasInactive = v, true
		}
	})
	if st.memUsage, err = readUint(r, g.memCurrent); err != nil {
		return err
	}
	st.memWorkingSet = workingSet(st.memUsage, inactiveFile, hasInactive)
	if b, ok, err := optional(r, g.memSwap, &g.noSwap); err != nil {
		return err
	} else if ok {
		st.memSwap, _ = parseUint(b)
	}
	if b, ok, err := optional(r, g.memPeak, &g.noPeak); err != nil {
		return err
	} else if ok {
		st.memMaxUsage, st.hasMaxUsage = parseUint(b)
	}
	if b, ok, err := optional(r, g.memEvents, &g.noEvents); err != nil {
		return err
	} else if ok {
		// runc reports the "max" event count as failcnt on v2: how often
		// usage hit the limit.
		forEachKV(b, func(k []byte, v uint64) {
			switch string(k) {
			case "max":
				st.memFailcnt, st.hasFailcnt = v, true
			case "oom_kill":
				st.oomKills, st.hasOOM = v, true
			}
		})
	}
	if !g.noMemSpec {
		b, err := r.read(g.memMax)
		if err != nil {
			return err
		}
		st.memLimit = 0
		if v, ok := parseUint(b); ok {
			st.memLimit = specMemory(v)
		}
		st.hasMemLimit = true
	}
	st.io = st.io[:0]
	if b, ok, err := optional(r, g.ioStat, &g.noIO); err != nil {
		return err
	} else if ok {
		st.io = parseIOStatV2(b, st.io)
	}
	return nil
}

// readRootMemory fills the root cgroup's memory from /proc/meminfo:
// usage is MemTotal - MemFree (runc's choice for the v2 root, which has
// no memory.current), the rest the matching host counters.
func (g *v2Group) readRootMemory(r *reader, st *stats) error {
	b, err := r.read(g.meminfo)
	if err != nil {
		return err
	}
	var total, free, anon, cached, inactiveFile, swapTotal, swapFree uint64
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		k, rest := nextField(line)
		v, _ := nextField(rest)
		n, ok := parseUint(v)
		if !ok {
			continue
		}
		n *= 1024 // kB
		switch string(k) {
		case "MemTotal:":
			total = n
		case "MemFree:":
			free = n
		case "AnonPages:":
			anon = n
		case "Cached:":
			cached = n
		case "Inactive(file):":
			inactiveFile = n
		case "SwapTotal:":
			swapTotal = n
		case "SwapFree:":
			swapFree = n
		}
	}
	st.memUsage = total - min(free, total)
	st.memRSS, st.memCache = anon, cached
	st.memSwap = swapTotal - min(swapFree, swapTotal)
	st.memWorkingSet = workingSet(st.memUsage, inactiveFile, true)
	st.io = st.io[:0]
	if b, ok, err := optional(r, g.ioStat, &g.noIO); err != nil {
		return err
	} else if ok {
		st.io = parseIOStatV2(b, st.io)
	}
	return nil
}

// workingSet is cAdvisor's: usage minus inactive file pages, floored at 0.
func workingSet(usage, inactiveFile uint64, has bool) uint64 {
	if !has {
		return usage
	}
	if usage < inactiveFile {
		return 0
	}
	return usage - inactiveFile
}

// weightToShares maps cgroup v2's cpu.weight [1, 10000] onto v1's
// cpu.shares [2, 262144], the conversion cAdvisor and the Kubernetes
// cgroup v2 KEP use.
func weightToShares(w uint64) uint64 {
	if w < 1 || w > 10000 {
		return 0
	}
	return 2 + (w-1)*262142/9999
}
