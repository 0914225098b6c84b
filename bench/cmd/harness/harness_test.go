package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/bench/internal/rawread"
	"github.com/vigilhq/vigil/pipeline"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want time.Duration
		ok   bool
	}{
		{"plain", "1234 (vigil) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 8 0 100 0 0", 2870 * time.Millisecond, true},
		{"parens and spaces in name", "99 (a) b (c) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0", 100 * time.Millisecond, true},
		{"truncated", "1 (x) S 1 2 3", 0, false},
		{"no name", "1 x S", 0, false},
		{"not numbers", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a b 0 0", 0, false},
	}
	for _, tt := range tests {
		got, err := parseStatCPU([]byte(tt.stat))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v, ok=%v", tt.name, got, err, tt.want, tt.ok)
		}
	}
}

func TestStatusKB(t *testing.T) {
	status := []byte("Name:\tvigil\nVmPeak:\t  800000 kB\nVmHWM:\t   31744 kB\nVmRSS:\t   30000 kB\n")
	if v, err := statusKB(status, "VmHWM:"); err != nil || v != 31744<<10 {
		t.Errorf("VmHWM = %d, %v; want %d", v, err, 31744<<10)
	}
	if _, err := statusKB(status, "VmSwap:"); err == nil {
		t.Error("missing key gave no error")
	}
	if _, err := statusKB([]byte("VmHWM: 12 MB\n"), "VmHWM:"); err == nil {
		t.Error("unexpected unit gave no error")
	}
}

func TestReadProcSelf(t *testing.T) {
	// Burn enough CPU to cross several 10 ms ticks.
	deadline := time.Now().Add(200 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU <= 0 || s.PeakRSS <= 0 || s.RSS <= 0 || s.PeakRSS < s.RSS {
		t.Errorf("implausible sample %+v after %d spins", s, x)
	}
}

// TestConfigTemplates renders both shipped templates and loads them with
// vigil's own config loader, so a template that vigil would reject fails
// here rather than in the middle of a benchmark.
func TestConfigTemplates(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	d := templateData{LogGlob: "/tmp/bench/logs/*.log", LogDir: "/tmp/bench/logs", PositionsFile: "/tmp/bench/positions.yaml", PushURL: "http://127.0.0.1:40000/loki/api/v1/push"}
	for _, tt := range []struct{ file, format string }{
		{"passthrough.yaml", "native"},
		{"promtail.yaml", "promtail"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "vigil.yaml")
			if err := renderConfig(filepath.Join(root, "bench", "configs", tt.file), out, d); err != nil {
				t.Fatal(err)
			}
			cfg, err := pipeline.LoadFile(out, pipeline.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Format != tt.format {
				t.Errorf("format %q, want %q", cfg.Format, tt.format)
			}
			if len(cfg.Sources) != 1 || len(cfg.Sinks) != 1 || len(cfg.Processors) != 0 || len(cfg.Pipelines) != 1 {
				t.Errorf("want one source, one sink, no processors, one pipeline; got %d, %d, %d, %d",
					len(cfg.Sources), len(cfg.Sinks), len(cfg.Processors), len(cfg.Pipelines))
			}
			if cfg.Positions.Filename != d.PositionsFile {
				t.Errorf("positions file %q, want %q", cfg.Positions.Filename, d.PositionsFile)
			}
			y, err := cfg.YAML()
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{d.LogGlob, d.PushURL, "job: bench"} {
				if !bytes.Contains(y, []byte(want)) {
					t.Errorf("effective config lacks %q:\n%s", want, y)
				}
			}
		})
	}
}

