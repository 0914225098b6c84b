package host

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// node_exporter's expressions, used here only as the reference that the
// regexp-free versions must agree with.
var (
	refHwmonFilenameRE = regexp.MustCompile(`^(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?$`)
	refHwmonInvalidRE  = regexp.MustCompile("[^a-z0-9:_]")
)

func refHwmonExplode(name string) (ok bool, typ string, num int, prop string) {
	m := refHwmonFilenameRE.FindStringSubmatch(name)
	if m == nil {
		return false, "", 0, ""
	}
	typ, prop = m[1], m[4]
	if m[2] != "" {
		n, err := strconv.Atoi(m[2])
		if err != nil {
			return false, typ, 0, prop
		}
		num = n
	}
	return true, typ, num, prop
}

func refHwmonCleanName(s string) string {
	return strings.Trim(refHwmonInvalidRE.ReplaceAllLiteralString(strings.ToLower(s), "_"), "_")
}

func TestHwmonExplode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		typ  string
		num  int
		prop string
	}{
		{"temp1_input", true, "temp", 1, "input"},
		{"temp1", true, "temp", 1, ""},
		{"beep_enable", true, "beep_enable", 0, ""},
		{"pwm1_auto_point2_temp", true, "pwm", 1, "auto_point2_temp"},
		{"in007_min", true, "in", 7, "min"},
		{"temp1x", false, "", 0, ""},
		{"temp_x1y", true, "temp", 0, "x1y"}, // backtracks to a shorter type
		{"1abc", false, "", 0, ""},
		{"temp1_", false, "", 0, ""},
		{"fan99999999999999999999_input", false, "fan", 0, "input"},
	} {
		ok, typ, num, prop := hwmonExplode(tc.in)
		if ok != tc.ok || (ok && (typ != tc.typ || num != tc.num || prop != tc.prop)) {
			t.Errorf("hwmonExplode(%q) = %v %q %d %q, want %v %q %d %q", tc.in, ok, typ, num, prop, tc.ok, tc.typ, tc.num, tc.prop)
		}
		checkHwmonExplode(t, tc.in)
	}
}

func checkHwmonExplode(t *testing.T, in string) {
	ok, typ, num, prop := hwmonExplode(in)
	rok, rtyp, rnum, rprop := refHwmonExplode(in)
	if ok != rok || (ok && (typ != rtyp || num != rnum || prop != rprop)) {
		t.Errorf("hwmonExplode(%q) = %v %q %d %q; regexp says %v %q %d %q", in, ok, typ, num, prop, rok, rtyp, rnum, rprop)
	}
}

func FuzzHwmonExplode(f *testing.F) {
	for _, s := range []string{"temp1_input", "beep_enable", "a_b1c", "x\n1_y", "temp_\n", "in0_a\nb", "é1_ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkHwmonExplode(t, s) })
}

func FuzzHwmonCleanName(f *testing.F) {
	for _, s := range []string{"Core 0", "coretemp.0", "__x__", "\xffA\xfe", "İK", "asus-nb-wmi\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := hwmonCleanName(s), refHwmonCleanName(s); got != want {
			t.Errorf("hwmonCleanName(%q) = %q, regexp says %q", s, got, want)
		}
	})
}

func TestHwmonGolden(t *testing.T) { checkGolden(t, "hwmon", "node_hwmon_*") }

func TestHwmonFilters(t *testing.T) {
	paths := fixturePaths(t)
	for _, tc := range []struct {
		name      string
		opts      map[string]string
		wantChips []string // chips of node_hwmon_temp_celsius
		wantTemps int
	}{
		{"exclude", map[string]string{"chip-exclude": "coretemp|ieee80211|bogus"}, []string{"hwmon4"}, 2},
		{"sensor-include", map[string]string{"chip-include": "coretemp", "sensor-include": "^platform_coretemp_0;temp[12]$"}, []string{"platform_coretemp_0"}, 2},
		{"sensor-exclude", map[string]string{"chip-include": "coretemp", "sensor-exclude": ";temp[2-5]$"}, []string{"platform_coretemp_0", "platform_coretemp_1"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mfs := collect(t, newCollector(t, "hwmon", paths, tc.opts))
			chips := map[string]bool{}
			temps := 0
			for _, m := range mfs["node_hwmon_temp_celsius"].GetMetric() {
				temps++
				for _, l := range m.GetLabel() {
					if l.GetName() == "chip" {
						chips[l.GetValue()] = true
					}
				}
			}
			if temps != tc.wantTemps || len(chips) != len(tc.wantChips) {
				t.Errorf("got %d temperatures from %v, want %d from %v", temps, chips, tc.wantTemps, tc.wantChips)
			}
			for _, c := range tc.wantChips {
				if !chips[c] {
					t.Errorf("chip %s missing from %v", c, chips)
				}
			}
		})
	}
}

// TestHwmonSameNameSameDevice checks the last resort of chip naming: two
// hwmon devices with one parent device and the same name file are told
// apart by their hwmonN directory.
func TestHwmonSameNameSameDevice(t *testing.T) {
	sys := t.TempDir()
	dev := filepath.Join(sys, "devices", "platform", "foo.1")
	for _, h := range []string{"hwmon7", "hwmon8"} {
		d := filepath.Join(dev, "hwmon", h)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range map[string]string{"name": "foo\n", "temp1_input": "42000\n"} {
			if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("../../../foo.1", filepath.Join(d, "device")); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(sys, "class", "hwmon"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../devices/platform/foo.1/hwmon/"+h, filepath.Join(sys, "class", "hwmon", h)); err != nil {
			t.Fatal(err)
		}
	}
	text := exposition(t, collect(t, newCollector(t, "hwmon", Paths{Sys: sys}, nil)))
	for _, want := range []string{
		`node_hwmon_temp_celsius{chip="platform_foo_1_hwmon7",sensor="temp1"} 42`,
		`node_hwmon_temp_celsius{chip="platform_foo_1_hwmon8",sensor="temp1"} 42`,
		`node_hwmon_chip_names{chip="platform_foo_1_hwmon8",chip_name="foo"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s in\n%s", want, text)
		}
	}
}
