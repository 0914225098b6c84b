package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestGracefulShutdown sends SIGTERM while read lines wait in the sink
// (batchwait is a minute): they must be delivered before vigil exits and
// their positions saved, so a restart sends neither them again nor loses
// what was written meanwhile.
func TestGracefulShutdown(t *testing.T) {
	needVigil(t)
	vl := startVictoriaLogs(t)
	dir, glob := logDir(t)
	file := filepath.Join(dir, "app.log")
	positions := filepath.Join(t.TempDir(), "positions.yaml")
	opts := cfgOpts{
		Positions: positions,
		// Only the shutdown saves positions in this test.
		SyncPeriod:      "1h",
		ShutdownTimeout: "30s",
		Include:         []string{glob},
		Labels:          map[string]string{"job": "shutdown"},
		URL:             vl.pushURL(),
		BatchWait:       "1m",
	}
	v := startVigil(t, opts.write(t, t.TempDir()))
	first := numbered("term", 0, 2000)
	appendLines(t, file, first...)
	v.waitMetric("promtail_read_lines_total", nil, "every line read", deliveryTimeout, func(x float64) bool { return x >= float64(len(first)) })
	if sent := v.scrape().sum("promtail_sent_entries_total", nil); sent != 0 {
		t.Fatalf("%v entries already sent before SIGTERM: with batchwait 1m and a small batch they should be pending", sent)
	}
	v.signal(syscall.SIGTERM)
	if code := v.wait(exitTimeout); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if n, err := vl.count("*"); err != nil || n != len(first) {
		t.Errorf("after SIGTERM VictoriaLogs holds %d entries (err %v), want %d: pending lines must be delivered before exit", n, err, len(first))
	}
	if got, want := readPositions(t, positions)[file], fileSize(t, file); got != want {
		t.Errorf("positions saved at shutdown: %s at %d, want %d (everything delivered)", file, got, want)
	}
	if strings.Contains(v.stderr.String(), "did not drain") {
		t.Errorf("shutdown reports an incomplete drain:\n%s", v.stderr.String())
	}

	second := numbered("term-after", 0, 700)
	appendLines(t, file, second...)
	// The same positions; a short batchwait so the test need not wait.
	opts.BatchWait = "100ms"
	v2 := startVigil(t, opts.write(t, t.TempDir()))
	all := append(append([]string{}, first...), second...)
	vl.waitCount("*", len(all), deliveryTimeout)
	time.Sleep(time.Second) // room for stray duplicates
	checkCounts(t, vl.msgCounts("*", 10*len(all)), all)
	v2.signal(syscall.SIGTERM)
	if code := v2.wait(exitTimeout); code != 0 {
		t.Errorf("exit code %d after the second SIGTERM, want 0", code)
	}
}

// writer appends numbered lines to a file at a steady pace until stopped.
type writer struct {
	t    *testing.T
	path string
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	lines []string
}

func startWriter(t *testing.T, path, prefix string, every time.Duration, perTick int) *writer {
	w := &writer{t: t, path: path, stop: make(chan struct{}), done: make(chan struct{})}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		defer f.Close()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for n := 0; ; {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			batch := numbered(prefix, n, perTick)
			n += perTick
			if _, err := f.WriteString(strings.Join(batch, "\n") + "\n"); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			w.mu.Lock()
			w.lines = append(w.lines, batch...)
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.halt)
	return w
}

// count is how many lines are written so far.
func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.lines)
}

