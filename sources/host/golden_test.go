package host

// The golden machinery of this package's tests: where node_exporter's
// fixtures are, a sysfs tree with their symlinks restored, the flags of
// node_exporter's end-to-end test, the parsed e2e-output.txt, and
// checkGolden, which compares a collector's output with it.

import (
	"bytes"
	"fmt"
	"io/fs"
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
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/internal/fixtures"
	"github.com/vigilhq/vigil/internal/syncbuf"
)

// fixtureDir returns node_exporter's fixture directory. When there is none
// it fails the test in CI and skips it elsewhere, saying where it looked.
func fixtureDir(t testing.TB) string {
	t.Helper()
	return fixtures.Path(t, "node_exporter")
}

// repairedSys is the fixture sysfs with its symlinks restored, built once
// per test binary and removed by TestMain.
var repairedSys struct {
	once  sync.Once
	tmp   string // what TestMain removes
	dir   string
	links int
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if repairedSys.tmp != "" {
		os.RemoveAll(repairedSys.tmp)
	}
	os.Exit(code)
}

// fixtureSys returns a copy of the fixture sysfs in which the files that
// stand for symlinks are symlinks again. The shared tree stores each of
// node_exporter's symlinks (hwmon devices, thermal zones, class/net
// entries, bonding slaves, md arrays...) as a small regular file holding
// the link target, and must not be edited in place. Other files are
// hard-linked, or copied where that is not allowed.
func fixtureSys(t testing.TB) string {
	t.Helper()
	src := filepath.Join(fixtureDir(t), "sys")
	repairedSys.once.Do(func() {
		tmp, err := os.MkdirTemp("", "vigil-host-sysfs-")
		if err != nil {
			repairedSys.err = err
			return
		}
		repairedSys.tmp = tmp
		repairedSys.dir = filepath.Join(tmp, "sys")
		repairedSys.links, repairedSys.err = restoreSymlinks(src, repairedSys.dir)
	})
	if repairedSys.err != nil {
		t.Fatalf("restoring the symlinks of %s: %v", src, repairedSys.err)
	}
	return repairedSys.dir
}

// restoreSymlinks mirrors the tree src at dst, turning files that hold a
// link target back into symlinks. It returns how many it restored.
func restoreSymlinks(src, dst string) (int, error) {
	links := 0
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if isLinkTarget(b) {
				links++
				return os.Symlink(string(b), out)
			}
			if os.Link(path, out) == nil {
				return nil
			}
			return os.WriteFile(out, b, 0o644)
		}
		return nil
	})
	return links, err
}

// isLinkTarget reports whether a fixture file's content is a relative link
// target ("../../devices/..."): sysfs attributes never look like that.
func isLinkTarget(b []byte) bool {
	return len(b) < 512 && bytes.HasPrefix(b, []byte("../")) && !bytes.ContainsAny(b, " \t\n\x00")
}

// fixturePaths points the collectors at the fixture trees, as
// node_exporter's end-to-end test does, with the symlink-restored sysfs.
func fixturePaths(t testing.TB) Paths {
	t.Helper()
	dir := fixtureDir(t)
	return Paths{
		Proc:     filepath.Join(dir, "proc"),
		Sys:      fixtureSys(t),
		Root:     dir,
		UdevData: filepath.Join(dir, "udev", "data"),
	}
}

// fixtureOptions are the collector flags of node_exporter's
// end-to-end-test.sh, by full option name ("collector." dropped). Options
// of collectors vigil lacks, and arp.netlink (vigil's arp reads only
// /proc/net/arp), are ignored. The textfile directory is relative to
// node_exporter's repository root, where the test runs; it shows in the
// HELP of the metrics read (see nodeExporterTree).
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
	"textfile.directory":            "collector/fixtures/textfile/two_metric_files/",
}

// fixtureOptionsNotDeclared are fixture options of collectors vigil has
// that those collectors deliberately do not declare.
var fixtureOptionsNotDeclared = map[string]bool{"arp.netlink": true}

// nodeExporterTree makes a directory laid out as node_exporter's
// repository: collector/fixtures is the fixture directory. Tests chdir
// there (or to its collector/) so that relative file names in the output
// match node_exporter's.
func nodeExporterTree(t testing.TB) string {
	t.Helper()
	fixtures := fixtureDir(t)
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "collector"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fixtures, filepath.Join(root, "collector", "fixtures")); err != nil {
		t.Fatal(err)
	}
	return root
}

