package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigErrorsCarryPositions(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"unknown top-level key", "sourcez: {}\n", `test.yaml:1:1: unknown key "sourcez" (did you mean "sources"?)`},
		{"wrong type", "positions:\n  sync_period: soon\n", `test.yaml:2:16: invalid duration "soon" in positions.sync_period`},
		{"wrong scalar type", "server:\n  http_listen_port: [1]\n", `test.yaml:2:21: expected a single integer value in server.http_listen_port`},
		{"bad int", "server:\n  http_listen_port: eighty\n", `test.yaml:2:21: invalid integer value "eighty" in server.http_listen_port`},
		{"duplicate key", "server:\n  log_level: info\n  log_level: debug\n", `test.yaml:3:3: duplicate key "log_level" in server`},
		{"component without type", "sources:\n  a: {option: x}\n", `test.yaml:2:3: component "a" has no type`},
		{"unknown source ref", "sources: {src: {type: test_chan}}\nsinks: {snk: {type: test_hold}}\npipelines:\n  p: {sources: [srx], sinks: [snk]}\n",
			`test.yaml:4:17: pipeline "p" uses unknown source "srx" (did you mean "src"?)`},
		{"unused sink", "sources: {src: {type: test_chan}}\nsinks: {snk: {type: test_hold}, other: {type: test_hold}}\npipelines:\n  p: {sources: [src], sinks: [snk]}\n",
			`test.yaml:2:33: sink "other" is not used by any pipeline`},
		{"bad size", "buffer: {max_bytes: 12 parsecs}\n", `test.yaml:1:21: invalid size unit "parsecs"`},
		{"bad yaml", "sources: [\n", `test.yaml:1:1: invalid YAML`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load("test.yaml", []byte(c.src), LoadOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got error %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

func TestComponentErrorsCarryPositions(t *testing.T) {
	cfg := mustLoad(t, `
sources: {src: {type: test_chan, optoin: x}}
sinks: {snk: {type: test_hold}}
pipelines:
  p: {sources: [src], sinks: [snk]}
`)
	_, err := Build(cfg, quiet, NewTestMetrics())
	if err == nil || !strings.Contains(err.Error(), `test.yaml:1:34: unknown key "optoin" (did you mean "option"?)`) {
		t.Fatalf("got %v", err)
	}
	cfg = mustLoad(t, `
sources: {src: {type: test_chann}}
sinks: {snk: {type: test_hold}}
pipelines:
  p: {sources: [src], sinks: [snk]}
`)
	_, err = Build(cfg, quiet, NewTestMetrics())
	if err == nil || !strings.Contains(err.Error(), `test.yaml:1:23: source "src": unknown type "test_chann" (did you mean "test_chan"?)`) {
		t.Fatalf("got %v", err)
	}
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("VIGIL_T_SET", "value")
	t.Setenv("VIGIL_T_EMPTY", "")
	cases := map[string]string{
		"${VIGIL_T_SET}":             "value",
		"${VIGIL_T_UNSET}":           "",
		"${VIGIL_T_UNSET:-def}":      "def",
		"${VIGIL_T_EMPTY:-def}":      "def",
		"${VIGIL_T_EMPTY-def}":       "",
		"${VIGIL_T_UNSET-def}":       "def",
		"${VIGIL_T_SET:-def}":        "value",
		"$${VIGIL_T_SET}":            "${VIGIL_T_SET}",
		"replacement: $1 and $HOME":  "replacement: $1 and $HOME",
		"a ${VIGIL_T_SET} b ${X:-c}": "a value b c",
	}
	for in, want := range cases {
		if got := string(ExpandEnv([]byte(in))); got != want {
			t.Errorf("ExpandEnv(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPositionsPromtailFormatAndAtomicSave(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "positions.yaml")
	// A file as Promtail writes it.
	promtail := "positions:\n  /var/log/syslog: \"1234\"\n  cursor-0123abcd: \"2026-01-02T03:04:05.123456789Z\"\n"
	if err := os.WriteFile(file, []byte(promtail), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := OpenPositions(file, false)
	if err != nil {
		t.Fatal(err)
	}
	if off, ok := p.GetOffset("/var/log/syslog"); !ok || off != 1234 {
		t.Fatalf("offset %d %v", off, ok)
	}
	if v, _ := p.Get("cursor-0123abcd"); v != "2026-01-02T03:04:05.123456789Z" {
		t.Fatalf("cursor %q", v)
	}
	p.PutOffset("/var/log/new.log", 7)
	p.Remove("/var/log/syslog")
	if err := p.Save(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	q, err := OpenPositions(file, false)
	if err != nil {
		t.Fatal(err)
	}
	if keys := strings.Join(q.Keys(), ","); keys != "/var/log/new.log,cursor-0123abcd" {
		t.Fatalf("keys after reload: %s", keys)
	}
	if err := os.WriteFile(file, []byte("positions: [broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPositions(file, false); err == nil || !strings.Contains(err.Error(), "ignore_invalid_yaml") {
		t.Fatalf("corrupt positions: got %v", err)
	}
	if q, err := OpenPositions(file, true); err != nil || len(q.Keys()) != 0 {
		t.Fatalf("ignore_invalid_yaml: %v %v", q, err)
	}
	ro, _ := OpenPositions(filepath.Join(dir, "ro.yaml"), false)
	ro.SetReadOnly()
	ro.PutOffset("x", 1)
	if err := ro.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ro.yaml")); !os.IsNotExist(err) {
		t.Fatal("read-only positions were written")
	}
}

func TestByteSizeAndDurations(t *testing.T) {
	cfg := mustLoad(t, "buffer: {max_bytes: 2MiB}\npositions: {sync_period: 1d}\nserver: {graceful_shutdown_timeout: 90s}\n")
	if cfg.Buffer.MaxBytes != 2<<20 {
		t.Fatalf("max_bytes %d", cfg.Buffer.MaxBytes)
	}
	if cfg.Positions.SyncPeriod != 24*time.Hour {
		t.Fatalf("sync_period %v", cfg.Positions.SyncPeriod)
	}
	if cfg.Server.GracefulShutdownTimeout != 90*time.Second {
		t.Fatalf("graceful_shutdown_timeout %v", cfg.Server.GracefulShutdownTimeout)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	cfg := mustLoad(t, `
sources: {src: {type: test_chan, option: x}}
sinks: {snk: {type: test_hold}}
pipelines:
  p: {sources: [src], sinks: [snk]}
`)
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Load("again.yaml", out, LoadOptions{})
	if err != nil {
		t.Fatalf("rendered config does not load: %v\n%s", err, out)
	}
	if c, _ := again.Sources.Get("src"); c.Type != "test_chan" {
		t.Fatalf("source lost in round trip:\n%s", out)
	}
}
