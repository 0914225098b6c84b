package host

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// This file is helper h2's copy of the golden comparison (the lead merges it
// with checkGolden): a collector pointed at node_exporter's fixture trees, with
// the flags of node_exporter's end-to-end test, must print what
// e2e-output.txt holds for its families.

// h2FixtureDir is where the fixtures are, relative to the package: the repo
// is /work/main (three levels up reaches /work) or a worktree /work/wt/hN
// (four levels up).
func h2FixtureDir() string {
	for _, d := range []string{"../../../shared/fixtures/node_exporter", "../../../../shared/fixtures/node_exporter"} {
		if _, err := os.Stat(filepath.Join(d, "e2e-output.txt")); err == nil {
			return d
		}
	}
	return "../../../shared/fixtures/node_exporter"
}

// h2E2EExcluded are the series node_exporter's own end-to-end test leaves out.
var h2E2EExcluded = regexp.MustCompile(`^(go_|node_exporter_build_info|node_scrape_collector_duration_seconds|process_|node_textfile_mtime_seconds|node_time_(zone|seconds)|node_network_(receive|transmit)_(bytes|packets)_total)`)

// h2FixtureOptions are the flags of the end-to-end run that change output,
// without the "collector." prefix.
func h2FixtureOptions(dir string) map[string]string {
	return map[string]string{
		"arp.device-exclude":            "nope",
		"bcache.priorityStats":          "true",
		"hwmon.chip-include":            "(applesmc|asus_nb_wmi|coretemp|hwmon4|ieee80211|nct6779)",
		"netclass.ignore-invalid-speed": "true",
		"netclass.ignored-devices":      "(dmz|int)",
		"netdev.device-include":         "lo",
		"stat.softirq":                  "true",
		"textfile.directory":            filepath.Join(dir, "textfile/two_metric_files") + "/",
	}
}

// h2Fixtures returns the fixture directory, skipping the test when it is
// missing (failing under CI).
func h2Fixtures(t testing.TB) string {
	t.Helper()
	dir := h2FixtureDir()
	if _, err := os.Stat(filepath.Join(dir, "e2e-output.txt")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node_exporter fixtures missing: %v", err)
		}
		t.Skipf("node_exporter fixtures missing (%v); skipping", err)
	}
	return dir
}

func h2FixturePaths(dir string) Paths {
	return Paths{
		Proc:     filepath.Join(dir, "proc"),
		Sys:      filepath.Join(dir, "sys"),
		Root:     dir,
		UdevData: filepath.Join(dir, "udev/data"),
	}
}

// h2NewCollector builds collector name with its defaults, then the
// fixture flags when fixtureOpts is set, then overrides.
func h2NewCollector(t testing.TB, name string, paths Paths, fixtureOpts bool, overrides map[string]string) Collector {
	t.Helper()
	var spec *Spec
	for _, s := range Specs() {
		if s.Name == name {
			spec = &s
			break
		}
	}
	if spec == nil {
		t.Fatalf("collector %q not registered", name)
	}
	opts := map[string]string{}
	for _, o := range spec.Options {
		opts[name+"."+o.Name] = o.Default
	}
	if fixtureOpts {
		for k, v := range h2FixtureOptions(h2FixtureDir()) {
			if _, ok := opts[k]; ok {
				opts[k] = v
			} else if strings.HasPrefix(k, name+".") {
				t.Fatalf("fixture option %s is not declared by collector %s", k, name)
			}
		}
	}
	for k, v := range overrides {
		if _, ok := opts[name+"."+k]; !ok {
			t.Fatalf("option %s.%s is not declared", name, k)
		}
		opts[name+"."+k] = v
	}
	env := &Env{Paths: paths, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), name: name, options: opts}
	c, err := spec.New(env)
	if err != nil {
		t.Fatalf("new %s: %v", name, err)
	}
	return c
}

// h2Adapter makes a Collector a prometheus.Collector; it describes nothing,
// which makes it an unchecked collector.
type h2Adapter struct {
	c   Collector
	err error
}

func (a *h2Adapter) Describe(chan<- *prometheus.Desc) {}
func (a *h2Adapter) Collect(ch chan<- prometheus.Metric) {
	a.err = a.c.Update(ch)
}

