package host

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilhq/vigil/internal/dockertest"
)

// heldFd returns the descriptor path is held with, or -1.
func heldFd(path string) int {
	held.Lock()
	defer held.Unlock()
	if f := held.m[path]; f != nil {
		return f.fd
	}
	return -1
}

// A procfs file read through its held descriptor shows the current
// content, not the content when it was opened. /proc/thread-self/comm is
// the one whose content the test controls: the thread's name.
func TestHeldFileReadsCurrentContent(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	path := "/proc/thread-self/comm"
	setName := func(name string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(name), 0); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string {
		t.Helper()
		b, err := readFileInto(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	setName("vigil-one")
	if got := read(); got != "vigil-one" {
		t.Fatalf("first read %q", got)
	}
	fd := heldFd(path)
	if fd < 0 {
		t.Fatal("a procfs file read once is not held")
	}
	setName("vigil-two")
	if got := read(); got != "vigil-two" {
		t.Fatalf("held descriptor read %q after the name changed to vigil-two", got)
	}
	if heldFd(path) != fd {
		t.Fatal("the second read did not use the held descriptor")
	}

	// A held descriptor that fails (here: closed behind its back, as a
	// device's files fail once it is removed) is dropped, and the path is
	// opened afresh.
	unix.Close(fd)
	setName("vigil-three")
	if got := read(); got != "vigil-three" {
		t.Fatalf("after the held descriptor failed, read %q", got)
	}
	if heldFd(path) < 0 {
		t.Fatal("the path was not held again after a fresh open")
	}
}

// Regular files are never held: a file replaced under the same name (a
// fixture tree, a file written atomically) is read anew.
func TestRegularFilesNotHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	for _, content := range []string{"one\n", "two\n"} {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		b, err := readFileInto(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != content {
			t.Fatalf("read %q, want %q", b, content)
		}
		if heldFd(path) >= 0 {
			t.Fatal("a regular file is held")
		}
	}
	if _, err := readFileInto(filepath.Join(t.TempDir(), "missing"), nil); !os.IsNotExist(err) {
		t.Fatalf("missing file: %v", err)
	}
}

// netnsChildEnv marks the test binary re-run inside its own network and
// mount namespaces.
const netnsChildEnv = "VIGIL_TEST_NETNS_CHILD"

// The netclass collector keeps a device's attribute files open between
// scrapes. On a real sysfs, in a network namespace of the test's own (so
// the host's interfaces, and other tests reading them, are untouched): a
// value changed between scrapes is read, a device renamed or replaced by
// another of the same name is read afresh, a removed one disappears, and
// Close releases every held file.
func TestNetclassHeldFilesFollowDevices(t *testing.T) {
	if os.Getenv(netnsChildEnv) != "" {
		netclassHeldChild(t)
		return
	}
	if os.Geteuid() != 0 {
		dockertest.Missing(t, "root is needed to create a network namespace and interfaces in it")
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			dockertest.Missing(t, "%s is not installed (util-linux, iproute2)", tool)
		}
	}
	cmd := exec.Command("unshare", "--net", "--mount", "--propagation", "private",
		os.Args[0], "-test.run", "^TestNetclassHeldFilesFollowDevices$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), netnsChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("in a network namespace of its own: %v\n%s", err, out)
	}
}

func netclassHeldChild(t *testing.T) {
	sys := t.TempDir()
	if err := unix.Mount("sysfs", sys, "sysfs", 0, ""); err != nil {
		t.Fatalf("mounting sysfs for the namespace: %v", err)
	}
	defer unix.Unmount(sys, unix.MNT_DETACH)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	c := newCollector(t, "netclass", Paths{Sys: sys}, nil).(*netclassCollector)
	if !c.holdable {
		t.Fatal("sysfs is not recognised as sysfs")
	}
	scrape := func() map[string]*netclassIface {
		t.Helper()
		if err := c.Update(make(chan prometheus.Metric, 1000)); err != nil {
			t.Fatal(err)
		}
		return c.last
	}
	ip("link", "add", "vg0", "type", "veth", "peer", "name", "vg1")
	ip("link", "set", "vg0", "mtu", "1400")
	got := scrape()
	if got["vg0"] == nil || got["vg0"].ints[ncMTU] != 1400 || c.held["vg0"] == nil {
		t.Fatalf("vg0 not read or not held: %+v", got["vg0"])
	}
	firstIndex := got["vg0"].ints[ncIfIndex]

	ip("link", "set", "vg0", "mtu", "1300", "alias", "tenant-a")
	got = scrape()
	if v := got["vg0"]; v.ints[ncMTU] != 1300 || v.strs[ncIfAlias] != "tenant-a" {
		t.Fatalf("held files read mtu %d alias %q, want 1300 and tenant-a", v.ints[ncMTU], v.strs[ncIfAlias])
	}

	// Another device takes vg0's name: its values, not the old device's.
	ip("link", "set", "vg0", "name", "vg2")
	ip("link", "add", "vg0", "type", "veth", "peer", "name", "vg3")
	got = scrape()
	if v := got["vg0"]; v == nil || v.ints[ncIfIndex] == firstIndex || v.ints[ncMTU] != 1500 || v.strs[ncIfAlias] != "" {
		t.Fatalf("vg0 replaced by a new device, read %+v (the old one had ifindex %d)", v, firstIndex)
	}
	if v := got["vg2"]; v == nil || v.ints[ncIfIndex] != firstIndex || v.ints[ncMTU] != 1300 {
		t.Fatalf("the renamed device vg2 read %+v", v)
	}

	// Removed devices are gone, and their files closed.
	heldNow := func() (n int) {
		for _, h := range c.held {
			for _, fd := range h.fds {
				if fd >= 0 {
					n++
				}
			}
		}
		return n
	}
	before, heldBefore := openFds(t), heldNow()
	ip("link", "del", "vg2") // and its peer vg1
	got = scrape()
	if got["vg2"] != nil || got["vg1"] != nil || got["vg3"] == nil || c.held["vg2"] != nil || c.held["vg1"] != nil {
		t.Fatalf("after deleting vg2 and vg1: read %v, held %v", keys(got), keys(c.held))
	}
	if after := openFds(t); after != before-(heldBefore-heldNow()) {
		t.Fatalf("open descriptors: %d before, %d after two devices were removed; %d held files released", before, after, heldBefore-heldNow())
	}
	before, heldBefore = openFds(t), heldNow()
	if heldBefore == 0 {
		t.Fatal("nothing held before Close")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if len(c.held) != 0 || openFds(t) != before-heldBefore {
		t.Fatalf("Close left %d devices held, %d of %d descriptors open", len(c.held), openFds(t), before-heldBefore)
	}
}

func openFds(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func keys[V any](m map[string]V) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return fmt.Sprint(out)
}