func TestRenderConfigMissingKey(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(tmpl, []byte("url: {{.NoSuchField}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := renderConfig(tmpl, filepath.Join(dir, "out.yaml"), templateData{}); err == nil {
		t.Error("a template with an unknown placeholder rendered without error")
	}
}

func TestBaselineChild(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	if err := os.WriteFile(p, []byte("one\ntwo\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := baselineChild([]string{p}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var res rawread.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Lines != 3 || res.Bytes != 14 {
		t.Errorf("baseline counted %+v, want 3 lines, 14 bytes", res)
	}
	if code := baselineChild([]string{p + ".missing"}, &out, &errOut); code == 0 {
		t.Error("missing file: exit 0")
	}
}

func TestMarkdownAndVerdicts(t *testing.T) {
	h := &harness{args: []string{"-scenario", "all", "-note", "two words"}}
	h.tp = []throughputResult{
		{Scenario: "manyfiles", Config: "passthrough.yaml", Files: 1, Lines: 2_000_000, Received: 2_000_000, Wall: 2 * time.Second, CPU: time.Second, PeakRSS: 30 << 20,
			Baseline: baselineResult{Lines: 2_000_000, Wall: 100 * time.Millisecond, CPU: 50 * time.Millisecond}},
		{Scenario: "manyfiles", Config: "passthrough.yaml", Files: 1000, Lines: 2_000_000, Received: 2_000_001, Wall: 3 * time.Second, CPU: 1500 * time.Millisecond, PeakRSS: 50 << 20,
			Baseline: baselineResult{Lines: 2_000_000, Wall: 200 * time.Millisecond, CPU: 100 * time.Millisecond}},
	}
	h.lat = []latencyResult{{Config: "passthrough.yaml", Rate: 10000, Duration: 30 * time.Second, Written: 300000, Received: 300000, Elapsed: 31 * time.Second, CPU: 3100 * time.Millisecond}}
	h.lat[0].Latency.P50Ms, h.lat[0].Latency.P99Ms = 600, 1300
	md := h.markdown()
	for _, want := range []string{
		"| manyfiles | passthrough.yaml | 1 | 2000000 | 2.00 | 1.00M | 1.00 | 2.00M | 0.500 | 30.0 | 20.00M | 40.00M | 0.0500 |",
		"2000000 (received 2000001)",
		"| latency | passthrough.yaml | 10000 | 30 | 300000 | 300000 | 600.0 | 1300.0 |",
		"manyfiles, 1 file(s): 2.00M lines per CPU-second (target ≥ 1.50M): met; peak RSS 30.0 MB (target ≤ 40 MB): met",
		"manyfiles, 1000 file(s): 1.33M lines per CPU-second (target ≥ 1.50M): **missed**; peak RSS 50.0 MB (target ≤ 40 MB): **missed**",
		"CPU per line (median of 1 and 1 runs), 1 file vs 1000 files: 0.500 vs 0.750 µs (×1.50; target: not growing, ≤ ×1.10): **missed**",
		"p99 1300.0 ms (target ≤ batchwait 1000 ms + 250 ms = 1250 ms): **missed**; received 300000 of 300000: met",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if got, want := h.commandLine(), `go run ./bench/cmd/harness -scenario all -note "two words"`; got != want {
		t.Errorf("command line %q, want %q", got, want)
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestBufferBytesPlaceholder(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		bytes int64
		want  pipeline.ByteSize
	}{{0, pipeline.DefaultBufferBytes}, {2 << 20, 2 << 20}} {
		out := filepath.Join(t.TempDir(), "vigil.yaml")
		d := templateData{LogGlob: "/tmp/x.log", PositionsFile: "/tmp/p.yaml", PushURL: "http://127.0.0.1:1/loki/api/v1/push", BufferBytes: tt.bytes}
		if err := renderConfig(filepath.Join(root, "bench", "configs", "passthrough.yaml"), out, d); err != nil {
			t.Fatal(err)
		}
		cfg, err := pipeline.LoadFile(out, pipeline.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Buffer.MaxBytes != tt.want {
			t.Errorf("BufferBytes %d: max_bytes %d, want %d", tt.bytes, cfg.Buffer.MaxBytes, tt.want)
		}
	}
}

func TestEnvironment(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "vigil")
	if err := os.WriteFile(bin, []byte("abc"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := &harness{root: root, o: options{vigil: bin}}
	env := h.environment()
	// sha256("abc") starts with ba7816bf8f01.
	for _, want := range []string{"- machine: nproc ", "- go: go1.", "binary vigil sha256 ba7816bf8f01"} {
		if !strings.Contains(env, want) {
			t.Errorf("environment lacks %q:\n%s", want, env)
		}
	}
}
