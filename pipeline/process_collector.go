package pipeline

import (
	"bytes"
	"os"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sys/unix"
)

// processCollector reports the process_* metrics of client_golang's
// process collector (same names, help, types and values) more cheaply,
// since /metrics is scraped often and the host source's scrapes are meant
// to cost at most half of node_exporter's: client_golang reads
// /proc/stat again on every scrape for a start time that never changes,
// parses /proc/self/limits with a regular expression and allocates a
// procfs structure per file. Like client_golang's without ReportErrors,
// a metric whose file cannot be read is left out.
type processCollector struct {
	dir string // /proc/<pid>

	cpuTotal, openFDs, maxFDs, vsize, maxVsize, rss, startTime, inBytes, outBytes *prometheus.Desc

	mu       sync.Mutex
	start    float64 // the start time, once known
	hasStart bool
	pageSize float64
}

// newProcessCollector returns client_golang's process collector where this
// one cannot work (no /proc), else this one.
func newProcessCollector() prometheus.Collector {
	dir := "/proc/" + strconv.Itoa(os.Getpid())
	if _, err := os.Stat(dir + "/stat"); err != nil {
		return collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})
	}
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &processCollector{
		dir:       dir,
		cpuTotal:  d("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."),
		openFDs:   d("process_open_fds", "Number of open file descriptors."),
		maxFDs:    d("process_max_fds", "Maximum number of open file descriptors."),
		vsize:     d("process_virtual_memory_bytes", "Virtual memory size in bytes."),
		maxVsize:  d("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes."),
		rss:       d("process_resident_memory_bytes", "Resident memory size in bytes."),
		startTime: d("process_start_time_seconds", "Start time of the process since unix epoch in seconds."),
		inBytes:   d("process_network_receive_bytes_total", "Number of bytes received by the process over the network."),
		outBytes:  d("process_network_transmit_bytes_total", "Number of bytes sent by the process over the network."),
		pageSize:  float64(os.Getpagesize()),
	}
}

// Describe implements prometheus.Collector.
func (c *processCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.cpuTotal, c.openFDs, c.maxFDs, c.vsize, c.maxVsize, c.rss, c.startTime, c.inBytes, c.outBytes} {
		ch <- d
	}
}

// userHZ is the kernel's USER_HZ, the unit of /proc's CPU times.
const userHZ = 100

// Collect implements prometheus.Collector. Collects do not run
// concurrently for one registry's Gather, but two scrapes may, so the
// buffers are per call.
func (c *processCollector) Collect(ch chan<- prometheus.Metric) {
	var buf [4096]byte
	if b, ok := readProcFile(c.dir+"/stat", buf[:]); ok {
		if f, ok := procStatFields(b); ok {
			utime, e1 := strconv.ParseUint(string(f[11]), 10, 64)
			stime, e2 := strconv.ParseUint(string(f[12]), 10, 64)
			starttime, e3 := strconv.ParseUint(string(f[19]), 10, 64)
			vsize, e4 := strconv.ParseUint(string(f[20]), 10, 64)
			rss, e5 := strconv.ParseInt(string(f[21]), 10, 64)
			if e1 == nil && e2 == nil && e3 == nil && e4 == nil && e5 == nil {
				ch <- prometheus.MustNewConstMetric(c.cpuTotal, prometheus.CounterValue, float64(utime+stime)/userHZ)
				ch <- prometheus.MustNewConstMetric(c.vsize, prometheus.GaugeValue, float64(vsize))
				ch <- prometheus.MustNewConstMetric(c.rss, prometheus.GaugeValue, float64(rss)*c.pageSize)
				if start, ok := c.startSeconds(starttime); ok {
					ch <- prometheus.MustNewConstMetric(c.startTime, prometheus.GaugeValue, start)
				}
			}
		}
	}
	if n, ok := c.fds(); ok {
		ch <- prometheus.MustNewConstMetric(c.openFDs, prometheus.GaugeValue, float64(n))
	}
	if b, ok := readProcFile(c.dir+"/limits", buf[:]); ok {
		files, ok1 := limitOf(b, "Max open files")
		as, ok2 := limitOf(b, "Max address space")
		if ok1 && ok2 {
			ch <- prometheus.MustNewConstMetric(c.maxFDs, prometheus.GaugeValue, files)
			ch <- prometheus.MustNewConstMetric(c.maxVsize, prometheus.GaugeValue, as)
		}
	}
	var big [16384]byte
	if b, ok := readProcFile(c.dir+"/net/netstat", big[:]); ok {
		in, out := ipExtOctets(b)
		ch <- prometheus.MustNewConstMetric(c.inBytes, prometheus.CounterValue, in)
		ch <- prometheus.MustNewConstMetric(c.outBytes, prometheus.CounterValue, out)
	}
}

