package containers

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// procCPU is a process's user+system time in seconds from /proc/<pid>/stat:
// the ground truth for a container whose only process is its init.
func procCPU(t *testing.T, pid string) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / userHZ
}

// blockDevice names the whole disk that holds dir, as /dev/<name>.
func blockDevice(t *testing.T, dir string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/partitions")
	if err != nil {
		t.Fatal(err)
	}
	names := parsePartitions(b)
	k := devKey{unix.Major(st.Dev), unix.Minor(st.Dev)}
	name, ok := names[k]
	if !ok {
		t.Skipf("the device %d:%d of %s is not in /proc/partitions", k.major, k.minor, dir)
	}
	// A partition's disk: /sys/dev/block/M:m/../dev holds the parent's.
	if p, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/../dev", k.major, k.minor)); err == nil {
		if pk, ok := parseDev(trim(p)); ok {
			if n, ok := names[pk]; ok {
				name = n
			}
		}
	}
	return name
}

// TestLive runs containers that burn CPU, hold memory, send TCP traffic to
// each other and write to disk, and checks that the series move as the
// work says; then that a stopped container's series are gone at the next
// scrape.
func TestLive(t *testing.T) {
	img := burnerImage(t)
	const memMiB, sendMiB, diskMiB = 64, 24, 16
	work, srv, cli, quiet := uniqueName(t), uniqueName(t), uniqueName(t), uniqueName(t)
	dataDir := t.TempDir()
	// On cgroup v1 the kernel counts a cgroup's bytes per device only
	// where blk-throttle has a rule for the device (v2's io.stat always
	// counts), so the writer gets a limit it never reaches.
	dev := blockDevice(t, dataDir)
	dockerCLI(t, "run", "-d", "--name", work, "--label", "com.example.tenant=acme", "--label", "com.example/team=ops",
		"--cpus", "1.5", "-m", "256m", "-v", dataDir+":/data", "--device-write-bps", dev+":10gb",
		img, "-cpu", "-mem", strconv.Itoa(memMiB), "-disk", "/data/f", "-diskmib", strconv.Itoa(diskMiB))
	dockerCLI(t, "run", "-d", "--name", srv, "--label", "com.example.tenant=globex", img, "-serve", ":9000")
	dockerCLI(t, "run", "-d", "--name", quiet, "--no-healthcheck", img)
	srvIP := dockerCLI(t, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", srv)
	if srvIP == "" {
		t.Skip("the server container has no IP on the default bridge")
	}

	s, err := New(Config{TenantLabel: "com.example.tenant", DefaultTenant: "infra"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	byName := func(sc scrape, name string) map[string]string {
		for _, m := range sc.series("container_last_seen", map[string]string{"name": name}) {
			return labelsOf(m)
		}
		return nil
	}
	var first scrape
	waitFor(t, 30*time.Second, "the three containers in a scrape, healthy", func() bool {
		first = gather(t, s)
		h, _ := first.sum("container_health_state", map[string]string{"name": work})
		return byName(first, work) != nil && byName(first, srv) != nil && byName(first, quiet) != nil && h == 1
	})

	// Labels.
	id := dockerCLI(t, "inspect", "-f", "{{.Id}}", work)
	ls := byName(first, work)
	for k, want := range map[string]string{
		"image": img, "tenant": "acme",
		"container_label_com_example_tenant": "acme", "container_label_com_example_team": "ops",
	} {
		if ls[k] != want {
			t.Errorf("label %s = %q, want %q (labels %v)", k, ls[k], want, ls)
		}
	}
	if !strings.HasSuffix(ls["id"], id) || !strings.HasPrefix(ls["id"], "/") {
		t.Errorf("id = %q, want the cgroup path of %s", ls["id"], id)
	}
	if got := byName(first, quiet)["tenant"]; got != "infra" {
		t.Errorf("tenant of a container without the label = %q, want the default, infra", got)
	}
	if h, _ := first.sum("container_health_state", map[string]string{"name": quiet}); h != -1 {
		t.Errorf("health of a container without a health check = %v, want -1", h)
	}
	w := map[string]string{"name": work}
	if v, _ := first.sum("container_spec_cpu_quota", w); v != 150000 {
		t.Errorf("container_spec_cpu_quota = %v, want 150000 (--cpus 1.5)", v)
	}
	if v, _ := first.sum("container_spec_memory_limit_bytes", w); v != 256<<20 {
		t.Errorf("container_spec_memory_limit_bytes = %v, want %d", v, 256<<20)
	}
	if v, n := first.sum("container_spec_memory_limit_bytes", map[string]string{"name": quiet}); n != 1 || v != 0 {
		t.Errorf("container_spec_memory_limit_bytes without a limit = %v (%d series), want 0", v, n)
	}
	if _, n := first.sum("container_cpu_cfs_periods_total", map[string]string{"name": quiet}); n != 0 {
		t.Errorf("container_cpu_cfs_periods_total without a quota: %d series, want none (as cAdvisor)", n)
	}
	if _, n := first.sum("container_last_seen", map[string]string{"id": "/"}); n != 1 {
		t.Errorf("no root cgroup series (id=\"/\")")
	}

	// Memory: the working set holds the touched allocation.
	ws, _ := first.sum("container_memory_working_set_bytes", w)
	if ws < memMiB<<20 || ws > (memMiB+40)<<20 {
		t.Errorf("working set %.1f MiB, want about %d MiB", ws/(1<<20), memMiB)
	}
	// Disk: the O_DIRECT writes.
	fsw, _ := first.sum("container_fs_writes_bytes_total", w)
	blk, _ := first.sum("container_blkio_device_usage_total", map[string]string{"name": work, "operation": "Write"})
	if fsw < diskMiB<<20 || blk < diskMiB<<20 {
		t.Errorf("fs writes %.1f MiB, blkio Write %.1f MiB; want at least %d MiB", fsw/(1<<20), blk/(1<<20), diskMiB)
	}
	if _, n := first.sum("container_fs_writes_bytes_total", map[string]string{"name": work, "device": dev}); n != 1 {
		t.Errorf("no container_fs_writes_bytes_total series for device %s: %v", dev, first.series("container_fs_writes_bytes_total", w))
	}

	// CPU: the rate over a few seconds matches the process's own
	// accounting and is near the one core it burns.
	pid := dockerCLI(t, "inspect", "-f", "{{.State.Pid}}", work)
	// Both counters are read at the same moment: the first gather may
	// be seconds old on a loaded machine, which would stretch only the
	// cgroup's interval.
	c0, _ := gather(t, s).sum("container_cpu_usage_seconds_total", map[string]string{"name": work, "cpu": "total"})
	p0, t0 := procCPU(t, pid), time.Now()

	// Network: the client sends to the server over the bridge.
	rx0, _ := first.sum("container_network_receive_bytes_total", map[string]string{"name": srv, "interface": "eth0"})
	dockerCLI(t, "run", "-d", "--name", cli, img, "-send", srvIP+":9000", "-sendmib", strconv.Itoa(sendMiB))
	waitFor(t, 60*time.Second, "the client's bytes", func() bool {
		return strings.Contains(dockerCLI(t, "logs", srv), "received")
	})
	time.Sleep(3 * time.Second)
	second := gather(t, s)
	c1, _ := second.sum("container_cpu_usage_seconds_total", map[string]string{"name": work, "cpu": "total"})
	p1, t1 := procCPU(t, pid), time.Now()
	rate, truth := (c1-c0)/t1.Sub(t0).Seconds(), (p1-p0)/t1.Sub(t0).Seconds()
	t.Logf("cpu rate %.3f cores, /proc says %.3f", rate, truth)
	if rate < 0.25 || rate > 1.2 || (truth > 0 && (rate/truth < 0.85 || rate/truth > 1.15)) {
		t.Errorf("cpu rate %.3f cores; the process used %.3f cores (one busy thread)", rate, truth)
	}
	user, _ := second.sum("container_cpu_user_seconds_total", w)
	sys, _ := second.sum("container_cpu_system_seconds_total", w)
	if user+sys < 0.8*c1 || user+sys > 1.2*c1 {
		t.Errorf("user %.2f + system %.2f s, total %.2f s", user, sys, c1)
	}
	if v, _ := second.sum("container_cpu_cfs_periods_total", w); v <= 0 {
		t.Errorf("container_cpu_cfs_periods_total = %v with a quota set", v)
	}
	rx1, _ := second.sum("container_network_receive_bytes_total", map[string]string{"name": srv, "interface": "eth0"})
	tx, _ := second.sum("container_network_transmit_bytes_total", map[string]string{"name": cli, "interface": "eth0"})
	if got := rx1 - rx0; got < sendMiB<<20 || got > 1.1*(sendMiB<<20) {
		t.Errorf("server received %.2f MiB, want %d MiB plus headers", got/(1<<20), sendMiB)
	}
	if tx < sendMiB<<20 || tx > 1.1*(sendMiB<<20) {
		t.Errorf("client transmitted %.2f MiB, want %d MiB plus headers", tx/(1<<20), sendMiB)
	}
	if _, n := second.sum("container_network_receive_bytes_total", map[string]string{"name": srv, "interface": "lo"}); n != 0 {
		t.Errorf("lo is reported; cAdvisor leaves it out")
	}

	// A stopped container is gone from the very next scrape.
	dockerCLI(t, "stop", "-t", "1", work)
	if got := byName(gather(t, s), work); got != nil {
		t.Errorf("stopped container still served: %v", got)
	}
	if got := byName(gather(t, s), srv); got == nil {
		t.Errorf("a running container went missing")
	}
}