// fixtureConfig is the host source's config for the given collectors,
// pointed at the fixtures with the end-to-end test's options.
func fixtureConfig(t testing.TB, collectors ...string) Config {
	t.Helper()
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

// e2eFamilies parses e2e-output.txt once. Families whose series
// node_exporter's test cut out entirely keep their HELP and TYPE.
func e2eFamilies(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	path := filepath.Join(fixtureDir(t), "e2e-output.txt")
	e2e.once.Do(func() { e2e.fams, e2e.err = parseE2E(path) })
	if e2e.err != nil {
		t.Fatalf("parsing %s: %v", path, e2e.err)
	}
	return e2e.fams
}

func parseE2E(path string) (map[string]*dto.MetricFamily, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) < 4 || f[0] != "#" || (f[1] != "HELP" && f[1] != "TYPE") {
			continue
		}
		mf := mfs[f[2]]
		if mf == nil {
			mf = &dto.MetricFamily{Name: proto.String(f[2])}
			mfs[f[2]] = mf
		}
		if len(mf.Metric) > 0 {
			continue
		}
		if f[1] == "HELP" {
			mf.Help = proto.String(f[3])
		} else {
			mf.Type = dto.MetricType(dto.MetricType_value[strings.ToUpper(f[3])]).Enum()
		}
	}
	return mfs, nil
}

// goldenSkip matches the series node_exporter's end-to-end test leaves out
// of its comparison (they vary from run to run): their HELP and TYPE are
// still compared.
var goldenSkip = regexp.MustCompile(`^(go_|node_exporter_build_info|node_scrape_collector_duration_seconds|process_|node_textfile_mtime_seconds|node_time_(zone|seconds)|node_network_(receive|transmit)_(bytes|packets)_total)`)

// checkGolden builds collector on the fixture trees with the end-to-end
// test's options, scrapes it, and compares its families with
// e2e-output.txt's. families selects what is compared: an exact name, a
// prefix ending in "*", or either after "!" to leave families out (those
// node_exporter produces in ways vigil does not). Every selected family of
// either side must be on the other with the same HELP, TYPE, label sets
// and values; the collector must produce no family outside the selection.
// With no families, those the collector produces are compared. It also
// checks node_scrape_collector_success for the collector.
func checkGolden(t *testing.T, collector string, families ...string) {
	t.Helper()
	checkGoldenWith(t, fixtureConfig(t, collector), collector, families...)
}

