package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchenv"
)

func TestCollectorsAndSeries(t *testing.T) {
	body := []byte(`# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{collector="stat"} 1
node_scrape_collector_success{collector="cpu"} 1
node_scrape_collector_success{collector="zfs"} 0
node_load1 0.5
`)
	if got, want := collectors(body), []string{"cpu", "stat", "zfs"}; !slices.Equal(got, want) {
		t.Errorf("collectors = %v, want %v", got, want)
	}
	if got := countSeries(body); got != 4 {
		t.Errorf("countSeries = %d, want 4", got)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		v    []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.v); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.v, got, c.want)
		}
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := quantile(d, c.q); got != c.want {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
}

// TestStandin runs the benchmark in miniature with node_exporter on both
// sides: every number must be filled in.
func TestStandin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node_exporter")
	}
	if _, err := exec.LookPath("prometheus-node-exporter"); err != nil {
		if _, err := exec.LookPath("node_exporter"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("no node_exporter in PATH (Debian's prometheus-node-exporter)")
			}
			t.Skip("no node_exporter in PATH (Debian's prometheus-node-exporter)")
		}
	}
	var out, errb bytes.Buffer
	dir := t.TempDir()
	code := run([]string{"-standin", "-scrapes", "10", "-warmup", "1", "-repeat", "2", "-collectors", "both", "-out", filepath.Join(dir, "out")}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	report := out.String()
	for _, want := range []string{"- command: `go run ./bench/cmd/hostbench -standin", "| common | node_exporter |", "| common | vigil (node_exporter stand-in) |", "| defaults | node_exporter |", "common collectors: vigil", "medians of 2 runs", "in 2 run(s)", "the runs' ratios", "of 2 runs;"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	for _, line := range strings.Split(report, "\n") {
		if strings.HasPrefix(line, "| common |") || strings.HasPrefix(line, "| defaults |") {
			f := strings.Split(line, "|")
			// series, p50 and peak RSS must be set.
			if strings.TrimSpace(f[5]) == "0" || strings.TrimSpace(f[9]) == "0.00" || strings.TrimSpace(f[12]) == "0.0" {
				t.Errorf("row with an unset measurement: %s", line)
			}
		}
	}
}

// TestVigil runs the benchmark in miniature against a freshly built vigil.
// It skips (fails under CI=true) while vigil has no host source.
func TestVigil(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs vigil")
	}
	ne := ""
	for _, n := range []string{"prometheus-node-exporter", "node_exporter"} {
		if p, err := exec.LookPath(n); err == nil {
			ne = p
			break
		}
	}
	skip := t.Skip
	if os.Getenv("CI") == "true" {
		skip = t.Fatal
	}
	if ne == "" {
		skip("no node_exporter in PATH (Debian's prometheus-node-exporter)")
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
	cfg := filepath.Join(dir, "host.yaml")
	if err := os.WriteFile(cfg, []byte("sources:\n  host:\n    type: host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "validate", cfg).CombinedOutput(); err != nil {
		skip("vigil has no host source yet: vigil validate: " + strings.TrimSpace(string(out)))
	}
	var out, errb bytes.Buffer
	code := run([]string{"-vigil", bin, "-build=false", "-node-exporter", ne, "-scrapes", "10", "-warmup", "1", "-out", filepath.Join(dir, "out")}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"| common | node_exporter |", "| common | vigil |", "common collectors: vigil"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
