package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPromtailStagesEndToEnd ships a Promtail config that uses json,
// labels, timestamp, match with drop, metrics and multiline through the
// real binary into VictoriaLogs, and checks the streams, lines, timestamps
// and counters that come out.
func TestPromtailStagesEndToEnd(t *testing.T) {
	vl := startVictoriaLogs(t)
	dir := t.TempDir()
	appLog, javaLog := filepath.Join(dir, "app.log"), filepath.Join(dir, "java.log")
	positions := filepath.Join(t.TempDir(), "positions.yaml")
	cfg := writeFile(t, t.TempDir(), "promtail.yaml", fmt.Sprintf(`server:
  http_listen_port: 9080
  grpc_listen_port: 0
positions:
  filename: %s
clients:
  - url: %s
    batchwait: 100ms
scrape_configs:
  - job_name: app
    static_configs:
      - labels:
          job: app
          __path__: %s
    pipeline_stages:
      - json:
          expressions:
            level: level
            ts: ts
            tenant: tenant
      - labels:
          level:
          tenant:
      - timestamp:
          source: ts
          format: RFC3339Nano
      - match:
          selector: '{level="debug"}'
          action: drop
          drop_counter_reason: debug_noise
      - metrics:
          app_lines_total:
            type: Counter
            description: lines shipped, by level
            config:
              match_all: true
              action: inc
  - job_name: java
    static_configs:
      - labels:
          job: java
          __path__: %s
    pipeline_stages:
      - multiline:
          firstline: '^\[\d{4}-'
          max_wait_time: 500ms
`, yq(positions), yq(vl.pushURL()), yq(appLog), yq(javaLog)))

	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	var app []string
	want := map[string]time.Time{} // shipped line -> its parsed timestamp
	levels := []string{"info", "debug", "error", "info"}
	tenants := []string{"rentguy", "psra"}
	debug := 0
	for i := 0; i < 200; i++ {
		ts := base.Add(time.Duration(i)*time.Second + time.Duration(i)*1001)
		level, tenant := levels[i%len(levels)], tenants[i%len(tenants)]
		line := fmt.Sprintf(`{"ts":%q,"level":%q,"tenant":%q,"msg":"request %d"}`, ts.Format(time.RFC3339Nano), level, tenant, i)
		app = append(app, line)
		if level == "debug" {
			debug++
			continue
		}
		want[line] = ts
	}
	app = append(app, `{"level": "info", broken json`)
	var java []string
	var blocks []string
	for i := 0; i < 20; i++ {
		head := fmt.Sprintf("[2026-11-25 10:00:%02d] ERROR request %d failed", i, i)
		block := []string{head}
		for j := 0; j < i%4; j++ {
			block = append(block, fmt.Sprintf("    at com.example.Handler.step%d(Handler.java:%d)", j, 10+j))
		}
		java = append(java, block...)
		blocks = append(blocks, strings.Join(block, "\n"))
	}
	appendLines(t, appLog, app...)
	appendLines(t, javaLog, java...)
	v := startVigil(t, cfg)

	// The broken line passes through, as Promtail passes it, unlabelled.
	shipped := len(want) + 1
	vl.waitCount(`_stream:{job="app"}`, shipped, deliveryTimeout)
	vl.waitCount(`_stream:{job="java"}`, len(blocks), deliveryTimeout)
	time.Sleep(500 * time.Millisecond)

	rows, err := vl.query(`_stream:{job="app"}`, 10*shipped)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != shipped {
		t.Errorf("app: %d entries stored, want %d (debug lines dropped)", len(rows), shipped)
	}
	for _, r := range rows {
		msg := r["_msg"]
		if strings.Contains(msg, "broken json") {
			if r["level"] != "" || r["filename"] != appLog {
				t.Errorf("malformed line relabelled: %v", r)
			}
			continue
		}
		ts, ok := want[msg]
		if !ok {
			t.Errorf("unexpected app line %q", msg)
			continue
		}
		delete(want, msg)
		if !strings.Contains(msg, `"level":"`+r["level"]+`"`) || !strings.Contains(msg, `"tenant":"`+r["tenant"]+`"`) || r["filename"] != appLog {
			t.Errorf("labels do not match the line: %v", r)
		}
		got, err := time.Parse(time.RFC3339Nano, r["_time"])
		if err != nil || !got.Equal(ts) {
			t.Errorf("line %q stored at %s, want its ts %s", msg, r["_time"], ts.Format(time.RFC3339Nano))
		}
	}
	if len(want) > 0 {
		t.Errorf("%d app lines missing", len(want))
	}

	jrows, err := vl.query(`_stream:{job="java"}`, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range jrows {
		got[r["_msg"]] = true
	}
	for _, b := range blocks {
		if !got[b] {
			t.Errorf("multiline block not shipped whole: %q", b)
		}
	}
	if len(jrows) != len(blocks) {
		t.Errorf("java: %d entries, want %d blocks", len(jrows), len(blocks))
	}

	m := v.scrape()
	if d := m.sum("logentry_dropped_lines_total", map[string]string{"reason": "debug_noise"}); d != float64(debug) {
		t.Errorf("logentry_dropped_lines_total{reason=debug_noise} = %v, want %d", d, debug)
	}
	if n := m.sum("promtail_custom_app_lines_total", nil); n != float64(shipped) {
		t.Errorf("promtail_custom_app_lines_total = %v, want %d (every line after the drop)", n, shipped)
	}
	if n := m.sum("promtail_custom_app_lines_total", map[string]string{"level": "error", "tenant": "rentguy"}); n != 50 {
		t.Errorf("promtail_custom_app_lines_total{level=error,tenant=rentguy} = %v, want 50", n)
	}
	if e := m.sum("vigil_processor_errors_total", nil); e < 1 {
		t.Errorf("vigil_processor_errors_total = %v: the malformed JSON line was not counted", e)
	}
}
