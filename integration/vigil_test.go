package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/syncbuf"
)

// Deadlines are generous: the tests must pass on a loaded 2-core machine.
const (
	startTimeout    = 30 * time.Second
	deliveryTimeout = 60 * time.Second
	exitTimeout     = 45 * time.Second
)

// syncBuffer collects output written from several goroutines.
type syncBuffer = syncbuf.Buffer

// tail keeps failure logs readable when a process was chatty.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "[... " + strconv.Itoa(len(s)-n) + " bytes cut ...]\n" + s[len(s)-n:]
}

var instances atomic.Int32

// vigilProc is one running vigil.
type vigilProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	addr   string // host:port of its HTTP server
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	state  *os.ProcessState
	err    error
}

// startVigil starts vigil with cfgFile and waits until /ready answers 200.
// Extra flags come after -config.file and -web.listen-address.
func startVigil(t *testing.T, cfgFile string, extra ...string) *vigilProc {
	t.Helper()
	v := launchVigil(t, cfgFile, extra...)
	if err := v.waitReady(startTimeout); err != nil {
		t.Fatalf("%s did not become ready: %v", v.name, err)
	}
	return v
}

// launchVigil starts vigil without waiting for it to be ready. The port is
// chosen free just before the start; if another process takes it in
// between, vigil exits at once and is started again on another port.
func launchVigil(t *testing.T, cfgFile string, extra ...string) *vigilProc {
	t.Helper()
	needVigil(t)
	for attempt := 0; ; attempt++ {
		addr := freeAddr(t)
		args := append([]string{"-config.file", cfgFile, "-web.listen-address", addr}, extra...)
		v := spawnVigil(t, args...)
		v.addr = addr
		select {
		case <-v.done:
			if attempt < 3 && strings.Contains(v.stderr.String(), "address already in use") {
				continue
			}
		case <-time.After(200 * time.Millisecond):
		}
		return v
	}
}

// spawnVigil runs the binary with args. A cleanup kills it if the test
// left it running and logs its output when the test failed.
func spawnVigil(t *testing.T, args ...string) *vigilProc {
	t.Helper()
	needVigil(t)
	v := &vigilProc{
		t:      t,
		name:   fmt.Sprintf("vigil#%d", instances.Add(1)),
		stdout: &syncBuffer{},
		stderr: &syncBuffer{},
		done:   make(chan struct{}),
	}
	v.cmd = exec.Command(vigilBin, args...)
	v.cmd.Stdout = v.stdout
	v.cmd.Stderr = v.stderr
	// Keep the tests hermetic: the embedded default reads these.
	v.cmd.Env = append(os.Environ(), "LOKI_URL=", "VIGIL_DATA_DIR="+t.TempDir())
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("starting vigil: %v", err)
	}
	go func() {
		v.err = v.cmd.Wait()
		v.state = v.cmd.ProcessState
		close(v.done)
	}()
	t.Logf("%s: started pid %d: vigil %s", v.name, v.cmd.Process.Pid, strings.Join(args, " "))
	t.Cleanup(func() {
		if !v.exited() {
			_ = v.cmd.Process.Kill()
			<-v.done
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", v.name, tail(v.stderr.String(), 32<<10))
		}
	})
	return v
}

func (v *vigilProc) exited() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

func (v *vigilProc) pid() int { return v.cmd.Process.Pid }

// url is the base URL of vigil's HTTP server.
func (v *vigilProc) url(path string) string { return "http://" + v.addr + path }

func (v *vigilProc) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if v.exited() {
			return fmt.Errorf("exited (%v) before it was ready; stderr:\n%s", v.err, tail(v.stderr.String(), 8<<10))
		}
		code, body, err := httpGet(v.url("/ready"))
		if err == nil && code == http.StatusOK {
			return nil
		}
		last = fmt.Sprintf("status %d %q err %v", code, body, err)
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no 200 from /ready within %s (last: %s)", timeout, last)
}

// signal sends sig to the process.
func (v *vigilProc) signal(sig syscall.Signal) {
	v.t.Helper()
	if err := v.cmd.Process.Signal(sig); err != nil {
		v.t.Fatalf("%s: sending %v: %v", v.name, sig, err)
	}
}

// kill9 kills the process with SIGKILL and waits for it to be gone.
func (v *vigilProc) kill9() {
	v.t.Helper()
	if err := v.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		v.t.Fatalf("%s: kill -9: %v", v.name, err)
	}
	<-v.done
	v.t.Logf("%s: killed with SIGKILL", v.name)
}