// startSeconds is the start time from the process's start in ticks after
// boot and the boot time, read once: neither changes.
func (c *processCollector) startSeconds(ticks uint64) (float64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hasStart {
		return c.start, true
	}
	var buf [16384]byte
	b, ok := readProcFile("/proc/stat", buf[:])
	if !ok {
		return 0, false
	}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			btime, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0, false
			}
			c.start = float64(btime) + float64(ticks)/userHZ
			c.hasStart = true
			return c.start, true
		}
	}
	return 0, false
}

// fds counts the open file descriptors: the size of /proc/<pid>/fd since
// Linux 6.2, else its entries.
func (c *processCollector) fds() (int, bool) {
	var st unix.Stat_t
	if err := unix.Stat(c.dir+"/fd", &st); err == nil && st.Size > 0 {
		return int(st.Size), true
	}
	f, err := os.Open(c.dir + "/fd")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return 0, false
	}
	return len(names), true
}

// readProcFile reads a file of at most len(buf) bytes; a longer one is
// an error.
func readProcFile(path string, buf []byte) ([]byte, bool) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, false
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, false
		}
		if m == 0 {
			return buf[:n], true
		}
		n += m
	}
	return nil, false
}

// procStatFields splits /proc/<pid>/stat after the command (which may hold
// spaces and parentheses): field 3 of proc(5), the state, is first.
func procStatFields(b []byte) ([22][]byte, bool) {
	var f [22][]byte
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return f, false
	}
	rest := b[i+1:]
	for k := range f {
		rest = bytes.TrimLeft(rest, " ")
		j := bytes.IndexAny(rest, " \n")
		if j < 0 {
			j = len(rest)
		}
		if j == 0 {
			return f, false
		}
		f[k], rest = rest[:j], rest[j:]
	}
	return f, true
}

// limitOf returns the soft limit of a /proc/<pid>/limits row, unlimited
// as the largest uint64, as procfs reads it.
func limitOf(b []byte, name string) (float64, bool) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		rest, ok := bytes.CutPrefix(line, []byte(name))
		if !ok || len(rest) < 2 || rest[0] != ' ' || rest[1] != ' ' {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) == 0 {
			return 0, false
		}
		if string(fields[0]) == "unlimited" {
			return float64(uint64(18446744073709551615)), true
		}
		v, err := strconv.ParseUint(string(fields[0]), 10, 64)
		return float64(v), err == nil
	}
	return 0, false
}

// ipExtOctets returns InOctets and OutOctets of /proc/<pid>/net/netstat's
// IpExt rows, 0 when missing.
func ipExtOctets(b []byte) (in, out float64) {
	var names []byte
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		v, ok := bytes.CutPrefix(line, []byte("IpExt:"))
		if !ok {
			continue
		}
		if names == nil {
			names = v
			continue
		}
		nf, vf := bytes.Fields(names), bytes.Fields(v)
		for i := range min(len(nf), len(vf)) {
			switch string(nf[i]) {
			case "InOctets":
				in, _ = strconv.ParseFloat(string(vf[i]), 64)
			case "OutOctets":
				out, _ = strconv.ParseFloat(string(vf[i]), 64)
			}
		}
		return in, out
	}
	return in, out
}
