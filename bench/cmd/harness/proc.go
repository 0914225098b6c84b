package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// Linux fixes it at 100 for user space on every architecture Go supports,
// whatever the kernel's internal HZ, so it needs no sysconf call.
const clockTicks = 100

// procSample is what /proc says about a running process.
type procSample struct {
	CPU     time.Duration // utime + stime
	PeakRSS int64         // VmHWM, bytes
	RSS     int64         // VmRSS, bytes
}

func readProc(pid int) (procSample, error) {
	var s procSample
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

// freeAddr returns a loopback address with a port that was free a moment
// ago. Another process could take it before vigil binds it; vigil then
// fails to start and the run reports that.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// agent is a running vigil process.
type agent struct {
	cmd     *exec.Cmd
	addr    string
	logPath string
	started time.Time
	exited  chan struct{}
	waitErr error
}

func startAgent(bin, config, logPath string, extra []string) (*agent, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("vigil log: %w", err)
	}
	args := append([]string{"-config.file", config, "-web.listen-address", addr}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	a := &agent{cmd: cmd, addr: addr, logPath: logPath, exited: make(chan struct{})}
	a.started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start vigil: %w", err)
	}
	go func() {
		a.waitErr = cmd.Wait()
		logf.Close()
		close(a.exited)
	}()
	return a, nil
}

func (a *agent) pid() int { return a.cmd.Process.Pid }

func (a *agent) running() bool {
	select {
	case <-a.exited:
		return false
	default:
		return true
	}
}

// waitReady polls vigil's /ready until it answers 200.
func (a *agent) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	for {
		if !a.running() {
			return fmt.Errorf("vigil exited before it was ready: %v\n%s", a.waitErr, a.logTail())
		}
		resp, err := client.Get("http://" + a.addr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vigil not ready: %w\n%s", ctx.Err(), a.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and waits for the graceful shutdown, killing vigil if
// it takes longer than grace.
func (a *agent) stop(grace time.Duration) (exit *os.ProcessState, err error) {
	if a.running() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-a.exited:
	case <-time.After(grace):
		_ = a.cmd.Process.Kill()
		<-a.exited
		err = fmt.Errorf("vigil did not stop within %v of SIGTERM; killed", grace)
	}
	if err == nil && a.waitErr != nil {
		err = fmt.Errorf("vigil exited with %v", a.waitErr)
	}
	return a.cmd.ProcessState, err
}

// logTail returns the end of vigil's log, for error messages.
func (a *agent) logTail() string {
	b, err := os.ReadFile(a.logPath)
	if err != nil {
		return ""
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "--- end of " + a.logPath + " ---\n" + string(b)
}

// rusageCPU is the process's total user+system CPU time from wait4,
// including its shutdown.
func rusageCPU(ps *os.ProcessState) time.Duration {
	if ps == nil {
		return 0
	}
	return ps.UserTime() + ps.SystemTime()
}

// rusageMaxRSS is ru_maxrss in bytes (Linux reports kilobytes).
func rusageMaxRSS(ps *os.ProcessState) int64 {
	if ps == nil {
		return 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10
	}
	return 0
}
