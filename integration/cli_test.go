package integration

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// position returns the 1-based line and column where at first occurs in s.
func position(t *testing.T, s, at string) (line, col int) {
	t.Helper()
	i := strings.Index(s, at)
	if i < 0 || strings.Count(s, at) != 1 {
		t.Fatalf("marker %q must occur exactly once in the config", at)
	}
	line = strings.Count(s[:i], "\n") + 1
	col = i - strings.LastIndex(s[:i], "\n")
	return line, col
}

// TestBadConfigCLI checks that validate and -check-syntax reject each kind
// of mistake with exit code 1 and an error naming FILE:line:col of the
// offending key or value, and accept good files with exit code 0.
func TestBadConfigCLI(t *testing.T) {
	needVigil(t)
	const nativeTail = `sinks:
  loki:
    type: loki
    url: http://127.0.0.1:3100/loki/api/v1/push
pipelines:
  main:
    sources: [logs]
    sinks: [loki]
`
	const promtailHead = `positions:
  filename: %DIR%/positions.yaml
clients:
  - url: http://127.0.0.1:3100/loki/api/v1/push
scrape_configs:
`
	cases := []struct {
		name string
		cfg  string
		at   string // where the error must point: the first occurrence
		want string // a word the message must contain
	}{
		{
			name: "native unknown top-level key",
			cfg: `positons:
  filename: %DIR%/positions.yaml
sources:
  logs:
    type: file
    include: ["%DIR%/*.log"]
` + nativeTail,
			at: "positons:", want: "positons",
		},
		{
			name: "native unknown key in a source",
			cfg: `sources:
  logs:
    type: file
    include: ["%DIR%/*.log"]
    exclud: ["%DIR%/*.gz"]
` + nativeTail,
			at: "exclud:", want: "exclud",
		},
		{
			name: "native wrong type in a sink",
			cfg: `sources:
  logs:
    type: file
    include: ["%DIR%/*.log"]
sinks:
  loki:
    type: loki
    url: http://127.0.0.1:3100/loki/api/v1/push
    batchsize: lots
pipelines:
  main:
    sources: [logs]
    sinks: [loki]
`,
			at: "lots", want: "batchsize",
		},
		{
			name: "native wrong type in positions",
			cfg: `positions:
  filename: %DIR%/positions.yaml
  sync_period: [1s]
sources:
  logs:
    type: file
    include: ["%DIR%/*.log"]
` + nativeTail,
			at: "[1s]", want: "duration",
		},
		{
			name: "native bad glob",
			cfg: `sources:
  logs:
    type: file
    include:
      - "%DIR%/*.log"
      - "%DIR%/[.log"
` + nativeTail,
			at: `"%DIR%/[.log"`, want: "glob",
		},
		{
			name: "native bad URL",
			cfg: `sources:
  logs:
    type: file
    include: ["%DIR%/*.log"]
sinks:
  loki:
    type: loki
    url: "http://[::1/loki/api/v1/push"
pipelines:
  main:
    sources: [logs]
    sinks: [loki]
`,
			at: `"http://[::1/loki/api/v1/push"`, want: "URL",
		},
		{
			name: "native URL without http scheme",
			cfg: `sources:
  logs:
    type: file
    include: ["%DIR%/*.log"]
sinks:
  loki:
    type: loki
    url: ftp://loki.example/push
pipelines:
  main:
    sources: [logs]
    sinks: [loki]
`,
			at: "ftp://loki.example/push", want: "URL",
		},
		{
			name: "promtail bad relabel regex",
			cfg: promtailHead + `  - job_name: app
    static_configs:
      - targets: [localhost]
        labels:
          job: app
          __path__: %DIR%/*.log
    relabel_configs:
      - source_labels: [job]
        regex: "app(["
        target_label: team
`,
			at: `"app(["`, want: "regex",
		},
		{
			name: "promtail docker_sd_configs with oauth2",
			cfg: promtailHead + `  - job_name: docker
    docker_sd_configs:
      - host: tcp://10.0.0.1:2376
        oauth2: {client_id: x}
`,
			at: "oauth2:", want: "oauth2",
		},
		{
			name: "promtail bad glob in __path__",
			cfg: promtailHead + `  - job_name: app
    static_configs:
      - targets: [localhost]
        labels:
          job: app
          __path__: "%DIR%/[.log"
`,
			at: `"%DIR%/[.log"`, want: "glob",
		},
		{
			name: "promtail unknown client key",
			cfg: `positions:
  filename: %DIR%/positions.yaml
clients:
  - url: http://127.0.0.1:3100/loki/api/v1/push
    batch_wait: 1s
scrape_configs:
  - job_name: app
    static_configs:
      - labels:
          __path__: %DIR%/*.log
`,
			at: "batch_wait:", want: "batch_wait",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := strings.ReplaceAll(tc.cfg, "%DIR%", dir)
			line, col := position(t, cfg, strings.ReplaceAll(tc.at, "%DIR%", dir))
			file := writeFile(t, dir, "bad.yaml", cfg)
			wantPos := fmt.Sprintf("%s:%d:%d", file, line, col)
			for _, args := range [][]string{
				{"validate", file},
				{"-check-syntax", "-config.file", file},
			} {
				code, stdout, stderr := runVigil(t, args...)
				if code != 1 {
					t.Errorf("vigil %s: exit code %d, want 1\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
				}
				if !strings.Contains(stderr, wantPos) {
					t.Errorf("vigil %s: error does not point at %s (%q)\nconfig:\n%s\nstderr: %s", strings.Join(args, " "), wantPos, tc.at, numberLines(cfg), stderr)
				}
				if !strings.Contains(stderr, tc.want) {
					t.Errorf("vigil %s: error does not mention %q: %s", strings.Join(args, " "), tc.want, stderr)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "positions.yaml")); err == nil {
				t.Errorf("checking a config wrote a positions file")
			}
		})
	}

	good := []struct{ name, cfg string }{
		{"native", `positions:
  filename: %DIR%/positions.yaml
sources:
  logs:
    type: file
    include: ["%DIR%/*.log"]
    labels: {job: app}
` + nativeTail},
		{"promtail", promtailHead + `  - job_name: app
    static_configs:
      - targets: [localhost]
        labels:
          job: app
          __path__: %DIR%/*.log
    relabel_configs:
      - source_labels: [job]
        regex: "(.*)"
        target_label: team
`},
	}
	for _, tc := range good {
		t.Run("good "+tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := writeFile(t, dir, "good.yaml", strings.ReplaceAll(tc.cfg, "%DIR%", dir))
			for _, args := range [][]string{
				{"validate", file},
				{"-check-syntax", "-config.file", file},
			} {
				if code, stdout, stderr := runVigil(t, args...); code != 0 {
					t.Errorf("vigil %s: exit code %d, want 0\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "positions.yaml")); err == nil {
				t.Errorf("checking a config wrote a positions file")
			}
		})
	}
}

func numberLines(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		fmt.Fprintf(&b, "%3d| %s\n", i+1, l)
	}
	return b.String()
}

