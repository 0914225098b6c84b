package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestGoldenTime(t *testing.T) {
	// HELP and TYPE of all four; the values of node_time_seconds and
	// node_time_zone_offset_seconds are left out, and checked here.
	checkGolden(t, "time", "node_time_*")
	s, err := New(fixtureConfig(t, "time"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fams := scrapeText(t, s)
	now := metricValue(fams["node_time_seconds"].GetMetric()[0])
	if d := time.Since(time.Unix(int64(now), 0)); d < -time.Minute || d > time.Minute {
		t.Errorf("node_time_seconds %v is %v away from now", now, d)
	}
	zone, offset := time.Now().Zone()
	if v, ok := sampleOf(fams["node_time_zone_offset_seconds"], "time_zone", zone); !ok || v != float64(offset) {
		t.Errorf("node_time_zone_offset_seconds{time_zone=%q} = %v, want %v", zone, v, offset)
	}
}

// The fixture tree lacks node_exporter's usr/lib/os-release; testdata has
// the Ubuntu 20.04.2 file that e2e-output.txt was produced from.
func TestGoldenOS(t *testing.T) {
	cfg := fixtureConfig(t, "os")
	cfg.Rootfs = "testdata/rootfs"
	checkGoldenWith(t, cfg, "os", "node_os_info", "node_os_version")
}

func TestOSReleaseParsing(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	file := filepath.Join(dir, "etc", "os-release")
	os.WriteFile(file, []byte("# comment\nNAME='Debian GNU/Linux'\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian \\\"bookworm\\\"\"\nSUPPORT_END=2028-06-30\nID=debian\n"), 0o644)
	cfg := Config{Rootfs: dir, DisableDefaults: true, Enable: []Name{"os"}}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	fams := scrapeText(t, s)
	info := fams["node_os_info"].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range info.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["name"] != "Debian GNU/Linux" || labels["pretty_name"] != `Debian "bookworm"` || labels["version_id"] != "12" {
		t.Errorf("labels %v", labels)
	}
	if v := metricValue(fams["node_os_version"].GetMetric()[0]); v != 12 {
		t.Errorf("node_os_version %v, want 12", v)
	}
	if v := metricValue(fams["node_os_support_end_timestamp_seconds"].GetMetric()[0]); v != float64(time.Date(2028, 6, 30, 0, 0, 0, 0, time.UTC).Unix()) {
		t.Errorf("support end %v", v)
	}
	// No os-release at all: no data, not an error.
	s, _ = New(Config{Rootfs: t.TempDir(), DisableDefaults: true, Enable: []Name{"os"}}, nil)
	if v, _ := sampleOf(scrapeText(t, s)["node_scrape_collector_success"], "collector", "os"); v != 0 {
		t.Error("os without os-release succeeded")
	}
	for v, want := range map[string]float64{"20.04": 20.04, "20.04.2": 20.04, "12": 12, "rolling": 0, "": 0, "7.": 7} {
		if got := majorMinor(v); got != want {
			t.Errorf("majorMinor(%q) = %v, want %v", v, got, want)
		}
	}
}

// uname asks the kernel even when rootfs points at a fixture tree, so
// node_uname_info{nodename} is this machine's name (dashboard 1860 keys on
// it).
func TestUnameLive(t *testing.T) {
	s, err := New(fixtureConfig(t, "uname"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fams := scrapeText(t, s)
	mf := fams["node_uname_info"]
	if mf == nil || mf.GetHelp() != "Labeled system information as provided by the uname system call." {
		t.Fatalf("node_uname_info: %v", mf)
	}
	host, _ := os.Hostname()
	var u unix.Utsname
	unix.Uname(&u)
	labels := map[string]string{}
	for _, l := range mf.GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["nodename"] != host || labels["sysname"] != "Linux" || labels["release"] != cstring(u.Release[:]) || labels["machine"] == "" {
		t.Errorf("labels %v, hostname %q", labels, host)
	}
	if len(labels) != 6 {
		t.Errorf("labels %v, want sysname, release, version, machine, nodename, domainname", labels)
	}
}

func TestTimexLive(t *testing.T) {
	s, err := New(Config{DisableDefaults: true, Enable: []Name{"timex"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fams := scrapeText(t, s)
	if v, _ := sampleOf(fams["node_scrape_collector_success"], "collector", "timex"); v != 1 {
		t.Skip("adjtimex not permitted here")
	}
	for _, name := range []string{"node_timex_offset_seconds", "node_timex_sync_status", "node_timex_frequency_adjustment_ratio",
		"node_timex_maxerror_seconds", "node_timex_estimated_error_seconds", "node_timex_tick_seconds", "node_timex_tai_offset_seconds",
		"node_timex_pps_calibration_total", "node_timex_loop_time_constant", "node_timex_status"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	// Ticks are 1/USER_HZ: 10ms on every common kernel config... and the
	// frequency ratio is close to 1.
	if v := metricValue(fams["node_timex_tick_seconds"].GetMetric()[0]); v <= 0 || v > 0.1 {
		t.Errorf("tick %v", v)
	}
	if v := metricValue(fams["node_timex_frequency_adjustment_ratio"].GetMetric()[0]); v < 0.99 || v > 1.01 {
		t.Errorf("frequency ratio %v", v)
	}
	if s := fams["node_timex_sync_status"].GetType().String(); !strings.EqualFold(s, "gauge") {
		t.Errorf("sync_status type %s", s)
	}
}