// h2Gather runs one Update through a registry, which checks consistency.
func h2Gather(t testing.TB, c Collector) map[string]*dto.MetricFamily {
	t.Helper()
	a := &h2Adapter{c: c}
	reg := prometheus.NewRegistry()
	reg.MustRegister(a)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	if a.err != nil {
		t.Fatalf("update: %v", a.err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func h2LoadE2E(t testing.TB, dir string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "e2e-output.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("parse e2e-output.txt: %v", err)
	}
	// The parser drops families whose series were all cut out by
	// node_exporter's exclusions; keep their HELP and TYPE.
	b, err := os.ReadFile(filepath.Join(dir, "e2e-output.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) < 4 || f[0] != "#" || (f[1] != "HELP" && f[1] != "TYPE") || mfs[f[2]] != nil && len(mfs[f[2]].Metric) > 0 {
			continue
		}
		mf := mfs[f[2]]
		if mf == nil {
			mf = &dto.MetricFamily{Name: proto.String(f[2])}
			mfs[f[2]] = mf
		}
		if f[1] == "HELP" {
			mf.Help = proto.String(f[3])
		} else {
			mf.Type = dto.MetricType(dto.MetricType_value[strings.ToUpper(f[3])]).Enum()
		}
	}
	return mfs
}

// h2Series renders a family's series as sorted "{labels} value" lines.
func h2Series(mf *dto.MetricFamily) []string {
	var out []string
	for _, m := range mf.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		sort.Strings(labels)
		var v float64
		switch {
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Untyped != nil:
			v = m.GetUntyped().GetValue()
		default:
			v = math.NaN()
		}
		out = append(out, fmt.Sprintf("{%s} %v", strings.Join(labels, ","), v))
	}
	sort.Strings(out)
	return out
}

// h2Selected reports whether a family name is one of families: an exact
// name, or a prefix when the entry ends in "*".
func h2Selected(name string, families []string) bool {
	for _, f := range families {
		if p, ok := strings.CutSuffix(f, "*"); ok {
			if strings.HasPrefix(name, p) {
				return true
			}
		} else if name == f {
			return true
		}
	}
	return false
}

// checkGoldenH2 compares collector's output on the fixture trees, with the
// fixture flags, with the families of e2e-output.txt it produces.
func checkGoldenH2(t *testing.T, collector string, families ...string) {
	t.Helper()
	dir := h2Fixtures(t)
	c := h2NewCollector(t, collector, h2FixturePaths(dir), true, nil)
	h2Compare(t, h2LoadE2E(t, dir), h2Gather(t, c), nil, families...)
}

// h2Compare checks that got and want hold the same selected families (less
// those in skip), with the same HELP, TYPE, label sets and values, leaving out
// node_exporter's excluded series.
func h2Compare(t *testing.T, want, got map[string]*dto.MetricFamily, skip []string, families ...string) {
	t.Helper()
	names := map[string]bool{}
	for n := range want {
		if h2Selected(n, families) && !h2Selected(n, skip) {
			names[n] = true
		}
	}
	for n := range got {
		if !h2Selected(n, families) {
			t.Errorf("family %s produced but not selected for comparison", n)
			continue
		}
		names[n] = true
	}
	if len(names) == 0 {
		t.Fatalf("no family selected by %v", families)
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		w, g := want[n], got[n]
		switch {
		case w == nil:
			t.Errorf("%s: produced, not in e2e-output.txt", n)
			continue
		case g == nil:
			t.Errorf("%s: in e2e-output.txt, not produced", n)
			continue
		}
		if w.GetHelp() != g.GetHelp() {
			t.Errorf("%s: HELP %q, want %q", n, g.GetHelp(), w.GetHelp())
		}
		if w.GetType() != g.GetType() {
			t.Errorf("%s: TYPE %v, want %v", n, g.GetType(), w.GetType())
		}
		if h2E2EExcluded.MatchString(n) {
			continue
		}
		ws, gs := h2Series(w), h2Series(g)
		if strings.Join(ws, "\n") != strings.Join(gs, "\n") {
			t.Errorf("%s: series differ\n got:\n  %s\nwant:\n  %s", n, strings.Join(gs, "\n  "), strings.Join(ws, "\n  "))
		}
	}
}

// h2RepairedSys returns a sysfs root that mirrors the fixture's, through
// symlinks, except that under sub (e.g. "class/net") the entries the fixture
// unpacked as regular files holding a relative link target ("../../devices/...")
// become the symlinks they stand for. The shared fixture holds 92 such files
// where node_exporter's sys.ttar has symlinks; it must not be edited in place.
func h2RepairedSys(t testing.TB, sys, sub string) string {
	t.Helper()
	sys, err := filepath.Abs(sys)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	src, dst := sys, root
	parts := strings.Split(sub, "/")
	for depth, part := range parts {
		entries, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		last := depth == len(parts)-1
		for _, e := range entries {
			from := filepath.Join(src, e.Name())
			if e.Name() == part && !last {
				continue
			}
			if last && e.Name() == part {
				// handled below
				continue
			}
			if err := os.Symlink(from, filepath.Join(dst, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		src, dst = filepath.Join(src, part), filepath.Join(dst, part)
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		from := filepath.Join(src, e.Name())
		if e.Type().IsRegular() {
			b, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(src, strings.TrimSpace(string(b)))
			if _, err := os.Stat(target); err == nil && strings.HasPrefix(string(b), "../") {
				from = target
			} else {
				// A real regular file (bonding_masters) stays one.
				if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
		}
		if err := os.Symlink(from, filepath.Join(dst, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func specByNameH2(t testing.TB, name string) Spec {
	t.Helper()
	for _, s := range Specs() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("collector %q not registered", name)
	return Spec{}
}

func discardLoggerH2() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// benchUpdateH2 measures one Update, draining the channel.
func benchUpdateH2(b *testing.B, c Collector) {
	ch := make(chan prometheus.Metric, 1024)
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Update(ch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(ch)
	<-done
}

type prometheusMetricH2 = prometheus.Metric
