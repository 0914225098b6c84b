package host

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The end-to-end run disables filesystem, so the fixture's proc/1/mountinfo
// is checked here: filters, escapes, labels, and statfs errors for mount
// points missing under --path.rootfs.
func TestFilesystemFixtureMountinfo(t *testing.T) {
	mfs := collect(t, fixtureCollector(t, "filesystem", nil))
	const enoent = "no such file or directory"
	kube := "/var/lib/kubelet/plugins/kubernetes.io/vsphere-volume/mounts/[vsanDatastore]%sbafb9e5a-8856-7e6c-699c-801844e77a4a/kubernetes-dynamic-pvc-3eba5bba-48a3-11e8-89ab-005056b92113.vmdk"
	want := []string{
		`{device="/dev/dm-2",device_error="",fstype="ext4",mountpoint="/"} 0`,
		`{device="/dev/sda",device_error="` + enoent + `",fstype="ext4",mountpoint=` + strconv.Quote(strings.Replace(kube, "%s", " ", 1)) + `} 1`,
		`{device="/dev/sda",device_error="` + enoent + `",fstype="ext4",mountpoint=` + strconv.Quote(strings.Replace(kube, "%s", "\t", 1)) + `} 1`,
		`{device="/dev/sda3",device_error="` + enoent + `",fstype="ext2",mountpoint="/boot"} 1`,
		`{device="gvfsd-fuse",device_error="` + enoent + `",fstype="fuse.gvfsd-fuse",mountpoint="/run/user/1000/gvfs"} 1`,
		`{device="tmpfs",device_error="` + enoent + `",fstype="tmpfs",mountpoint="/run"} 1`,
		`{device="tmpfs",device_error="` + enoent + `",fstype="tmpfs",mountpoint="/run/lock"} 1`,
		`{device="tmpfs",device_error="` + enoent + `",fstype="tmpfs",mountpoint="/run/user/1000"} 1`,
	}
	got := seriesLines(mfs["node_filesystem_device_error"])
	slices.Sort(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("device_error:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Only "/" could be statted; only it has sizes and mount_info.
	if got := seriesLines(mfs["node_filesystem_mount_info"]); len(got) != 1 || got[0] != `{device="/dev/dm-2",major="259",minor="2",mountpoint="/"} 1` {
		t.Errorf("mount_info %v", got)
	}
	for _, n := range []string{"size_bytes", "free_bytes", "avail_bytes", "files", "files_free"} {
		if got := seriesLines(mfs["node_filesystem_"+n]); len(got) != 1 {
			t.Errorf("%s: %v", n, got)
		}
	}
	// Readonly is reported for failed mounts too; none is read-only here.
	if got := seriesLines(mfs["node_filesystem_readonly"]); len(got) != len(want) {
		t.Errorf("readonly: %v", got)
	}
	if mf := mfs["node_filesystem_size_bytes"]; mf.GetHelp() != "Filesystem size in bytes." || mf.GetType().String() != "GAUGE" {
		t.Errorf("size_bytes help %q type %v", mf.GetHelp(), mf.GetType())
	}
}

func TestFilesystemReadonly(t *testing.T) {
	proc := t.TempDir()
	if err := os.MkdirAll(proc+"/1", 0o755); err != nil {
		t.Fatal(err)
	}
	mi := "1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n" +
		"2 1 8:1 / /nix/store ro,nosuid,relatime - ext4 /dev/sda1 rw\n" +
		"3 1 8:2 / /data rw,relatime - ext4 /dev/sda2 ro,errors=remount-ro\n"
	if err := os.WriteFile(proc+"/1/mountinfo", []byte(mi), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCollector(t, "filesystem", Paths{Proc: proc, Root: "/"}, nil)
	c.(*filesystemCollector).statfs = func(string, *unix.Statfs_t) error { return nil }
	got := strings.Join(seriesLines(collect(t, c)["node_filesystem_readonly"]), "\n")
	want := `{device="/dev/sda1",device_error="",fstype="ext4",mountpoint="/"} 0
{device="/dev/sda1",device_error="",fstype="ext4",mountpoint="/nix/store"} 1
{device="/dev/sda2",device_error="",fstype="ext4",mountpoint="/data"} 1`
	if got != want {
		t.Errorf("readonly:\n%s\nwant:\n%s", got, want)
	}
}

func TestFilesystemRootfsPrefixStripped(t *testing.T) {
	proc := t.TempDir()
	if err := os.MkdirAll(proc+"/1", 0o755); err != nil {
		t.Fatal(err)
	}
	mi := "1 0 8:1 / /host rw - ext4 /dev/sda1 rw\n2 1 8:2 / /host/var rw - ext4 /dev/sda2 rw\n"
	if err := os.WriteFile(proc+"/1/mountinfo", []byte(mi), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCollector(t, "filesystem", Paths{Proc: proc, Root: "/host"}, nil)
	var mu sync.Mutex
	var statted []string
	c.(*filesystemCollector).statfs = func(p string, _ *unix.Statfs_t) error {
		mu.Lock()
		statted = append(statted, p)
		mu.Unlock()
		return nil
	}
	got := strings.Join(seriesLines(collect(t, c)["node_filesystem_mount_info"]), "\n")
	want := `{device="/dev/sda1",major="8",minor="1",mountpoint="/"} 1
{device="/dev/sda2",major="8",minor="2",mountpoint="/var"} 1`
	if got != want {
		t.Errorf("mount_info:\n%s\nwant:\n%s", got, want)
	}
	if s := strings.Join(slices.Sorted(slices.Values(statted)), " "); s != "/host /host/var" {
		t.Errorf("statted %s, want /host /host/var", s)
	}
}

// A statfs that hangs (dead NFS server) must not block the scrape: the
// mount is reported as stuck and not statted again until the hung call
// returns.
func TestFilesystemStuckMount(t *testing.T) {
	proc := t.TempDir()
	if err := os.MkdirAll(proc+"/1", 0o755); err != nil {
		t.Fatal(err)
	}
	mi := "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:50 / /mnt/nfs rw - nfs4 srv:/export rw\n"
	if err := os.WriteFile(proc+"/1/mountinfo", []byte(mi), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCollector(t, "filesystem", Paths{Proc: proc, Root: "/"}, map[string]string{"mount-timeout": "50ms"})
	fc := c.(*filesystemCollector)
	release := make(chan struct{})
	var nfsCalls atomic.Int32
	fc.statfs = func(p string, buf *unix.Statfs_t) error {
		if p == "/mnt/nfs" {
			nfsCalls.Add(1)
			<-release
		}
		buf.Bsize, buf.Blocks = 4096, 10
		return nil
	}
	nfsError := func() string {
		for _, s := range seriesLines(collect(t, c)["node_filesystem_device_error"]) {
			if strings.Contains(s, `mountpoint="/mnt/nfs"`) {
				return s
			}
		}
		return ""
	}
	stuck := `{device="srv:/export",device_error="mountpoint timeout",fstype="nfs4",mountpoint="/mnt/nfs"} 1`
	start := time.Now()
	if got := nfsError(); got != stuck {
		t.Errorf("first scrape: %s, want %s", got, stuck)
	}
	if got := nfsError(); got != stuck {
		t.Errorf("second scrape: %s, want %s", got, stuck)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("two scrapes took %v", d)
	}
	if n := nfsCalls.Load(); n != 1 {
		t.Errorf("stuck mount statted %d times, want 1", n)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		fc.mu.Lock()
		_, still := fc.stuck["/mnt/nfs"]
		fc.mu.Unlock()
		if !still || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := nfsError(); got != `{device="srv:/export",device_error="",fstype="nfs4",mountpoint="/mnt/nfs"} 0` {
		t.Errorf("after recovery: %s", got)
	}
}

// Against the live machine: the collector's "/" agrees with statfs(2) and
// with df.
func TestFilesystemLive(t *testing.T) {
	if _, err := os.Stat("/proc/1/mountinfo"); err != nil {
		t.Skip("no /proc/1/mountinfo")
	}
	mfs := collect(t, newCollector(t, "filesystem", Paths{Proc: "/proc", Root: "/"}, nil))
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		t.Fatal(err)
	}
	var size, avail float64
	found := false
	for _, m := range mfs["node_filesystem_size_bytes"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "mountpoint" && l.GetValue() == "/" {
				size, found = m.GetGauge().GetValue(), true
			}
		}
	}
	for _, m := range mfs["node_filesystem_avail_bytes"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "mountpoint" && l.GetValue() == "/" {
				avail = m.GetGauge().GetValue()
			}
		}
	}
	if !found {
		t.Skipf("/ not reported (filtered fs type?): %v", seriesLines(mfs["node_filesystem_device_error"]))
	}
	if want := float64(st.Blocks) * float64(st.Bsize); size != want {
		t.Errorf("size of / %v, statfs says %v", size, want)
	}
	out, err := exec.Command("df", "-B1", "--output=size,avail", "/").Output()
	if err != nil {
		t.Skipf("df: %v", err)
	}
	f := strings.Fields(string(out))
	dfSize, _ := strconv.ParseFloat(f[len(f)-2], 64)
	dfAvail, _ := strconv.ParseFloat(f[len(f)-1], 64)
	if size != dfSize {
		t.Errorf("size of / %v, df says %v", size, dfSize)
	}
	if d := avail - dfAvail; d > 64<<20 || d < -64<<20 {
		t.Errorf("avail of / %v, df says %v", avail, dfAvail)
	}
}

func BenchmarkFilesystemLive(b *testing.B) {
	benchUpdate(b, newCollector(b, "filesystem", Paths{Proc: "/proc", Root: "/"}, nil))
}

// The parsed mount table is reused only while the file reads the same: a
// mount added, or changed to read-only, shows on the next scrape.
func TestFilesystemMountTableChanges(t *testing.T) {
	proc := t.TempDir()
	if err := os.MkdirAll(proc+"/1", 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(mi string) {
		t.Helper()
		if err := os.WriteFile(proc+"/1/mountinfo", []byte(mi), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := newCollector(t, "filesystem", Paths{Proc: proc, Root: "/"}, nil)
	c.(*filesystemCollector).statfs = func(string, *unix.Statfs_t) error { return nil }
	readonly := func() string {
		return strings.Join(seriesLines(collect(t, c)["node_filesystem_readonly"]), "\n")
	}
	write("1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n")
	want1 := `{device="/dev/sda1",device_error="",fstype="ext4",mountpoint="/"} 0`
	for range 2 {
		if got := readonly(); got != want1 {
			t.Fatalf("readonly:\n%s\nwant:\n%s", got, want1)
		}
	}
	write("1 0 8:1 / / ro,relatime - ext4 /dev/sda1 rw\n2 1 8:2 / /data rw,relatime - ext4 /dev/sda2 rw\n")
	want2 := `{device="/dev/sda1",device_error="",fstype="ext4",mountpoint="/"} 1
{device="/dev/sda2",device_error="",fstype="ext4",mountpoint="/data"} 0`
	if got := readonly(); got != want2 {
		t.Errorf("after the change, readonly:\n%s\nwant:\n%s", got, want2)
	}
}
