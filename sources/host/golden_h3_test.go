package host

// Golden comparison of collectors against node_exporter's e2e output. This
// is helper h3's copy of the shared checkGolden (written elsewhere by h1);
// the lead merges them.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
)

// h3FixtureRels are the fixture tree relative to this package directory:
// from the main checkout (/work/main) it is three levels up, from a
// worktree (/work/wt/hN) four.
var h3FixtureRels = []string{
	"../../../shared/fixtures/node_exporter",
	"../../../../shared/fixtures/node_exporter",
}

// h3Excluded are the series the e2e comparison leaves out (fixtures README).
var h3Excluded = regexp.MustCompile(`^(go_|node_exporter_build_info|node_scrape_collector_duration_seconds|process_|node_textfile_mtime_seconds|node_time_(zone|seconds)|node_network_(receive|transmit)_(bytes|packets)_total)`)

// h3FixtureOptions are the e2e flags that change output ("collector." dropped).
var h3FixtureOptions = map[string]string{
	"arp.device-exclude":            "nope",
	"bcache.priorityStats":          "true",
	"hwmon.chip-include":            "(applesmc|asus_nb_wmi|coretemp|hwmon4|ieee80211|nct6779)",
	"netclass.ignore-invalid-speed": "true",
	"netclass.ignored-devices":      "(dmz|int)",
	"netdev.device-include":         "lo",
	"stat.softirq":                  "true",
	// node_exporter's e2e test runs from its repository root.
	"textfile.directory": "collector/fixtures/textfile/two_metric_files/",
}

// h3Fixtures returns the absolute fixture directory, skipping the test
// (failing it in CI) when it is missing.
func h3Fixtures(t testing.TB) string {
	t.Helper()
	var err error
	for _, rel := range h3FixtureRels {
		var abs string
		if abs, err = filepath.Abs(rel); err == nil {
			if _, err = os.Stat(filepath.Join(abs, "e2e-output.txt")); err == nil {
				return abs
			}
		}
	}
	{
		if os.Getenv("CI") == "true" {
			t.Fatalf("node_exporter fixtures missing: %v", err)
		}
		t.Skipf("node_exporter fixtures missing (%v); skipping", err)
	}
	return ""
}

// h3SysTree returns a copy of the fixture sysfs with its symlinks restored.
// The stored tree has each symlink replaced by a small file holding the
// link target ("../../devices/..."), which hides hwmon devices, thermal
// zones, bonding slaves and md arrays. Files are hard-linked when possible.
func h3SysTree(t testing.TB, fixtures string) string {
	t.Helper()
	src := filepath.Join(fixtures, "sys")
	dst := filepath.Join(t.TempDir(), "sys")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		case d.Type().IsRegular():
			if target, ok := h3LinkTarget(path); ok {
				return os.Symlink(target, out)
			}
			if os.Link(path, out) == nil {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, 0o644)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("restore sysfs fixture: %v", err)
	}
	return dst
}

// h3LinkTarget reports whether a fixture file stands for a symlink.
func h3LinkTarget(path string) (string, bool) {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() == 0 || fi.Size() > 512 {
		return "", false
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte("../")) || bytes.ContainsAny(b, "\n \t") {
		return "", false
	}
	return string(b), true
}

// h3Paths returns fixture paths with a symlink-restored sysfs.
func h3Paths(t testing.TB, fixtures string) Paths {
	p := h3ProcPaths(fixtures)
	p.Sys = h3SysTree(t, fixtures)
	return p
}

// h3ProcPaths returns fixture paths with the stored sysfs as it is, for
// collectors that do not read sysfs (restoring it takes a while).
func h3ProcPaths(fixtures string) Paths {
	return Paths{
		Proc:     filepath.Join(fixtures, "proc"),
		Sys:      filepath.Join(fixtures, "sys"),
		Root:     fixtures,
		UdevData: filepath.Join(fixtures, "udev", "data"),
	}
}

// h3ReadsSysfs lists the collectors that need the symlink-restored sysfs.
var h3ReadsSysfs = map[string]bool{"mdadm": true, "bonding": true, "hwmon": true, "thermal_zone": true}

// h3New builds a registered collector with its option defaults, then the
// given overrides (short names).
func h3New(t testing.TB, name string, paths Paths, overrides map[string]string) Collector {
	t.Helper()
	var spec *Spec
	for _, s := range Specs() {
		if s.Name == name {
			spec = &s
			break
		}
	}
	if spec == nil {
		t.Fatalf("collector %q is not registered", name)
	}
	opts := map[string]string{}
	for _, o := range spec.Options {
		opts[name+"."+o.Name] = o.Default
	}
	for k, v := range overrides {
		if _, ok := opts[name+"."+k]; !ok {
			t.Fatalf("collector %s has no option %q", name, k)
		}
		opts[name+"."+k] = v
	}
	env := &Env{
		Paths:   paths,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		name:    name,
		options: opts,
	}
	c, err := spec.New(env)
	if err != nil {
		t.Fatalf("new %s: %v", name, err)
	}
	return c
}

// h3Adapter exposes a Collector to a registry, unchecked.
type h3Adapter struct {
	c   Collector
	err error
}