// Promtail's dry-run line: timestamp, labels and the line, separated by
// tabs from a tabwriter (which may pad with several tabs, or none when a
// cell fills its tab stop exactly).
var dryRunLine = regexp.MustCompile(`^([0-9]{4}-[0-9]{2}-[0-9]{2}T[^\t{]+)\t*(\{[^}]*\})\t*(.*)$`)

type dryEntry struct {
	time   time.Time
	labels string
	line   string
}

func parseDryRun(t *testing.T, stdout string) []dryEntry {
	t.Helper()
	var out []dryEntry
	for _, l := range strings.Split(stdout, "\n") {
		m := dryRunLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ts, err := time.Parse("2006-01-02T15:04:05.999999999-0700", strings.TrimSpace(m[1]))
		if err != nil {
			t.Errorf("dry-run timestamp %q is not in Promtail's format 2006-01-02T15:04:05.999999999-0700: %v", m[1], err)
		}
		out = append(out, dryEntry{time: ts, labels: m[2], line: m[3]})
	}
	return out
}

// TestDryRun checks that -dry-run prints entries to stdout as Promtail's
// dry run does, reads positions but never writes them, and sends nothing.
func TestDryRun(t *testing.T) {
	needVigil(t)
	dir, glob := logDir(t)
	logFile := filepath.Join(dir, "app.log")
	lines := []string{"first line", "second line with ünïcödé ✓", "third line"}
	appendLines(t, logFile, lines...)
	positions := filepath.Join(t.TempDir(), "positions.yaml")
	// Nothing listens there: a dry run must not try to send.
	dead := "http://" + freeAddr(t) + "/loki/api/v1/push"
	cfg := cfgOpts{Positions: positions, Include: []string{glob}, Labels: map[string]string{"job": "dry"}, URL: dead}.write(t, t.TempDir())
	wantLabels := fmt.Sprintf(`{filename=%q, job="dry"}`, logFile)

	run := func(want []string) {
		t.Helper()
		start := time.Now()
		v := startVigil(t, cfg, "-dry-run")
		var entries []dryEntry
		waitFor(t, deliveryTimeout, func() string {
			return fmt.Sprintf("dry run printed %d entries, want %d; stdout:\n%s", len(entries), len(want), tail(v.stdout.String(), 4<<10))
		}, func() bool {
			entries = parseDryRun(t, v.stdout.String())
			return len(entries) >= len(want)
		})
		// Give a wrongly re-read file the chance to show up twice.
		time.Sleep(time.Second)
		v.signal(syscall.SIGTERM)
		if code := v.wait(exitTimeout); code != 0 {
			t.Errorf("dry run exited with %d after SIGTERM, want 0", code)
		}
		entries = parseDryRun(t, v.stdout.String())
		var got []string
		for _, e := range entries {
			got = append(got, e.line)
			if e.labels != wantLabels {
				t.Errorf("dry-run labels %s, want %s", e.labels, wantLabels)
			}
			if e.time.Before(start.Add(-time.Minute)) || e.time.After(time.Now().Add(time.Minute)) {
				t.Errorf("dry-run timestamp %s is not the read time (started %s)", e.time, start)
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("dry run printed lines %q, want %q; stdout:\n%s", got, want, v.stdout.String())
		}
		for _, l := range want {
			if strings.Contains(v.stderr.String(), l) {
				t.Errorf("entry %q printed to stderr; dry-run entries go to stdout", l)
			}
		}
	}

	t.Run("no positions file", func(t *testing.T) {
		run(lines)
		if _, err := os.Stat(positions); !os.IsNotExist(err) {
			t.Errorf("dry run wrote a positions file (stat: %v)", err)
		}
	})

	t.Run("positions are read, not written", func(t *testing.T) {
		// Promtail's positions format; the offset skips the first line.
		saved := fmt.Sprintf("positions:\n  %s: \"%d\"\n", logFile, len(lines[0])+1)
		if err := os.WriteFile(positions, []byte(saved), 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(positions, old, old); err != nil {
			t.Fatal(err)
		}
		run(lines[1:])
		b, err := os.ReadFile(positions)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, []byte(saved)) {
			t.Errorf("dry run rewrote the positions file:\n%s\nwant:\n%s", b, saved)
		}
		if fi, err := os.Stat(positions); err == nil && !fi.ModTime().Equal(old) {
			t.Errorf("dry run touched the positions file (mtime %s)", fi.ModTime())
		}
	})
}

// vigil healthcheck is the probe for the FROM scratch image: 0 while a
// vigil serves at the address, 1 once it is gone.
func TestHealthcheckCommand(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "host.yaml", "sources:\n  host:\n    type: host\n")
	v := startVigil(t, cfg)
	_, port, _ := net.SplitHostPort(v.addr)
	if code, out, errOut := runVigil(t, "healthcheck", "-web.listen-address", ":"+port); code != 0 || !strings.Contains(out, "healthy") {
		t.Fatalf("healthcheck of a running vigil: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	v.signal(syscall.SIGTERM)
	v.wait(exitTimeout)
	if code, _, errOut := runVigil(t, "healthcheck", "-web.listen-address", v.addr); code != 1 || !strings.Contains(errOut, "connection refused") {
		t.Fatalf("healthcheck of a stopped vigil: exit %d, stderr %q", code, errOut)
	}
}
