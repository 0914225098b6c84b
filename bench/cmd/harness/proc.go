package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchenv"
)

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
	addr, err := benchenv.FreeAddr()
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
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