func (a *h3Adapter) Describe(chan<- *prometheus.Desc) {}
func (a *h3Adapter) Collect(ch chan<- prometheus.Metric) {
	a.err = a.c.Update(ch)
}

// h3Gather runs one Update through a registry and returns the families.
func h3Gather(t testing.TB, c Collector) ([]*dto.MetricFamily, error) {
	t.Helper()
	a := &h3Adapter{c: c}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(a); err != nil {
		t.Fatalf("register: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return mfs, a.err
}

// h3Text renders families in the text exposition format.
func h3Text(t testing.TB, mfs []*dto.MetricFamily) string {
	t.Helper()
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatalf("render %s: %v", mf.GetName(), err)
		}
	}
	return buf.String()
}

// checkGoldenH3 builds collector with the e2e fixture paths and options and
// compares every family it produces, and every family of e2e-output.txt
// whose name starts with one of prefixes, on HELP, TYPE, label sets and
// values.
func checkGoldenH3(t *testing.T, collector string, prefixes ...string) {
	t.Helper()
	fixtures := h3Fixtures(t)
	paths := h3ProcPaths(fixtures)
	if h3ReadsSysfs[collector] {
		paths = h3Paths(t, fixtures)
	}

	// The textfile option is relative to node_exporter's repository root:
	// recreate that layout so file names in HELP texts match exactly.
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "collector"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fixtures, filepath.Join(root, "collector", "fixtures")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)

	overrides := map[string]string{}
	for k, v := range h3FixtureOptions {
		if strings.HasPrefix(k, collector+".") {
			overrides[strings.TrimPrefix(k, collector+".")] = v
		}
	}
	got, err := h3Gather(t, h3New(t, collector, paths, overrides))
	if err != nil {
		t.Fatalf("%s: Update: %v", collector, err)
	}

	f, err := os.Open(filepath.Join(fixtures, "e2e-output.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	want, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("parse e2e-output.txt: %v", err)
	}

	owned := func(name string) bool {
		if h3Excluded.MatchString(name) {
			return false
		}
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}

	gotByName := map[string]*dto.MetricFamily{}
	for _, mf := range got {
		if h3Excluded.MatchString(mf.GetName()) {
			continue
		}
		if !owned(mf.GetName()) {
			t.Errorf("%s produced family %s outside prefixes %q", collector, mf.GetName(), prefixes)
			continue
		}
		gotByName[mf.GetName()] = mf
	}
	var names []string
	for name := range want {
		if owned(name) {
			names = append(names, name)
		}
	}
	for name := range gotByName {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: family %s is not in e2e-output.txt", collector, name)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatalf("%s: no family of e2e-output.txt matches %q", collector, prefixes)
	}
	for _, name := range names {
		w, g := want[name], gotByName[name]
		if g == nil {
			if len(w.Metric) > 0 {
				t.Errorf("%s: family %s missing", collector, name)
			}
			continue
		}
		if g.GetHelp() != w.GetHelp() {
			t.Errorf("%s: HELP\n got  %q\n want %q", name, g.GetHelp(), w.GetHelp())
		}
		if g.GetType() != w.GetType() {
			t.Errorf("%s: TYPE got %v, want %v", name, g.GetType(), w.GetType())
		}
		gs, ws := h3Series(g), h3Series(w)
		for k, wv := range ws {
			gv, ok := gs[k]
			switch {
			case !ok:
				t.Errorf("%s%s: missing (want %s)", name, k, wv)
			case gv != wv:
				t.Errorf("%s%s: got %s, want %s", name, k, gv, wv)
			}
		}
		for k, gv := range gs {
			if _, ok := ws[k]; !ok {
				t.Errorf("%s%s: unexpected series %s", name, k, gv)
			}
		}
	}
}