// checkGoldenWith is checkGolden with a config of the caller's, for a
// collector whose input the fixture tree lacks.
func checkGoldenWith(t *testing.T, cfg Config, collector string, families ...string) {
	t.Helper()
	want := e2eFamilies(t)
	if enables(cfg, "textfile") {
		absPaths(t, &cfg)
		t.Chdir(nodeExporterTree(t))
	}
	var log syncBuffer
	src, err := New(cfg, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatalf("building %s: %v", collector, err)
	}
	got := scrapeText(t, src)

	wantOK := 1.0
	if w, ok := sampleOf(want["node_scrape_collector_success"], "collector", collector); ok {
		wantOK = w
	}
	if g, _ := sampleOf(got["node_scrape_collector_success"], "collector", collector); g != wantOK {
		t.Errorf("node_scrape_collector_success{collector=%q} = %v, want %v; log:\n%s", collector, g, wantOK, log.String())
	}

	var include, exclude []string
	for _, f := range families {
		if p, ok := strings.CutPrefix(f, "!"); ok {
			exclude = append(exclude, p)
		} else {
			include = append(include, f)
		}
	}
	selected := func(name string) bool {
		if matchesAny(name, exclude) {
			return false
		}
		return len(include) == 0 || matchesAny(name, include)
	}
	names := map[string]bool{}
	for name := range got {
		if strings.HasPrefix(name, "node_scrape_collector_") || matchesAny(name, exclude) {
			continue
		}
		if !selected(name) {
			t.Errorf("%s: produced by collector %s but not selected for comparison", name, collector)
			continue
		}
		names[name] = true
	}
	if len(include) > 0 {
		for name := range want {
			if selected(name) {
				names[name] = true
			}
		}
	}
	if len(names) == 0 {
		t.Fatalf("collector %s: no family selected by %q", collector, families)
	}
	for _, name := range sortedKeys(names) {
		w, g := want[name], got[name]
		switch {
		case w == nil:
			t.Errorf("%s: produced, not in e2e-output.txt", name)
			continue
		case g == nil:
			t.Errorf("%s: in e2e-output.txt, not produced by collector %s", name, collector)
			continue
		}
		if g.GetHelp() != w.GetHelp() {
			t.Errorf("%s: HELP\n got  %q\n want %q", name, g.GetHelp(), w.GetHelp())
		}
		if g.GetType() != w.GetType() {
			t.Errorf("%s: TYPE %v, want %v", name, g.GetType(), w.GetType())
		}
		if goldenSkip.MatchString(name) {
			continue
		}
		gs, ws := seriesMap(g), seriesMap(w)
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

// matchesAny reports whether name is one of patterns: an exact name, or a
// prefix when the pattern ends in "*".
func matchesAny(name string, patterns []string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if name == p {
			return true
		}
	}
	return false
}

func enables(cfg Config, collector string) bool {
	for _, n := range cfg.Enable {
		if string(n) == collector {
			return true
		}
	}
	return false
}

// absPaths makes cfg's paths absolute, before a chdir.
func absPaths(t testing.TB, cfg *Config) {
	t.Helper()
	for _, p := range []*string{&cfg.Procfs, &cfg.Sysfs, &cfg.Rootfs, &cfg.UdevData} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			t.Fatal(err)
		}
		*p = abs
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// syncBuffer collects output written from several goroutines.
type syncBuffer = syncbuf.Buffer

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

// seriesMap maps each series' sorted label set, as {a="1",b="2"}, to a
// rendering of its value(s).
func seriesMap(mf *dto.MetricFamily) map[string]string {
	out := map[string]string{}
	for _, m := range mf.GetMetric() {
		labels := make([]string, 0, len(m.GetLabel()))
		for _, l := range m.GetLabel() {
			labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		sort.Strings(labels)
		var v string
		switch {
		case m.Summary != nil:
			s := m.GetSummary()
			v = fmt.Sprintf("count=%d sum=%v", s.GetSampleCount(), s.GetSampleSum())
			for _, q := range s.GetQuantile() {
				v += fmt.Sprintf(" q%v=%v", q.GetQuantile(), q.GetValue())
			}
		case m.Histogram != nil:
			h := m.GetHistogram()
			v = fmt.Sprintf("count=%d sum=%v", h.GetSampleCount(), h.GetSampleSum())
			for _, b := range h.GetBucket() {
				v += fmt.Sprintf(" le%v=%d", b.GetUpperBound(), b.GetCumulativeCount())
			}
		default:
			v = fmt.Sprint(metricValue(m))
		}
		out["{"+strings.Join(labels, ",")+"}"] = v
	}
	return out
}

// seriesLines renders a family's series as sorted "{labels} value" lines.
func seriesLines(mf *dto.MetricFamily) []string {
	m := seriesMap(mf)
	out := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, k+" "+m[k])
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

// TestFixtureOptionsDeclared keeps fixtureOptions honest: an option of a
// collector vigil has must be one it declares.
func TestFixtureOptionsDeclared(t *testing.T) {
	for _, k := range sortedKeys(fixtureOptions) {
		name, _, _ := strings.Cut(k, ".")
		if _, ok := lookupSpec(name); !ok || fixtureOptionsNotDeclared[k] {
			continue
		}
		if _, ok := lookupOption(k); !ok {
			t.Errorf("fixture option %s is not declared by collector %s", k, name)
		}
	}
}

// TestFixtureSysSymlinks checks that the restored sysfs has its links
// back: every file of the shared tree holding a link target is one.
func TestFixtureSysSymlinks(t *testing.T) {
	sys := fixtureSys(t)
	if repairedSys.links == 0 {
		t.Fatal("no symlink restored")
	}
	n := 0
	err := filepath.WalkDir(sys, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 {
			n++
		}
		return err
	})
	if err != nil || n != repairedSys.links {
		t.Errorf("%d symlinks in %s (%v), %d restored", n, sys, err, repairedSys.links)
	}
	for _, p := range []string{"class/hwmon", "class/net", "class/thermal"} {
		entries, err := os.ReadDir(filepath.Join(sys, p))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() && e.Name() != "bonding_masters" {
				t.Errorf("%s/%s is still a regular file", p, e.Name())
			}
		}
	}
}
