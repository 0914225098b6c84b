package containers

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/dockerengine"
)

// fakeInventory is a fixed list of running containers.
type fakeInventory struct {
	running []dockerengine.Container
	ready   bool
}

func (f *fakeInventory) Running() []dockerengine.Container { return slices.Clone(f.running) }
func (f *fakeInventory) Ready() bool                       { return f.ready }

func fixtureSource(t testing.TB, dir string, c Config, inv inventory) *Source {
	t.Helper()
	c.Cgroupfs = filepath.Join(dir, "cgroup")
	c.Procfs = filepath.Join(dir, "proc")
	c.Sysfs = filepath.Join(dir, "sys")
	c.Rootfs = filepath.Join(dir, "root")
	s, err := newSource(c, nil, inv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type want struct {
	metric string
	match  map[string]string
	value  float64
}

func checkWants(t *testing.T, sc scrape, wants []want) {
	t.Helper()
	for _, w := range wants {
		got, n := sc.sum(w.metric, w.match)
		if n != 1 {
			t.Errorf("%s%v: %d series, want 1", w.metric, w.match, n)
			continue
		}
		if got != w.value {
			t.Errorf("%s%v = %v, want %v", w.metric, w.match, got, w.value)
		}
	}
}

// families lists the metric names that have a series matching match.
func (s scrape) families(match map[string]string) []string {
	var out []string
	for name := range s {
		if len(s.series(name, match)) > 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// TestFixtureV1 reads files copied from a running container on a cgroup v1
// host with the cgroupfs driver (docker run --cpus 0.5 -m 128m
// --device-write-bps ..., burning CPU, holding 32 MiB and writing 4 MiB
// with O_DIRECT).
func TestFixtureV1(t *testing.T) {
	dir := filepath.Join("testdata", "v1")
	id := readTrim(t, filepath.Join(dir, "id.txt"))
	started := time.Date(2026, 11, 26, 1, 39, 45, 137597067, time.UTC)
	inv := &fakeInventory{ready: true, running: []dockerengine.Container{{
		ID: id, Name: "web-1", Image: "h6probe:1", Pid: 4242, StartedAt: started,
		Labels: map[string]string{"com.docker.compose.service": "web", "com.example.tenant": "acme"},
	}}}
	s := fixtureSource(t, dir, Config{TenantLabel: "com.example.tenant"}, inv)
	if s.layout.v2 {
		t.Fatal("detected cgroup v2")
	}
	sc := gather(t, s)
	c := map[string]string{"name": "web-1"}
	with := func(k, v string) map[string]string {
		m := maps.Clone(c)
		m[k] = v
		return m
	}
	checkWants(t, sc, []want{
		{"container_cpu_usage_seconds_total", with("cpu", "total"), 2.078042689},
		{"container_cpu_user_seconds_total", c, 2.05},
		{"container_cpu_system_seconds_total", c, 0.01},
		{"container_cpu_cfs_periods_total", c, 42},
		{"container_cpu_cfs_throttled_periods_total", c, 40},
		{"container_cpu_cfs_throttled_seconds_total", c, 2.061322423},
		{"container_memory_usage_bytes", c, 38920192},
		{"container_memory_working_set_bytes", c, 38920192 - 2355200}, // usage - total_inactive_file
		{"container_memory_rss", c, 35622912},
		{"container_memory_cache", c, 2355200},
		{"container_memory_swap", c, 0},
		{"container_memory_max_usage_bytes", c, 38924288},
		{"container_memory_failcnt", c, 0},
		{"container_oom_events_total", c, 0},
		{"container_spec_memory_limit_bytes", c, 134217728},
		{"container_spec_cpu_quota", c, 50000},
		{"container_spec_cpu_period", c, 100000},
		{"container_spec_cpu_shares", c, 1024},
		{"container_start_time_seconds", c, float64(started.Unix())},
		{"container_health_state", c, -1},
		{"container_fs_reads_bytes_total", with("device", "/dev/vda"), 0},
		{"container_fs_writes_bytes_total", with("device", "/dev/vda"), 4202496},
		{"container_blkio_device_usage_total", map[string]string{"name": "web-1", "device": "/dev/vda", "major": "254", "minor": "0", "operation": "Write"}, 4202496},
		{"container_blkio_device_usage_total", map[string]string{"name": "web-1", "operation": "Discard"}, 4194304},
		{"container_blkio_device_usage_total", map[string]string{"name": "web-1", "operation": "Total"}, 8396800},
		{"container_network_receive_bytes_total", with("interface", "eth0"), 516},
		{"container_network_receive_packets_total", with("interface", "eth0"), 6},
		{"container_network_transmit_bytes_total", with("interface", "eth0"), 0},
		// The root cgroup, as dashboard 893 reads it.
		{"container_cpu_usage_seconds_total", map[string]string{"id": "/", "cpu": "total"}, 2068.720797281},
		{"container_memory_usage_bytes", map[string]string{"id": "/"}, 3089842176},
		{"container_spec_memory_limit_bytes", map[string]string{"id": "/"}, 0}, // unlimited
		{"machine_cpu_cores", nil, 2},
		{"container_scrape_error", nil, 0},
	})
	if _, n := sc.sum("container_blkio_device_usage_total", c); n != 6 {
		t.Errorf("%d blkio series, want 6 (Read, Write, Sync, Async, Discard, Total)", n)
	}
	if _, n := sc.sum("container_network_receive_bytes_total", with("interface", "lo")); n != 0 {
		t.Error("lo reported; cAdvisor leaves it out")
	}
	// The full label set of a container series.
	got := labelsOf(sc.series("container_memory_rss", c)[0])
	wantLabels := map[string]string{
		"id": "/docker/" + id, "name": "web-1", "image": "h6probe:1", "tenant": "acme",
		"container_label_com_docker_compose_service": "web", "container_label_com_example_tenant": "acme",
	}
	if !maps.Equal(got, wantLabels) {
		t.Errorf("labels\n got %v\nwant %v", got, wantLabels)
	}
	m := sc.series("machine_memory_bytes", nil)
	if len(m) != 1 || labelsOf(m[0])["machine_id"] != "3d1219c7c4c5404aaa1f6d2a48adfda4" || labelsOf(m[0])["boot_id"] == "" {
		t.Errorf("machine_memory_bytes: %v", m)
	}
}

// TestFixtureV2 reads a cgroup v2 tree in the kernel's formats
// (Documentation/admin-guide/cgroup-v2.rst): one container under the
// systemd driver's path, one under the cgroupfs driver's path seen from a
// cgroup namespace (its /proc/<pid>/cgroup starts with "/.."), and the
// root, whose memory comes from /proc/meminfo.
func TestFixtureV2(t *testing.T) {
	dir := filepath.Join("testdata", "v2")
	a := "9f3c1e2d4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"
	b := "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
	inv := &fakeInventory{ready: true, running: []dockerengine.Container{
		{ID: a, Name: "rentguy-api", Image: "rentguy/api:1.4", Pid: 5001, Health: "healthy",
			Labels: map[string]string{"tenant": "rentguy", "com.example/ignored": "x"}},
		{ID: b, Name: "psra-worker", Image: "psra/worker", Pid: 5002, Health: "unhealthy",
			Labels: map[string]string{"tenant": "psra"}},
	}}
	s := fixtureSource(t, dir, Config{TenantLabel: "tenant", LabelAllowlist: &[]string{"tenant"}}, inv)
	if !s.layout.v2 {
		t.Fatal("did not detect cgroup v2")
	}
	sc := gather(t, s)
	ca := map[string]string{"id": "/system.slice/docker-" + a + ".scope", "name": "rentguy-api", "tenant": "rentguy"}
	cb := map[string]string{"id": "/docker/" + b, "name": "psra-worker", "tenant": "psra"}
	with := func(c map[string]string, kv ...string) map[string]string {
		m := maps.Clone(c)
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	root := map[string]string{"id": "/"}
	checkWants(t, sc, []want{
		{"container_cpu_usage_seconds_total", with(ca, "cpu", "total"), 12.873465},
		{"container_cpu_user_seconds_total", ca, 10.298771},
		{"container_cpu_system_seconds_total", ca, 2.574694},
		{"container_cpu_cfs_periods_total", ca, 1290},
		{"container_cpu_cfs_throttled_periods_total", ca, 311},
		{"container_cpu_cfs_throttled_seconds_total", ca, 4.711532},
		{"container_memory_usage_bytes", ca, 289296384},
		{"container_memory_working_set_bytes", ca, 289296384 - 52428800},
		{"container_memory_rss", ca, 201326592},
		{"container_memory_cache", ca, 79691776},
		{"container_memory_swap", ca, 1048576},
		{"container_memory_max_usage_bytes", ca, 301989888},
		{"container_memory_failcnt", ca, 17},
		{"container_oom_events_total", ca, 1},
		{"container_spec_memory_limit_bytes", ca, 536870912},
		{"container_spec_cpu_quota", ca, 150000},
		{"container_spec_cpu_period", ca, 100000},
		{"container_spec_cpu_shares", ca, 2597}, // cpu.weight 100
		{"container_health_state", ca, 1},
		{"container_fs_reads_bytes_total", with(ca, "device", "/dev/nvme0n1"), 4534272},
		{"container_fs_writes_bytes_total", with(ca, "device", "/dev/dm-0"), 104857600},
		{"container_blkio_device_usage_total", with(ca, "device", "/dev/nvme0n1", "major", "259", "minor", "0", "operation", "Write"), 104857600},
		{"container_network_receive_bytes_total", with(ca, "interface", "eth0"), 73581944},
		{"container_network_receive_errors_total", with(ca, "interface", "eth0"), 1},
		{"container_network_receive_packets_dropped_total", with(ca, "interface", "eth0"), 2},
		{"container_network_transmit_packets_total", with(ca, "interface", "eth0"), 31520},
		{"container_network_transmit_errors_total", with(ca, "interface", "eth0"), 3},
		{"container_network_transmit_packets_dropped_total", with(ca, "interface", "eth0"), 4},
		{"container_network_transmit_bytes_total", with(ca, "interface", "eth1"), 796},

		{"container_memory_working_set_bytes", cb, 0}, // inactive_file above usage: floored
		{"container_spec_memory_limit_bytes", cb, 0},  // memory.max "max"
		{"container_spec_cpu_period", cb, 100000},
		{"container_spec_cpu_shares", cb, 998}, // cpu.weight 39
		{"container_health_state", cb, 0},

		{"container_cpu_usage_seconds_total", with(root, "cpu", "total"), 917384.411812},
		{"container_memory_usage_bytes", root, (16262912 - 6021348) * 1024},
		{"container_memory_working_set_bytes", root, (16262912 - 6021348 - 3689108) * 1024},
		{"container_memory_rss", root, 3290044 * 1024},
		{"container_memory_cache", root, 5612004 * 1024},
		{"container_network_receive_bytes_total", with(root, "interface", "ens3"), 9123401723},
		{"container_fs_writes_bytes_total", with(root, "device", "/dev/nvme0n1"), 53386067968},
		{"container_start_time_seconds", root, 1795600000},
		{"machine_cpu_cores", nil, 4},
		{"machine_memory_bytes", nil, 16262912 * 1024},
	})
	for _, absent := range []struct {
		metric string
		match  map[string]string
	}{
		{"container_cpu_cfs_periods_total", cb}, // no quota
		{"container_spec_cpu_quota", cb},
		{"container_memory_max_usage_bytes", cb}, // no memory.peak (kernel < 5.19)
		{"container_fs_writes_bytes_total", cb},  // empty io.stat
		{"container_network_receive_bytes_total", with(root, "interface", "docker0")},
		{"container_network_receive_bytes_total", with(root, "interface", "veth1a2b3c4")},
		{"container_spec_cpu_shares", root},
	} {
		if _, n := sc.sum(absent.metric, absent.match); n != 0 {
			t.Errorf("%s%v: %d series, want none", absent.metric, absent.match, n)
		}
	}
	// The allow list keeps only the tenant label.
	got := labelsOf(sc.series("container_memory_rss", ca)[0])
	wantLabels := map[string]string{"id": ca["id"], "name": "rentguy-api", "image": "rentguy/api:1.4", "tenant": "rentguy", "container_label_tenant": "rentguy"}
	if !maps.Equal(got, wantLabels) {
		t.Errorf("labels\n got %v\nwant %v", got, wantLabels)
	}
	// The series sets of a container and the root.
	fams := sc.families(ca)
	if len(fams) != 32 {
		t.Errorf("container A has %d families, want 32: %v", len(fams), fams)
	}
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
