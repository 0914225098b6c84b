package containers

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// reader reads whole cgroup and proc files into one reused buffer: a
// scrape opens a fixed set of small files per container, and going
// through os.File would cost an allocation and a poller registration
// attempt for each of them. What read returns is valid until the next
// read.
type reader struct {
	buf []byte
}

func newReader() *reader { return &reader{buf: make([]byte, 16<<10)} }

func (r *reader) read(path string) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(r.buf) {
			r.buf = append(r.buf, make([]byte, len(r.buf))...)
		}
		m, err := unix.Read(fd, r.buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if m <= 0 {
			return r.buf[:n], nil
		}
		n += m
	}
}

// gone says whether err means the file's cgroup or process no longer
// exists: the container stopped between listing and reading.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ESRCH)
}

// exists reports whether path exists, for probing at setup (never on the
// scrape path).
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// nextLine splits off b's first line.
func nextLine(b []byte) (line, rest []byte) {
	for i, c := range b {
		if c == '\n' {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

// nextField splits off b's first space-separated field, skipping leading
// blanks.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\t' {
		j++
	}
	return b[i:j], b[j:]
}

// parseUint parses a decimal number, ignoring surrounding whitespace.
func parseUint(b []byte) (uint64, bool) {
	b = trim(b)
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parseInt parses a possibly negative decimal number.
func parseInt(b []byte) (int64, bool) {
	b = trim(b)
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, ok := parseUint(b)
	if !ok || u > 1<<63 {
		return 0, false
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

func trim(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// forEachKV calls f for each "key value" line of a flat keyed file
// (memory.stat, cpu.stat, memory.events, cpuacct.stat). Lines whose value
// is not a number are skipped.
func forEachKV(b []byte, f func(key []byte, v uint64)) {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		k, rest := nextField(line)
		if len(k) == 0 {
			continue
		}
		if v, ok := parseUint(rest); ok {
			f(k, v)
		}
	}
}

// devKey identifies a block device.
type devKey struct{ major, minor uint32 }

// parseDev parses "major:minor".
func parseDev(b []byte) (devKey, bool) {
	for i, c := range b {
		if c == ':' {
			ma, ok1 := parseUint(b[:i])
			mi, ok2 := parseUint(b[i+1:])
			if !ok1 || !ok2 || ma > 1<<32-1 || mi > 1<<32-1 {
				return devKey{}, false
			}
			return devKey{uint32(ma), uint32(mi)}, true
		}
	}
	return devKey{}, false
}

// ioEntry is one device's byte count for one operation, as
// blkio.*io_service_bytes* and io.stat report them.
type ioEntry struct {
	dev   devKey
	op    string // cAdvisor's operation names: Read, Write, Sync, Async, Discard, Total
	value uint64
}

// blkioOps interns the operation names of cgroup v1's blkio files, so a
// scrape allocates no strings for them.
var blkioOps = []string{"Read", "Write", "Sync", "Async", "Discard", "Total"}

func internOp(b []byte) (string, bool) {
	for _, op := range blkioOps {
		if string(b) == op {
			return op, true
		}
	}
	return "", false
}

// parseBlkioV1 appends the entries of a cgroup v1
// blkio.throttle.io_service_bytes_recursive (or io_service_bytes) file:
// "8:0 Read 4096" lines and a final "Total N" line, which is skipped.
func parseBlkioV1(b []byte, out []ioEntry) []ioEntry {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		f1, rest := nextField(line)
		dev, ok := parseDev(f1)
		if !ok {
			continue
		}
		f2, rest := nextField(rest)
		op, ok := internOp(f2)
		if !ok {
			continue
		}
		v, ok := parseUint(rest)
		if !ok {
			continue
		}
		out = append(out, ioEntry{dev: dev, op: op, value: v})
	}
	return out
}

// parseIOStatV2 appends the byte counts of a cgroup v2 io.stat file:
// "8:0 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0".
// cAdvisor reports rbytes as Read and wbytes as Write; so does vigil.
func parseIOStatV2(b []byte, out []ioEntry) []ioEntry {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		f, rest := nextField(line)
		dev, ok := parseDev(f)
		if !ok {
			continue
		}
		for len(rest) > 0 {
			f, rest = nextField(rest)
			if len(f) == 0 {
				break
			}
			eq := -1
			for i, c := range f {
				if c == '=' {
					eq = i
					break
				}
			}
			if eq < 0 {
				continue
			}
			var op string
			switch string(f[:eq]) {
			case "rbytes":
				op = "Read"
			case "wbytes":
				op = "Write"
			default:
				continue
			}
			if v, ok := parseUint(f[eq+1:]); ok {
				out = append(out, ioEntry{dev: dev, op: op, value: v})
			}
		}
	}
	return out
}

// netIface is one interface's line of /proc/<pid>/net/dev.
type netIface struct {
	name                                    string
	rxBytes, rxPackets, rxErrors, rxDropped uint64
	txBytes, txPackets, txErrors, txDropped uint64
}

// ignoredIface says whether cAdvisor leaves an interface out: loopback,
// the host side of veth pairs and Docker's bridges.
func ignoredIface(name []byte) bool {
	for _, p := range []string{"lo", "veth", "docker", "nerdctl"} {
		if len(name) >= len(p) && lowerEq(name[:len(p)], p) {
			return true
		}
	}
	return false
}

func lowerEq(b []byte, s string) bool {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// parseNetDev parses /proc/<pid>/net/dev into out, reusing out's names
// when the interfaces are the same as last time, so a steady container
// allocates nothing.
func parseNetDev(b []byte, out []netIface) []netIface {
	prev := out
	out = out[:0]
	// Two header lines.
	_, b = nextLine(b)
	_, b = nextLine(b)
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		colon := -1
		for i, c := range line {
			if c == ':' {
				colon = i
				break
			}
		}
		if colon < 0 {
			continue
		}
		name := trim(line[:colon])
		if len(name) == 0 || ignoredIface(name) {
			continue
		}
		var v [16]uint64
		rest := line[colon+1:]
		n := 0
		for n < 16 {
			var f []byte
			f, rest = nextField(rest)
			if len(f) == 0 {
				break
			}
			x, ok := parseUint(f)
			if !ok {
				break
			}
			v[n] = x
			n++
		}
		if n < 16 {
			continue
		}
		var s string
		if i := len(out); i < len(prev) && prev[i].name == string(name) {
			s = prev[i].name
		} else {
			s = string(name)
		}
		// Fields: rx bytes packets errs drop fifo frame compressed
		// multicast, then tx bytes packets errs drop fifo colls carrier
		// compressed.
		out = append(out, netIface{
			name:    s,
			rxBytes: v[0], rxPackets: v[1], rxErrors: v[2], rxDropped: v[3],
			txBytes: v[8], txPackets: v[9], txErrors: v[10], txDropped: v[11],
		})
	}
	return out
}
