package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestTextfileGolden(t *testing.T) { checkGolden(t, "textfile", "node_textfile_*", "testmetric*") }

// textfileChdir changes to the collector directory of node_exporter's
// layout, where its own textfile tests run, so that file names in the
// output match the .out files.
func textfileChdir(t *testing.T) string {
	t.Helper()
	t.Chdir(filepath.Join(nodeExporterTree(t), "collector"))
	return fixtureDir(t)
}

func textfileTestCollector(t *testing.T, dir string) *textfileCollector {
	t.Helper()
	c := newCollector(t, "textfile", Paths{}, map[string]string{"directory": dir}).(*textfileCollector)
	one := 1.0
	c.mtime = &one
	return c
}

// TestTextfileFixtures runs every case of node_exporter's textfile tests
// (fixtures/textfile/<case>.out) and compares the exposition byte for byte.
func TestTextfileFixtures(t *testing.T) {
	fixtures := textfileChdir(t)
	outs, err := filepath.Glob(filepath.Join(fixtures, "textfile", "*.out"))
	if err != nil || len(outs) == 0 {
		t.Fatalf("no textfile cases: %v", err)
	}
	for _, out := range outs {
		name := strings.TrimSuffix(filepath.Base(out), ".out")
		t.Run(name, func(t *testing.T) {
			dir := "fixtures/textfile/" + name
			if name == "glob_extra_dimension" {
				dir = "fixtures/textfile/*_extra_dimension"
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if got := exposition(t, collect(t, textfileTestCollector(t, dir))); got != string(want) {
				t.Errorf("output differs\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

// TestTextfileSeveralDirectories checks the comma-separated form of the
// repeatable flag and the merge of families across directories.
func TestTextfileSeveralDirectories(t *testing.T) {
	textfileChdir(t)
	got := collect(t, textfileTestCollector(t,
		"fixtures/textfile/metrics_merge_same_help/, fixtures/textfile/two_metric_files"))
	if n := len(got["events_total"].GetMetric()); n != 4 {
		t.Errorf("events_total: %d series, want 4", n)
	}
	if got["testmetric2_2"] == nil {
		t.Errorf("testmetric2_2 missing")
	}
	if v := got["node_textfile_scrape_error"].GetMetric()[0].GetGauge().GetValue(); v != 0 {
		t.Errorf("scrape_error = %v, want 0", v)
	}
	if n := len(got["node_textfile_mtime_seconds"].GetMetric()); n != 4 {
		t.Errorf("mtime series = %d, want 4", n)
	}
}

// TestTextfileConflicts covers what node_exporter's fixtures do not: a
// type conflict between files and help that appears only in a later file.
func TestTextfileConflicts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.prom", "# TYPE x counter\nx{f=\"a\"} 1\ny 1\n")
	write("b.prom", "# TYPE x gauge\nx{f=\"b\"} 2\n# HELP y Late help.\ny{f=\"b\"} 2\n")
	write("c.prom", "not a metric at all {\n")
	got := collect(t, textfileTestCollector(t, dir))
	if x := got["x"]; x.GetType() != dto.MetricType_COUNTER || len(x.GetMetric()) != 1 {
		t.Errorf("x: want only a.prom's counter, got %v", x)
	}
	if y := got["y"]; y.GetHelp() != "Late help." || len(y.GetMetric()) != 2 {
		t.Errorf("y: want both series with the late help, got %v", y)
	}
	if v := got["node_textfile_scrape_error"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("scrape_error = %v, want 1", v)
	}
	if n := len(got["node_textfile_mtime_seconds"].GetMetric()); n != 2 {
		t.Errorf("mtime series = %d, want 2 (c.prom failed)", n)
	}
}

// FuzzTextfile feeds arbitrary file contents through the collector and a
// registry: a bad file must be reported, never crash the scrape.
func FuzzTextfile(f *testing.F) {
	for _, seed := range []string{
		"a 1\n",
		"# HELP a help\n# TYPE a counter\na{b=\"c\"} 1\n",
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
		"# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n",
		"a{__x=\"1\"} 1\n",
		"a{x=\"\xff\"} 1\n",
		"a 1 123\n",
		"# TYPE a gauge\na{x=\"1\"} 1\na{y=\"1\"} 2\na 3\n",
		"a{quantile=\"x\"} NaN\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f.prom"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "g.prom"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		c := newCollector(t, "textfile", Paths{}, map[string]string{"directory": dir})
		// Collect without a registry (whose consistency checks may reject
		// odd but parseable input): every metric must be writable.
		ch := make(chan prometheus.Metric, 64)
		done := make(chan struct{})
		sawError := false
		go func() {
			defer close(done)
			for m := range ch {
				var pb dto.Metric
				if err := m.Write(&pb); err != nil {
					t.Errorf("metric %v: Write: %v", m.Desc(), err)
				}
				if strings.Contains(m.Desc().String(), "node_textfile_scrape_error") {
					sawError = true
				}
			}
		}()
		err := c.Update(ch)
		close(ch)
		<-done
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if !sawError {
			t.Fatal("node_textfile_scrape_error missing")
		}
	})
}
