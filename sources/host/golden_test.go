package host

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fixtureDir is node_exporter's fixture tree, relative to this package:
// shared/ sits beside the repository (in CI and in the main checkout), or
// one level further up for a worktree under wt/.
var fixtureDir = func() string {
	for _, d := range []string{"../../../shared/fixtures/node_exporter", "../../../../shared/fixtures/node_exporter"} {
		if _, err := os.Stat(d); err == nil {
			return d
		}
	}
	return "../../../shared/fixtures/node_exporter"
}()

// fixtureOptions are the collector flags node_exporter's end-to-end test
// passes (end-to-end-test.sh), by full option name. Options of collectors
// vigil does not have are ignored.
var fixtureOptions = map[string]string{
	"arp.device-exclude":            "nope",
	"arp.netlink":                   "false",
	"bcache.priorityStats":          "true",
	"cpu.info":                      "true",
	"cpu.info.bugs-include":         `^(cpu_meltdown|spectre_.*|mds)$`,
	"cpu.info.flags-include":        `^(aes|avx.?|constant_tsc)$`,
	"hwmon.chip-include":            `(applesmc|asus_nb_wmi|coretemp|hwmon4|ieee80211|nct6779)`,
	"netclass.ignore-invalid-speed": "true",
	"netclass.ignored-devices":      `(dmz|int)`,
	"netdev.device-include":         "lo",
	"qdisc.device-include":          `(wlan0|eth0)`,
	"stat.softirq":                  "true",
	"sysctl.include-info":           "kernel.seccomp.actions_avail",
	"textfile.directory":            fixtureDir + "/textfile/two_metric_files/",
}

// goldenSkip matches the series node_exporter's end-to-end test leaves out
// of its comparison (they vary from run to run).
var goldenSkip = regexp.MustCompile(`^(go_|node_exporter_build_info|node_scrape_collector_duration_seconds|process_|node_textfile_mtime_seconds|node_time_(zone|seconds)|node_network_(receive|transmit)_(bytes|packets)_total)`)

// fixturePaths points the collectors at the fixture trees, or skips the
// test when they are missing (it fails in CI, where they must be there).
func fixturePaths(t testing.TB) Paths {
	t.Helper()
	if _, err := os.Stat(filepath.Join(fixtureDir, "e2e-output.txt")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node_exporter fixtures missing: %v", err)
		}
		t.Skipf("node_exporter fixtures missing (%v); they live in ../shared/fixtures", err)
	}
	return Paths{
		Proc:     filepath.Join(fixtureDir, "proc"),
		Sys:      filepath.Join(fixtureDir, "sys"),
		Root:     fixtureDir,
		UdevData: filepath.Join(fixtureDir, "udev", "data"),
	}
}

// fixtureConfig is the host source's config for one collector pointed at
// the fixtures with the end-to-end test's options.
func fixtureConfig(t testing.TB, collectors ...string) Config {
	p := fixturePaths(t)
	cfg := Config{Procfs: p.Proc, Sysfs: p.Sys, Rootfs: p.Root, UdevData: p.UdevData,
		DisableDefaults: true, Options: Options{}, CollectorTimeout: time.Minute}
	for _, c := range collectors {
		cfg.Enable = append(cfg.Enable, Name(c))
	}
	for k, v := range fixtureOptions {
		if _, ok := lookupOption(k); ok {
			cfg.Options[k] = v
		}
	}
	return cfg
}

var e2e struct {
	once sync.Once
	fams map[string]*dto.MetricFamily
	err  error
}

// e2eFamilies parses e2e-output.txt once.
func e2eFamilies(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	fixturePaths(t)
	e2e.once.Do(func() {
		f, err := os.Open(filepath.Join(fixtureDir, "e2e-output.txt"))
		if err != nil {
			e2e.err = err
			return
		}
		defer f.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		e2e.fams, e2e.err = p.TextToMetricFamilies(f)
	})
	if e2e.err != nil {
		t.Fatalf("parsing e2e-output.txt: %v", e2e.err)
	}
	return e2e.fams
}

// scrapeText runs c's Collect through a registry, renders the text
// exposition and parses it back, so values go through the same formatting
// as node_exporter's output.
func scrapeText(t testing.TB, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	out, err := p.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("parsing our own exposition: %v\n%s", err, buf.String())
	}
	return out
}

// checkGolden builds collector with the fixture paths and options, scrapes
// it, and compares the named families (or every family it produces when
// none are named) with e2e-output.txt: HELP, TYPE, label sets and values.
// It also checks node_scrape_collector_success for the collector.
func checkGolden(t *testing.T, collector string, families ...string) {
	t.Helper()
	checkGoldenWith(t, fixtureConfig(t, collector), collector, families...)
}

// checkGoldenWith is checkGolden with a config of the caller's, for a
// collector whose input the fixture tree lacks.
func checkGoldenWith(t *testing.T, cfg Config, collector string, families ...string) {
	t.Helper()
	want := e2eFamilies(t)
	src, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("building %s: %v", collector, err)
	}
	got := scrapeText(t, src)

	if ws, ok := want["node_scrape_collector_success"]; ok {
		if w, ok := sampleOf(ws, "collector", collector); ok {
			g, _ := sampleOf(got["node_scrape_collector_success"], "collector", collector)
			if g != w {
				t.Errorf("node_scrape_collector_success{collector=%q} = %v, want %v", collector, g, w)
			}
		}
	}

	names := families
	if len(names) == 0 {
		for name := range got {
			if !strings.HasPrefix(name, "node_scrape_collector_") && !goldenSkip.MatchString(name) {
				names = append(names, name)
			}
		}
		if len(names) == 0 {
			t.Fatalf("collector %s produced no metrics", collector)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: not in e2e-output.txt", name)
			continue
		}
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: not produced by collector %s", name, collector)
			continue
		}
		if g.GetHelp() != w.GetHelp() {
			t.Errorf("%s: HELP %q, want %q", name, g.GetHelp(), w.GetHelp())
		}
		if g.GetType() != w.GetType() {
			t.Errorf("%s: TYPE %v, want %v", name, g.GetType(), w.GetType())
		}
		gs, ws := samples(g), samples(w)
		var diffs []string
		for k, wv := range ws {
			gv, ok := gs[k]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("missing %s%s %s", name, k, wv))
			case gv != wv:
				diffs = append(diffs, fmt.Sprintf("%s%s = %s, want %s", name, k, gv, wv))
			}
		}
		for k, gv := range gs {
			if _, ok := ws[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("unexpected %s%s %s", name, k, gv))
			}
		}
		sort.Strings(diffs)
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
		}
		for _, d := range diffs {
			t.Error(d)
		}
	}
}

// samples maps each series' label set to its value, both as text.
func samples(mf *dto.MetricFamily) map[string]string {
	out := map[string]string{}
	for _, m := range mf.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		sort.Strings(labels)
		out["{"+strings.Join(labels, ",")+"}"] = fmt.Sprint(metricValue(m))
	}
	return out
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

func sampleOf(mf *dto.MetricFamily, label, value string) (float64, bool) {
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return metricValue(m), true
			}
		}
	}
	return 0, false
}