// h3Series maps each series' label set to a rendering of its value(s).
func h3Series(mf *dto.MetricFamily) map[string]string {
	out := map[string]string{}
	for _, m := range mf.Metric {
		pairs := make([]string, 0, len(m.Label))
		for _, l := range m.Label {
			pairs = append(pairs, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		sort.Strings(pairs)
		key := "{" + strings.Join(pairs, ",") + "}"
		var v string
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			v = h3Float(m.GetCounter().GetValue())
		case dto.MetricType_GAUGE:
			v = h3Float(m.GetGauge().GetValue())
		case dto.MetricType_UNTYPED:
			v = h3Float(m.GetUntyped().GetValue())
		case dto.MetricType_SUMMARY:
			s := m.GetSummary()
			v = fmt.Sprintf("count=%d sum=%s", s.GetSampleCount(), h3Float(s.GetSampleSum()))
			for _, q := range s.GetQuantile() {
				v += fmt.Sprintf(" q%s=%s", h3Float(q.GetQuantile()), h3Float(q.GetValue()))
			}
		case dto.MetricType_HISTOGRAM:
			h := m.GetHistogram()
			v = fmt.Sprintf("count=%d sum=%s", h.GetSampleCount(), h3Float(h.GetSampleSum()))
			for _, b := range h.GetBucket() {
				v += fmt.Sprintf(" le%s=%d", h3Float(b.GetUpperBound()), b.GetCumulativeCount())
			}
		}
		out[key] = v
	}
	return out
}

// h3Float renders a value exactly (shortest round-trip form).
func h3Float(f float64) string {
	if math.IsNaN(f) {
		return "NaN"
	}
	return fmt.Sprint(f)
}

func TestGoldenH3(t *testing.T) {
	for _, tc := range []struct {
		collector string
		prefixes  []string
	}{
		{"pressure", []string{"node_pressure_"}},
		{"conntrack", []string{"node_nf_conntrack_"}},
		{"filefd", []string{"node_filefd_"}},
		{"entropy", []string{"node_entropy_"}},
		{"schedstat", []string{"node_schedstat_"}},
		{"textfile", []string{"node_textfile_", "testmetric"}},
		{"mdadm", []string{"node_md_"}},
		{"bonding", []string{"node_bonding_"}},
		{"hwmon", []string{"node_hwmon_"}},
		{"thermal_zone", []string{"node_thermal_zone_", "node_cooling_device_"}},
	} {
		t.Run(tc.collector, func(t *testing.T) {
			checkGoldenH3(t, tc.collector, tc.prefixes...)
		})
	}
}

// TestH3NoData checks that each collector reports ErrNoData, without
// panicking or sending metrics, on a host lacking its kernel feature.
func TestH3NoData(t *testing.T) {
	for _, name := range []string{"pressure", "conntrack", "schedstat", "mdadm", "bonding", "hwmon"} {
		t.Run(name, func(t *testing.T) {
			empty := t.TempDir()
			c := h3New(t, name, Paths{Proc: empty, Sys: empty, Root: empty}, nil)
			ch := make(chan prometheus.Metric, 100)
			if err := c.Update(ch); !errors.Is(err, ErrNoData) {
				t.Errorf("Update = %v, want ErrNoData", err)
			}
			if len(ch) != 0 {
				t.Errorf("%d metrics sent", len(ch))
			}
		})
	}
	// Collectors whose files always exist on Linux fail with an error
	// naming what is missing, as node_exporter's do.
	for _, name := range []string{"filefd", "entropy"} {
		t.Run(name, func(t *testing.T) {
			empty := t.TempDir()
			err := h3New(t, name, Paths{Proc: empty, Sys: empty}, nil).Update(make(chan prometheus.Metric, 10))
			if err == nil || errors.Is(err, ErrNoData) {
				t.Errorf("Update = %v, want an error", err)
			}
		})
	}
	// thermal_zone and textfile report nothing (or only their own status)
	// without failing.
	for _, name := range []string{"thermal_zone", "textfile"} {
		t.Run(name, func(t *testing.T) {
			empty := t.TempDir()
			if err := h3New(t, name, Paths{Proc: empty, Sys: empty}, nil).Update(make(chan prometheus.Metric, 10)); err != nil {
				t.Errorf("Update = %v", err)
			}
		})
	}
}

// TestH3Malformed checks that malformed files give an error naming the
// file instead of a panic.
func TestH3Malformed(t *testing.T) {
	for _, tc := range []struct {
		collector, file, body, mention string
	}{
		{"filefd", "sys/fs/file-nr", "1 2\n", "file-nr"},
		{"entropy", "sys/kernel/random/entropy_avail", "lots\n", "entropy_avail"},
		{"conntrack", "sys/net/netfilter/nf_conntrack_count", "x\n", "nf_conntrack_count"},
		{"pressure", "pressure/cpu", "some avg10=x\n", "pressure"},
	} {
		t.Run(tc.collector, func(t *testing.T) {
			proc := t.TempDir()
			path := filepath.Join(proc, tc.file)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			err := h3New(t, tc.collector, Paths{Proc: proc, Sys: proc}, nil).Update(make(chan prometheus.Metric, 100))
			if err == nil || errors.Is(err, ErrNoData) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("Update = %v, want an error mentioning %s", err, tc.mention)
			}
		})
	}
}

// BenchmarkH3Update measures one scrape of each collector against the
// fixture trees (page cache warm), metrics drained and discarded.
func BenchmarkH3Update(b *testing.B) {
	fixtures := h3Fixtures(b)
	restored := h3Paths(b, fixtures)
	for _, name := range []string{"pressure", "conntrack", "filefd", "entropy", "schedstat", "textfile", "mdadm", "bonding", "hwmon", "thermal_zone"} {
		b.Run(name, func(b *testing.B) {
			paths := h3ProcPaths(fixtures)
			if h3ReadsSysfs[name] {
				paths = restored
			}
			overrides := map[string]string{}
			if name == "hwmon" {
				overrides["chip-include"] = h3FixtureOptions["hwmon.chip-include"]
			}
			if name == "textfile" {
				overrides["directory"] = filepath.Join(fixtures, "textfile", "two_metric_files")
			}
			c := h3New(b, name, paths, overrides)
			ch := make(chan prometheus.Metric, 1024)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := c.Update(ch); err != nil {
					b.Fatal(err)
				}
				for len(ch) > 0 {
					<-ch
				}
			}
		})
	}
}
