package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchenv"
)

// TestMain lets the test binary stand in for the harness binary when the
// harness starts itself as the baseline child.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "-internal-baseline" || os.Args[1] == "-internal-docker-baseline") {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestEndToEnd runs the real vigil binary through small versions of every
// scenario: the harness must see every line arrive exactly once and fill
// in every measurement. The processor scenarios (json, regex) are skipped,
// saying why, while vigil lacks their stages.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs vigil")
	}
	root, err := benchenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "vigil")
	if err := benchenv.BuildVigil(root, bin); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	h := &harness{
		root: root,
		log:  slog.New(slog.NewTextHandler(&logs, nil)),
		o: options{
			config:      filepath.Join(root, "bench/configs/passthrough.yaml"),
			promtail:    filepath.Join(root, "bench/configs/promtail.yaml"),
			jsonConfig:  filepath.Join(root, "bench/configs/json.yaml"),
			regexConfig: filepath.Join(root, "bench/configs/regex.yaml"),
			lines:       20_000,
			many:        20,
			rate:        2000,
			duration:    2 * time.Second,
			repeat:      1,
			vigil:       bin,
			out:         filepath.Join(dir, "out"),
			timeout:     time.Minute,
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

	for _, sc := range []struct{ scenario, tmpl string }{{"json", h.o.jsonConfig}, {"regex", h.o.regexConfig}} {
		t.Run(sc.scenario, func(t *testing.T) {
			if err := h.validateConfig(sc.tmpl, filepath.Join(dir, "validate-"+sc.scenario)); err != nil {
				if strings.Contains(err.Error(), "unknown type") {
					t.Skipf("vigil cannot run %s yet, it lacks a stage: %v", filepath.Base(sc.tmpl), err)
				}
				t.Fatal(err)
			}
			if err := h.throughput(sc.scenario, sc.tmpl, 1); err != nil {
				t.Fatalf("%v\nharness log:\n%s", err, logs.String())
			}
			r := h.tp[len(h.tp)-1]
			if r.Scenario != sc.scenario || r.Received != r.Lines || r.Lines != 20_000 {
				t.Errorf("%s: %d lines received of %d", r.Scenario, r.Received, r.Lines)
			}
			if r.Wall <= 0 || r.PeakRSS <= 0 || r.ExitCPU <= 0 || r.Baseline.Lines != r.Lines {
				t.Errorf("%s: missing measurements: %+v", r.Scenario, r)
			}
			// The labels stage makes one stream per distinct pair of
			// label values in the workload (all from one file).
			if want := workloadStreams(t, sc.scenario, r.Lines); r.Streams != want {
				t.Errorf("%s: %d streams, want %d, one per distinct pair of label values", r.Scenario, r.Streams, want)
			}
			// Only the json scenario's timestamp stage takes each entry's
			// time from the line; the regex scenario keeps the read time,
			// which comes after the write time.
			wantTimed := int64(0)
			if sc.scenario == "json" {
				wantTimed = r.Lines
			}
			if r.LineTimed != wantTimed {
				t.Errorf("%s: %d lines arrived with the write time in the line as their timestamp, want %d", r.Scenario, r.LineTimed, wantTimed)
			}
		})
	}

	md := h.markdown()
	if strings.Contains(md, "failed") || !strings.Contains(md, "| latency |") {
		t.Errorf("report:\n%s", md)
	}
}
