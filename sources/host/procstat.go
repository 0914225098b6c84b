package host

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
)

// /proc/stat, read once per scrape. The cpu and stat collectors both
// report from it (and the kernel formats every CPU's and every IRQ's
// counters on each read, which is not cheap), so a Source reads it for the
// first of them in a scrape and hands the same parse to the other. It is
// parsed by hand, as procfs's Stat would parse it (fmt.Sscanf per CPU
// line and a map per call made it the costliest parse of a scrape).

// scrapeShared is what a Source's collectors share within one scrape.
type scrapeShared struct {
	// gen counts the Source's scrapes; a reading made in an earlier one
	// is read again.
	gen atomic.Uint64

	mu    sync.Mutex
	stats map[string]*procStatReader // by path
}

// next starts a scrape. s may be nil (a Source built by hand, in tests).
func (s *scrapeShared) next() {
	if s != nil {
		s.gen.Add(1)
	}
}

// procStatReader returns the reader of path shared by env's Source, or,
// for a collector built outside a Source, one that reads on every call.
func (e *Env) procStatReader(path string) *procStatReader {
	s := e.shared
	if s == nil {
		return &procStatReader{path: path}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.stats[path]
	if r == nil {
		if s.stats == nil {
			s.stats = map[string]*procStatReader{}
		}
		r = &procStatReader{path: path, shared: s}
		s.stats[path] = r
	}
	return r
}

// procStatCPU is one cpuN line, in seconds.
type procStatCPU struct {
	id                                                                      int64
	user, nice, system, idle, iowait, irq, softIRQ, steal, guest, guestNice float64
}

// procStat is the part of /proc/stat the collectors report.
type procStat struct {
	cpus                                           []procStatCPU // in file order
	intr, ctxt, btime, processes, running, blocked uint64
	softIRQ                                        [10]uint64 // hi timer net_tx net_rx block block_iopoll tasklet sched hrtimer rcu
}

type procStatReader struct {
	path   string
	shared *scrapeShared // nil: read on every call

	mu      sync.Mutex
	read    bool
	readGen uint64
	buf     []byte
	stat    procStat
	err     error
}

// with calls fn with this scrape's /proc/stat, reading it if no collector
// has in this scrape. fn must not keep the procStat.
func (r *procStatReader) with(fn func(*procStat)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var gen uint64
	if r.shared != nil {
		gen = r.shared.gen.Load()
	}
	if r.shared == nil || !r.read || r.readGen != gen {
		r.read, r.readGen = true, gen
		r.buf, r.err = readFileInto(r.path, r.buf)
		if r.err == nil {
			r.err = parseProcStat(r.buf, &r.stat)
		}
		if cap(r.buf) > 1<<20 {
			r.buf = nil
		}
	}
	if r.err != nil {
		return r.err
	}
	fn(&r.stat)
	return nil
}

// parseProcStat parses /proc/stat into s, reusing its slice.
func parseProcStat(b []byte, s *procStat) error {
	*s = procStat{cpus: s.cpus[:0]}
	for len(b) > 0 {
		var line []byte
		line, b = cutLine(b)
		key, rest := cutField(line)
		first, _ := cutField(rest)
		if first == nil {
			continue // as procfs: a key needs a value
		}
		var dst *uint64
		switch string(key) {
		case "btime":
			dst = &s.btime
		case "intr":
			dst = &s.intr
		case "ctxt":
			dst = &s.ctxt
		case "processes":
			dst = &s.processes
		case "procs_running":
			dst = &s.running
		case "procs_blocked":
			dst = &s.blocked
		case "softirq":
			_, rest = cutField(rest) // the total
			for i := range s.softIRQ {
				var f []byte
				if f, rest = cutField(rest); f == nil {
					break
				}
				v, err := strconv.ParseUint(string(f), 10, 64)
				if err != nil {
					return fmt.Errorf("couldn't parse %q (softirq): %w", line, err)
				}
				s.softIRQ[i] = v
			}
			continue
		default:
			if bytes.HasPrefix(key, []byte("cpu")) {
				if err := parseProcStatCPU(key, rest, line, s); err != nil {
					return err
				}
			}
			continue
		}
		v, err := strconv.ParseUint(string(first), 10, 64)
		if err != nil {
			return fmt.Errorf("couldn't parse %q (%s): %w", first, key, err)
		}
		*dst = v
	}
	return nil
}

// userHZ is the kernel's USER_HZ, the unit of /proc/stat's CPU times.
const userHZ = 100

func parseProcStatCPU(key, rest, line []byte, s *procStat) error {
	if len(key) == 3 {
		return nil // the total, which no collector reports
	}
	id, err := strconv.ParseInt(string(key[3:]), 10, 64)
	if err != nil {
		return fmt.Errorf("couldn't parse %q (cpu/cpuid): %w", line, err)
	}
	c := procStatCPU{id: id}
	for _, dst := range [...]*float64{&c.user, &c.nice, &c.system, &c.idle, &c.iowait, &c.irq, &c.softIRQ, &c.steal, &c.guest, &c.guestNice} {
		var f []byte
		if f, rest = cutField(rest); f == nil {
			break
		}
		v, err := parseTicks(f)
		if err != nil {
			return fmt.Errorf("couldn't parse %q (cpu): %w", line, err)
		}
		*dst = v / userHZ
	}
	s.cpus = append(s.cpus, c)
	return nil
}

// parseTicks parses a tick count: digits, or failing that anything
// strconv.ParseFloat reads (as procfs's %f).
func parseTicks(f []byte) (float64, error) {
	if len(f) > 0 && len(f) < 16 {
		var v uint64
		ok := true
		for _, c := range f {
			if c < '0' || c > '9' {
				ok = false
				break
			}
			v = v*10 + uint64(c-'0')
		}
		if ok {
			return float64(v), nil
		}
	}
	return strconv.ParseFloat(string(f), 64)
}