// wait waits for the process to exit and returns its exit code.
func (v *vigilProc) wait(timeout time.Duration) int {
	v.t.Helper()
	select {
	case <-v.done:
	case <-time.After(timeout):
		v.t.Fatalf("%s did not exit within %s; stderr:\n%s", v.name, timeout, tail(v.stderr.String(), 16<<10))
	}
	return v.state.ExitCode()
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var httpClient = &http.Client{Timeout: 20 * time.Second}

func httpGet(url string) (int, string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func httpPost(url string) (int, string, error) {
	resp, err := httpClient.Post(url, "", nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metrics is one scrape of /metrics.
type metrics map[string]*dto.MetricFamily

// scrape reads vigil's /metrics in the Prometheus text format.
func (v *vigilProc) scrape() metrics {
	v.t.Helper()
	m, err := v.tryScrape()
	if err != nil {
		v.t.Fatalf("%s: %v", v.name, err)
	}
	return m
}

func (v *vigilProc) tryScrape() (metrics, error) {
	req, err := http.NewRequest(http.MethodGet, v.url("/metrics"), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("scraping /metrics: status %d: %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing /metrics: %w", err)
	}
	return metrics(fams), nil
}

// sum adds up every series of name whose labels include match. A missing
// metric sums to 0; use has to tell the difference.
func (m metrics) sum(name string, match map[string]string) float64 {
	total := 0.0
	for _, s := range m.series(name, match) {
		total += seriesValue(s)
	}
	return total
}

// has reports whether a series of name with labels including match exists.
func (m metrics) has(name string, match map[string]string) bool {
	return len(m.series(name, match)) > 0
}

func (m metrics) series(name string, match map[string]string) []*dto.Metric {
	f := m[name]
	if f == nil {
		return nil
	}
	var out []*dto.Metric
outer:
	for _, s := range f.Metric {
		labels := map[string]string{}
		for _, l := range s.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, want := range match {
			if labels[k] != want {
				continue outer
			}
		}
		out = append(out, s)
	}
	return out
}

// byLabel sums name per value of label, for failure messages.
func (m metrics) byLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	f := m[name]
	if f == nil {
		return out
	}
	for _, s := range f.Metric {
		key := ""
		for _, l := range s.Label {
			if l.GetName() == label {
				key = l.GetValue()
			}
		}
		out[key] += seriesValue(s)
	}
	return out
}

func seriesValue(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Untyped != nil:
		return s.Untyped.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	case s.Summary != nil:
		return float64(s.Summary.GetSampleCount())
	}
	return 0
}

// waitMetric polls /metrics until cond holds on the sum of name's series
// matching match, and returns the last value.
func (v *vigilProc) waitMetric(name string, match map[string]string, what string, timeout time.Duration, cond func(float64) bool) float64 {
	v.t.Helper()
	deadline := time.Now().Add(timeout)
	last := -1.0
	for {
		if v.exited() {
			v.t.Fatalf("%s exited (%v) while waiting for %s; stderr:\n%s", v.name, v.err, what, tail(v.stderr.String(), 16<<10))
		}
		m, err := v.tryScrape()
		if err == nil {
			last = m.sum(name, match)
			if cond(last) {
				return last
			}
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("%s: timed out after %s waiting for %s: %s%v = %v (scrape error: %v)", v.name, timeout, what, name, match, last, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rssBytes is the process's resident set size from /proc.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("unexpected VmRSS line %q", line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// runVigil runs a command that is expected to exit by itself (validate,
// -check-syntax) and returns its exit code and output.
func runVigil(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	needVigil(t)
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, vigilBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "LOKI_URL=", "VIGIL_DATA_DIR="+t.TempDir())
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("vigil %s did not exit within %s", strings.Join(args, " "), exitTimeout)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running vigil %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readPositions reads a Promtail-format positions file.
func readPositions(t *testing.T, file string) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("reading positions: %v", err)
	}
	var pf struct {
		Positions map[string]string `yaml:"positions"`
	}
	if err := yaml.Unmarshal(b, &pf); err != nil {
		t.Fatalf("positions file %s is not Promtail's format: %v\n%s", file, err, b)
	}
	out := map[string]int64{}
	for k, v := range pf.Positions {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("positions file %s: %s has offset %q, not a number", file, k, v)
		}
		out[k] = n
	}
	return out
}

// fileSize is the size of path, failing the test if it cannot be read.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// waitFor polls cond until it returns true or the deadline passes, then
// fails with what.
func waitFor(t *testing.T, timeout time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, what())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// yq quotes s as a YAML double-quoted scalar.
func yq(s string) string { return strconv.Quote(s) }
