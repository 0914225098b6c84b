package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeMetrics lists the self-metrics README.md documents.
func readmeMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "## Self-metrics")
	if i < 0 {
		t.Fatal("README.md has no Self-metrics section")
	}
	s = s[i+len("## Self-metrics"):]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	var names []string
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile("`((?:promtail|vigil)_[a-z_]+)`").FindAllStringSubmatch(s, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			names = append(names, m[1])
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %d metric names in README.md's Self-metrics section: %v", len(names), names)
	}
	return names
}

// TestMetricsAndHealth ships lines to VictoriaLogs and checks the health
// endpoints and that /metrics carries every self-metric README.md names,
// with values that match what was shipped.
func TestMetricsAndHealth(t *testing.T) {
	needVigil(t)
	vl := startVictoriaLogs(t)
	dir, glob := logDir(t)
	fileA, fileB := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	a := numbered("met-a", 0, 700)
	b := append(numbered("met-b", 0, 300), "met-long "+strings.Repeat("y", 3000))
	positions := filepath.Join(t.TempDir(), "positions.yaml")
	cfg := cfgOpts{
		Positions:   positions,
		BufferBytes: "4MiB",
		Include:     []string{glob},
		Labels:      map[string]string{"job": "metrics"},
		SourceExtra: []string{"max_line_size: 1024"},
		URL:         vl.pushURL(),
	}.write(t, t.TempDir())
	appendLines(t, fileA, a[:300]...)
	v := startVigil(t, cfg)

	for _, path := range []string{"/ready", "/-/healthy"} {
		code, body, err := httpGet(v.url(path))
		if err != nil || code != http.StatusOK {
			t.Errorf("GET %s: %d %q %v, want 200", path, code, body, err)
		}
	}
	appendLines(t, fileA, a[300:]...)
	appendLines(t, fileB, b...)
	total := len(a) + len(b)
	sentBytes := 0
	for _, l := range append(append([]string{}, a...), b...) {
		sentBytes += min(len(l), 1024)
	}

	v.waitMetric("promtail_sent_entries_total", nil, "every line sent", deliveryTimeout, func(x float64) bool { return x >= float64(total) })
	for _, f := range []string{fileA, fileB} {
		v.waitMetric("vigil_file_lag_bytes", map[string]string{"path": f}, "lag of "+f+" back to 0", deliveryTimeout, func(x float64) bool { return x == 0 })
	}
	v.waitMetric("vigil_buffer_bytes", nil, "the buffer to empty", deliveryTimeout, func(x float64) bool { return x == 0 })
	if n := vl.waitCount("*", total, deliveryTimeout); n != total {
		t.Errorf("VictoriaLogs holds %d entries, want %d", n, total)
	}

	m := v.scrape()
	for _, name := range readmeMetrics(t) {
		if name == "vigil_dropped_entries_total" {
			// Counted per processor and reason; with no processor in the
			// config there is no series to export.
			continue
		}
		if m[name] == nil {
			t.Errorf("/metrics lacks %s, which README.md documents", name)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes", "process_cpu_seconds_total"} {
		if m[name] == nil {
			t.Errorf("/metrics lacks the runtime/process metric %s", name)
		}
	}

	host := strings.TrimPrefix(strings.TrimSuffix(vl.base, "/"), "http://")
	eq := func(name string, match map[string]string, want float64) {
		t.Helper()
		if !m.has(name, match) {
			t.Errorf("%s%v: no such series", name, match)
			return
		}
		if got := m.sum(name, match); got != want {
			t.Errorf("%s%v = %v, want %v", name, match, got, want)
		}
	}
	eq("promtail_read_lines_total", nil, float64(total))
	eq("promtail_read_lines_total", map[string]string{"path": fileA}, float64(len(a)))
	eq("promtail_read_lines_total", map[string]string{"path": fileB}, float64(len(b)))
	for _, f := range []string{fileA, fileB} {
		size := float64(fileSize(t, f))
		eq("promtail_read_bytes_total", map[string]string{"path": f}, size)
		eq("promtail_file_bytes_total", map[string]string{"path": f}, size)
		eq("vigil_file_lag_bytes", map[string]string{"path": f}, 0)
	}
	eq("promtail_files_active_total", nil, 2)
	eq("promtail_sent_entries_total", map[string]string{"host": host}, float64(total))
	eq("promtail_sent_bytes_total", map[string]string{"host": host}, float64(sentBytes))
	if x := m.sum("promtail_encoded_bytes_total", map[string]string{"host": host}); x <= 0 {
		t.Errorf("promtail_encoded_bytes_total{host=%q} = %v, want > 0", host, x)
	}
	if x := m.sum("promtail_request_duration_seconds", map[string]string{"host": host, "status_code": "204"}); x < 1 {
		t.Errorf("promtail_request_duration_seconds{host=%q,status_code=\"204\"} counts %v requests, want >= 1 (by status: %v)", host, x, m.byLabel("promtail_request_duration_seconds", "status_code"))
	}
	eq("promtail_dropped_entries_total", nil, 0)
	eq("promtail_dropped_bytes_total", nil, 0)
	eq("promtail_batch_retries_total", nil, 0)
	eq("vigil_lines_truncated_total", nil, 1)
	eq("vigil_buffer_bytes", nil, 0)
	eq("vigil_buffer_capacity_bytes", nil, 4<<20)
	eq("vigil_config_last_reload_successful", nil, 1)
	eq("promtail_config_reload_success_total", nil, 0)
	eq("promtail_config_reload_fail_total", nil, 0)

	// The positions file agrees with the lag: everything is committed.
	time.Sleep(1500 * time.Millisecond) // one sync period and some
	pos := readPositions(t, positions)
	for _, f := range []string{fileA, fileB} {
		if got, want := pos[f], fileSize(t, f); got != want {
			t.Errorf("positions file: %s at %d, want %d (the file's size)", f, got, want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", dumpMetrics(m, "promtail_", "vigil_"))
	}
}

func dumpMetrics(m metrics, prefixes ...string) string {
	var b strings.Builder
	for _, name := range sortedKeys(m) {
		ok := false
		for _, p := range prefixes {
			ok = ok || strings.HasPrefix(name, p)
		}
		if !ok {
			continue
		}
		for _, s := range m[name].Metric {
			var ls []string
			for _, l := range s.Label {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			fmt.Fprintf(&b, "%s{%s} %v\n", name, strings.Join(ls, ","), seriesValue(s))
		}
	}
	return b.String()
}
