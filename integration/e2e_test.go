package integration

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// e2eLines returns what is written to each file, and what must arrive for
// each written line. Every line is unique so it can be matched back.
func e2eLines() (a, b []string) {
	a = numbered("e2e-a", 0, 300)
	a = append(a,
		"e2e-utf8 héllo wörld ✓ 日本語 🚀 ñ",
		"e2e-utf8-2 Ελληνικά and кириллица\ttab inside",
		`e2e-json {"level":"info","msg":"looks like json","n":1}`,
		"  e2e-spaces leading and trailing spaces  ",
	)
	long := "e2e-long " + strings.Repeat("x", 20000) + " end"
	b = numbered("e2e-b", 0, 200)
	b = append(b,
		"e2e-bad-1 lone \xff byte",
		"e2e-bad-2 broken \xc3\x28 pair",
		"e2e-bad-3 cut \xe2\x82 triple",
		"e2e-bad-4 run \xff\xfe\xfd of bad bytes",
		long,
		"e2e-after-long the line after a long one is intact",
	)
	b = append(b, numbered("e2e-b2", 0, 50)...)
	return a, b
}

// repairs returns the forms an invalid UTF-8 line may take once repaired
// with U+FFFD: one per invalid run (strings.ToValidUTF8) or one per
// invalid byte (as Go's range over a string decodes it).
func repairs(s string) []string {
	if utf8.ValidString(s) {
		return []string{s}
	}
	perRun := strings.ToValidUTF8(s, "\uFFFD")
	perByte := string([]rune(s))
	if perRun == perByte {
		return []string{perRun}
	}
	return []string{perRun, perByte}
}

const e2eMaxLine = 4096

// expectedLine is what arrives for a written line: cut at max_line_size
// bytes, as Promtail's max_line_size_truncate does.
func expectedLine(s string) string {
	if len(s) > e2eMaxLine {
		return s[:e2eMaxLine]
	}
	return s
}

// TestVictoriaLogsEndToEnd ships files with static labels to VictoriaLogs
// and reads every line back with LogsQL: text (UTF-8, repaired invalid
// UTF-8, a line cut at max_line_size) and labels (job and env from the
// config, filename from the source, host from the sink's external labels).
// The same runs from a native config and from a Promtail config whose
// relabel_configs produce the same labels.
func TestVictoriaLogsEndToEnd(t *testing.T) {
	needVigil(t)
	for _, format := range []string{"native", "promtail"} {
		t.Run(format, func(t *testing.T) {
			vl := startVictoriaLogs(t)
			dir, glob := logDir(t)
			fileA, fileB := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
			positions := filepath.Join(t.TempDir(), "positions.yaml")
			var cfg string
			if format == "native" {
				cfg = cfgOpts{
					Positions:   positions,
					Include:     []string{glob},
					Labels:      map[string]string{"job": "e2e", "env": "test"},
					SourceExtra: []string{fmt.Sprintf("max_line_size: %d", e2eMaxLine)},
					URL:         vl.pushURL(),
					SinkExtra:   []string{"external_labels: {host: itest}"},
				}.write(t, t.TempDir())
			} else {
				cfg = writeFile(t, t.TempDir(), "promtail.yaml", fmt.Sprintf(`server:
  http_listen_port: 9080
  grpc_listen_port: 0
positions:
  filename: %s
  sync_period: 1s
clients:
  - url: %s
    batchwait: 100ms
    external_labels:
      host: itest
limits_config:
  max_line_size: %d
  max_line_size_truncate: true
scrape_configs:
  - job_name: e2e
    static_configs:
      - targets: [localhost]
        labels:
          job: e2e
          environment: test
          __path__: %s
    relabel_configs:
      - source_labels: [environment]
        target_label: env
      - regex: environment
        action: labeldrop
`, yq(positions), yq(vl.pushURL()), e2eMaxLine, yq(glob)))
			}
			a, b := e2eLines()
			// Half is there before vigil starts, half is appended while it runs.
			appendLines(t, fileA, a[:len(a)/2]...)
			appendLines(t, fileB, b[:len(b)/2]...)
			v := startVigil(t, cfg)
			appendLines(t, fileA, a[len(a)/2:]...)
			appendLines(t, fileB, b[len(b)/2:]...)

			total := len(a) + len(b)
			vl.waitCount("*", total, deliveryTimeout)
			v.waitMetric("promtail_sent_entries_total", nil, "every line sent", deliveryTimeout, func(x float64) bool { return x >= float64(total) })
			time.Sleep(500 * time.Millisecond) // let stray duplicates land before counting
			rows, err := vl.query("*", 10*total)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != total {
				t.Errorf("VictoriaLogs holds %d entries, want %d", len(rows), total)
			}

			// Index what arrived by line; check each written line once.
			byMsg := map[string][]vlRow{}
			for _, r := range rows {
				byMsg[r["_msg"]] = append(byMsg[r["_msg"]], r)
			}
			start := time.Now().Add(-5 * time.Minute)
			failures := 0
			errorf := func(format string, args ...any) {
				t.Helper()
				if failures++; failures <= 20 {
					t.Errorf(format, args...)
				}
			}
			defer func() {
				if failures > 20 {
					t.Errorf("... and %d more line mismatches", failures-20)
				}
			}()
			check := func(file string, written []string) {
				wantStream := fmt.Sprintf(`{env="test",filename=%q,host="itest",job="e2e"}`, file)
				for _, w := range written {
					var got []vlRow
					var forms []string
					for _, form := range repairs(expectedLine(w)) {
						forms = append(forms, form)
						got = append(got, byMsg[form]...)
					}
					if len(got) != 1 {
						errorf("line %.80q arrived %d times, want once (looked for %.80q)", w, len(got), forms)
						continue
					}
					r := got[0]
					if r["_stream"] != wantStream {
						errorf("line %.60q: stream %s, want %s", w, r["_stream"], wantStream)
					}
					var fields []string
					for k := range r {
						if !strings.HasPrefix(k, "_") {
							fields = append(fields, k)
						}
					}
					sort.Strings(fields)
					if strings.Join(fields, ",") != "env,filename,host,job" {
						errorf("line %.60q: label fields %v, want env,filename,host,job", w, fields)
					}
					for k, want := range map[string]string{"job": "e2e", "env": "test", "host": "itest", "filename": file} {
						if r[k] != want {
							errorf("line %.60q: %s=%q, want %q", w, k, r[k], want)
						}
					}
					if ts, err := time.Parse(time.RFC3339Nano, r["_time"]); err != nil || ts.Before(start) || ts.After(time.Now().Add(time.Minute)) {
						errorf("line %.60q: _time %q is not the time it was read (err %v)", w, r["_time"], err)
					}
				}
			}
			check(fileA, a)
			check(fileB, b)

			m := v.scrape()
			if d := m.sum("promtail_dropped_entries_total", nil); d != 0 {
				t.Errorf("promtail_dropped_entries_total = %v, want 0 (invalid UTF-8 must not get a batch rejected): %v", d, m.byLabel("promtail_dropped_entries_total", "reason"))
			}
			if n := m.sum("vigil_lines_truncated_total", nil); n != 1 {
				t.Errorf("vigil_lines_truncated_total = %v, want 1 (one line longer than max_line_size)", n)
			}
			if n := m.sum("promtail_read_lines_total", nil); n != float64(total) {
				t.Errorf("promtail_read_lines_total = %v, want %d", n, total)
			}
		})
	}
}