func (w *writer) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// finish stops the writer and returns every line it wrote.
func (w *writer) finish() []string {
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

// TestReload reloads the config by SIGHUP and by POST /-/reload while a
// writer appends continuously. Each reload changes a static label, so what
// arrives shows which config read each line: no line may be lost or sent
// twice across a reload, and the label must switch once, in file order.
// A broken config is refused with its position and the old one keeps
// shipping.
func TestReload(t *testing.T) {
	needVigil(t)
	vl := startVictoriaLogs(t)
	dir, glob := logDir(t)
	file := filepath.Join(dir, "app.log")
	cfgDir := t.TempDir()
	opts := func(phase string) cfgOpts {
		return cfgOpts{
			Positions: filepath.Join(t.TempDir(), "positions.yaml"),
			Include:   []string{glob},
			Labels:    map[string]string{"job": "reload", "phase": phase},
			URL:       vl.pushURL(),
		}
	}
	base := opts("a")
	cfgFor := func(phase string) cfgOpts {
		o := base
		o.Labels = map[string]string{"job": "reload", "phase": phase}
		return o
	}
	cfgPath := cfgFor("a").write(t, cfgDir)
	v := startVigil(t, cfgPath)
	w := startWriter(t, file, "reload", 5*time.Millisecond, 3)
	metric := func(name string) float64 { return v.scrape().sum(name, nil) }

	time.Sleep(time.Second)
	cfgFor("b").write(t, cfgDir)
	v.signal(syscall.SIGHUP)
	v.waitMetric("promtail_config_reload_success_total", nil, "the SIGHUP reload", deliveryTimeout, func(x float64) bool { return x >= 1 })
	afterB := w.count()

	time.Sleep(time.Second)
	cfgFor("c").write(t, cfgDir)
	if code, body, err := httpPost(v.url("/-/reload")); err != nil || code != http.StatusOK {
		t.Fatalf("POST /-/reload: %d %q %v, want 200", code, body, err)
	}
	afterC := w.count()
	if got := metric("promtail_config_reload_success_total"); got != 2 {
		t.Errorf("promtail_config_reload_success_total = %v, want 2", got)
	}

	time.Sleep(time.Second)
	broken := cfgFor("d")
	broken.SinkExtra = []string{"bogus_key: 1"}
	text := broken.render()
	line, col := position(t, text, "bogus_key:")
	writeFile(t, cfgDir, "vigil.yaml", text)
	code, body, err := httpPost(v.url("/-/reload"))
	if err != nil || code != http.StatusInternalServerError {
		t.Errorf("POST /-/reload with a broken config: %d %q %v, want 500", code, body, err)
	}
	if want := fmt.Sprintf("%s:%d:%d", cfgPath, line, col); !strings.Contains(body, want) {
		t.Errorf("reload error %q does not name %s", body, want)
	}
	if code, _, err := httpGet(v.url("/ready")); err != nil || code != http.StatusOK {
		t.Errorf("/ready after a failed reload: %d %v, want 200: the old config keeps running", code, err)
	}
	if got := metric("vigil_config_last_reload_successful"); got != 0 {
		t.Errorf("vigil_config_last_reload_successful = %v after a failed reload, want 0", got)
	}
	v.signal(syscall.SIGHUP)
	v.waitMetric("promtail_config_reload_fail_total", nil, "the failed SIGHUP reload", deliveryTimeout, func(x float64) bool { return x >= 2 })
	if got := metric("promtail_config_reload_success_total"); got != 2 {
		t.Errorf("promtail_config_reload_success_total = %v after failed reloads, want 2", got)
	}

	time.Sleep(time.Second) // the old config must keep shipping
	lines := w.finish()
	vl.waitCount("*", len(lines), deliveryTimeout)
	time.Sleep(time.Second) // room for stray duplicates
	rows, err := vl.query("* | fields _msg, phase", 10*len(lines))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	phase := map[string]string{}
	for _, r := range rows {
		counts[r["_msg"]]++
		phase[r["_msg"]] = r["phase"]
	}
	checkCounts(t, counts, lines)

	// In file order the phase only moves forward, and lines written after
	// a reload completed carry its label.
	seen := map[string]int{}
	prev := "a"
	for i, l := range lines {
		p, ok := phase[l]
		if !ok {
			continue // reported as lost above
		}
		seen[p]++
		if p < prev {
			t.Errorf("line %d has phase %q after a line with phase %q: reloads must switch in file order", i, p, prev)
			break
		}
		prev = p
		if i >= afterC && p != "c" {
			t.Errorf("line %d, written after the POST reload returned, has phase %q, want c", i, p)
			break
		}
		if i >= afterB && p == "a" {
			t.Errorf("line %d, written after the SIGHUP reload completed, has phase a", i)
			break
		}
	}
	t.Logf("lines per phase: %v (SIGHUP reload done at line %d, POST reload at line %d, %d lines in all)", seen, afterB, afterC, len(lines))
	for _, p := range []string{"a", "b", "c"} {
		if seen[p] == 0 {
			t.Errorf("no line arrived with phase %q", p)
		}
	}
	if seen["d"] != 0 {
		t.Errorf("%d lines arrived with the broken config's label", seen["d"])
	}
}

// TestShutdownWithReceiverDown sends SIGTERM while nothing can be
// delivered: vigil must give up after graceful_shutdown_timeout without
// saving positions past the undelivered lines, and deliver them, once
// each, after a restart.
func TestShutdownWithReceiverDown(t *testing.T) {
	needVigil(t)
	r := newLokiReceiver(t)
	r.setDown(&fault{kind: faultStatus, status: http.StatusServiceUnavailable, body: "down"})
	dir, glob := logDir(t)
	file := filepath.Join(dir, "app.log")
	positions := filepath.Join(t.TempDir(), "positions.yaml")
	cfg := cfgOpts{
		Positions:       positions,
		ShutdownTimeout: "2s",
		Include:         []string{glob},
		Labels:          map[string]string{"job": "down"},
		URL:             r.pushURL(),
		SinkExtra:       []string{"backoff_config: {min_period: 50ms, max_period: 200ms, max_retries: 0}"},
	}.write(t, t.TempDir())
	v := startVigil(t, cfg)
	lines := numbered("undelivered", 0, 1000)
	appendLines(t, file, lines...)
	v.waitMetric("promtail_read_lines_total", nil, "every line read", deliveryTimeout, func(x float64) bool { return x >= float64(len(lines)) })
	v.waitMetric("promtail_batch_retries_total", nil, "retries against the dead receiver", deliveryTimeout, func(x float64) bool { return x >= 2 })
	v.signal(syscall.SIGTERM)
	code := v.wait(exitTimeout)
	t.Logf("exit code %d after SIGTERM with undeliverable lines", code)
	if _, err := os.Stat(positions); err == nil {
		if at := readPositions(t, positions)[file]; at != 0 {
			t.Errorf("positions saved %s at %d with nothing delivered, want 0", file, at)
		}
	}
	if n := r.acceptedCount(); n != 0 {
		t.Fatalf("receiver accepted %d lines while down", n)
	}

	r.setDown(nil)
	startVigil(t, cfg)
	r.waitLines(lines, deliveryTimeout)
	time.Sleep(time.Second) // room for stray duplicates
	r.checkExactlyOnce(lines)
}
