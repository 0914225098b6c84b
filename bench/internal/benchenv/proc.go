package benchenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// Linux fixes it at 100 for user space on every architecture Go supports,
// whatever the kernel's internal HZ, so it needs no sysconf call.
const clockTicks = 100

// ProcSample is what /proc says about a running process.
type ProcSample struct {
	CPU     time.Duration // utime + stime
	PeakRSS int64         // VmHWM, bytes
	RSS     int64         // VmRSS, bytes
	RSSAnon int64         // RssAnon: heap, stacks, other private memory
	RSSFile int64         // RssFile: pages of the binary and other mapped files
}

// ReadProc samples process pid from /proc/<pid>/stat and status.
func ReadProc(pid int) (ProcSample, error) {
	var s ProcSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read process stats: %w", err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return s, err
	}
	s.CPU = cpu
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read process status: %w", err)
	}
	if s.PeakRSS, err = statusKB(status, "VmHWM:"); err != nil {
		return s, err
	}
	if s.RSS, err = statusKB(status, "VmRSS:"); err != nil {
		return s, err
	}
	if s.RSSAnon, err = statusKB(status, "RssAnon:"); err != nil {
		return s, err
	}
	if s.RSSFile, err = statusKB(status, "RssFile:"); err != nil {
		return s, err
	}
	return s, nil
}

// parseStatCPU returns utime+stime from /proc/<pid>/stat. The command name
// (field 2) may contain spaces and parentheses, so fields are counted from
// the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat: no ')'")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat: %d fields after the command", len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("malformed /proc stat: %w", err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// statusKB returns the value of the "key  N kB" line of /proc/<pid>/status
// in bytes.
func statusKB(status []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("malformed %s line %q", key, line)
			}
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("malformed %s line %q: %w", key, line, err)
			}
			return v << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc status", key)
}
