package main

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the harness binary when the
// harness starts itself as the baseline child.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-internal-baseline" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestEndToEnd runs the real vigil binary through small versions of every
// scenario: the harness must see every line arrive exactly once and fill
// in every measurement.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs vigil")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "vigil")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vigil")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/vigil: %v\n%s", err, out)
	}
	var logs bytes.Buffer
	h := &harness{
		root: root,
		log:  slog.New(slog.NewTextHandler(&logs, nil)),
		o: options{
			config:   filepath.Join(root, "bench/configs/passthrough.yaml"),
			promtail: filepath.Join(root, "bench/configs/promtail.yaml"),
			lines:    20_000,
			many:     20,
			rate:     2000,
			duration: 2 * time.Second,
			repeat:   1,
			vigil:    bin,
			out:      filepath.Join(dir, "out"),
			timeout:  time.Minute,
		},
	}
	steps := []func() error{
		func() error { return h.throughput("passthrough", h.o.config, 1) },
		func() error { return h.throughput("promtail", h.o.promtail, 1) },
		func() error { return h.throughput("manyfiles", h.o.config, h.o.many) },
		h.latency,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("%v\nharness log:\n%s", err, logs.String())
		}
	}
	if len(h.tp) != 3 || len(h.lat) != 1 {
		t.Fatalf("got %d throughput and %d latency results, want 3 and 1", len(h.tp), len(h.lat))
	}
	for _, r := range h.tp {
		if r.Received != r.Lines || r.Lines != 20_000 {
			t.Errorf("%s/%d files: %d lines received of %d", r.Scenario, r.Files, r.Received, r.Lines)
		}
		if r.Wall <= 0 || r.PeakRSS <= 0 || r.ExitCPU <= 0 || r.Baseline.Lines != r.Lines || r.Baseline.Wall <= 0 {
			t.Errorf("%s/%d files: missing measurements: %+v", r.Scenario, r.Files, r)
		}
		if wantStreams := int64(r.Files); r.Streams != wantStreams {
			// One stream per file: the file source labels entries with
			// their filename, as Promtail does.
			t.Errorf("%s/%d files: %d streams, want %d", r.Scenario, r.Files, r.Streams, wantStreams)
		}
	}
	l := h.lat[0]
	if l.Written != 4000 || l.Received != l.Written {
		t.Errorf("latency: wrote %d, received %d; want 4000 both", l.Written, l.Received)
	}
	if l.Latency.Count != uint64(l.Written) || l.Latency.P50Ms <= 0 || l.Latency.P99Ms < l.Latency.P50Ms {
		t.Errorf("latency stats implausible: %+v", l.Latency)
	}
	md := h.markdown()
	if strings.Contains(md, "failed") || !strings.Contains(md, "| latency |") {
		t.Errorf("report:\n%s", md)
	}
}
