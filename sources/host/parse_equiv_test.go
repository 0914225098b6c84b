package host

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/blockdevice"
)

// The hand parsers of the scrape path read what procfs (which
// node_exporter uses) reads from the same bytes: this host's files, and
// the fixture's.

// procSnapshots copies this host's /proc/<name> (and the fixture's) into
// a directory of its own, so both parsers read the same bytes.
func procSnapshots(t *testing.T, name string) []string {
	t.Helper()
	var dirs []string
	for _, src := range []string{filepath.Join("/proc", name), filepath.Join(fixtureDir(t), "proc", name)} {
		b, err := os.ReadFile(src)
		if err != nil {
			continue
		}
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	if len(dirs) == 0 {
		t.Skipf("no %s here", name)
	}
	return dirs
}

func TestProcStatParseMatchesProcfs(t *testing.T) {
	for _, dir := range procSnapshots(t, "stat") {
		fs, err := procfs.NewFS(dir)
		if err != nil {
			t.Fatal(err)
		}
		want, err := fs.Stat()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "stat"))
		var got procStat
		if err := parseProcStat(b, &got); err != nil {
			t.Fatal(err)
		}
		if got.intr != want.IRQTotal || got.ctxt != want.ContextSwitches || got.btime != want.BootTime ||
			got.processes != want.ProcessCreated || got.running != want.ProcessesRunning || got.blocked != want.ProcessesBlocked {
			t.Errorf("%s: got %+v, want %+v", dir, got, want)
		}
		si := want.SoftIRQ
		if got.softIRQ != [10]uint64{si.Hi, si.Timer, si.NetTx, si.NetRx, si.Block, si.BlockIoPoll, si.Tasklet, si.Sched, si.Hrtimer, si.Rcu} {
			t.Errorf("%s: softirq %v, want %+v", dir, got.softIRQ, si)
		}
		if len(got.cpus) != len(want.CPU) {
			t.Fatalf("%s: %d CPUs, want %d", dir, len(got.cpus), len(want.CPU))
		}
		for _, c := range got.cpus {
			w := want.CPU[c.id]
			if [10]float64{c.user, c.nice, c.system, c.idle, c.iowait, c.irq, c.softIRQ, c.steal, c.guest, c.guestNice} !=
				[10]float64{w.User, w.Nice, w.System, w.Idle, w.Iowait, w.IRQ, w.SoftIRQ, w.Steal, w.Guest, w.GuestNice} {
				t.Errorf("%s: cpu%d %+v, want %+v", dir, c.id, c, w)
			}
		}
	}
}

func TestDiskstatsParseMatchesProcfs(t *testing.T) {
	for _, dir := range procSnapshots(t, "diskstats") {
		fs, err := blockdevice.NewFS(dir, dir)
		if err != nil {
			t.Fatal(err)
		}
		want, err := fs.ProcDiskstats()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "diskstats"))
		got, err := parseProcDiskstats(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d devices, want %d", dir, len(got), len(want))
		}
		for i, g := range got {
			w := want[i]
			wv := [17]uint64{w.ReadIOs, w.ReadMerges, w.ReadSectors, w.ReadTicks, w.WriteIOs, w.WriteMerges, w.WriteSectors, w.WriteTicks,
				w.IOsInProgress, w.IOsTotalTicks, w.WeightedIOTicks, w.DiscardIOs, w.DiscardMerges, w.DiscardSectors, w.DiscardTicks,
				w.FlushRequestsCompleted, w.TimeSpentFlushing}
			if g.major != w.MajorNumber || g.minor != w.MinorNumber || g.name != w.DeviceName || g.count != w.IoStatsCount || g.v != wv {
				t.Errorf("%s: %+v, want %+v", dir, g, w)
			}
		}
	}
}

func TestUDPQueuesParseMatchesProcfs(t *testing.T) {
	for _, file := range []string{"udp", "udp6"} {
		for _, dir := range procSnapshots(t, filepath.Join("net", file)) {
			fs, err := procfs.NewFS(dir)
			if err != nil {
				t.Fatal(err)
			}
			read := fs.NetUDPSummary
			if file == "udp6" {
				read = fs.NetUDP6Summary
			}
			want, err := read()
			if err != nil {
				t.Fatal(err)
			}
			c := &udpQueuesCollector{}
			tx, rx, err := c.queues(filepath.Join(dir, "net", file))
			if err != nil {
				t.Fatal(err)
			}
			if tx != want.TxQueueLength || rx != want.RxQueueLength {
				t.Errorf("%s/net/%s: tx %d rx %d, want %d and %d", dir, file, tx, rx, want.TxQueueLength, want.RxQueueLength)
			}
		}
	}
}

func TestPressureParseMatchesProcfs(t *testing.T) {
	for _, res := range pressureResources {
		for _, dir := range procSnapshots(t, filepath.Join("pressure", res)) {
			fs, err := procfs.NewFS(dir)
			if err != nil {
				t.Fatal(err)
			}
			want, err := fs.PSIStatsForResource(res)
			if err != nil {
				t.Fatal(err)
			}
			c := &pressureCollector{}
			got, err := c.readPSI(filepath.Join(dir, "pressure", res))
			if err != nil {
				t.Fatal(err)
			}
			if got.hasSome != (want.Some != nil) || got.hasFull != (want.Full != nil) ||
				(want.Some != nil && got.some != want.Some.Total) || (want.Full != nil && got.full != want.Full.Total) {
				t.Errorf("%s/pressure/%s: %+v, want some %+v full %+v", dir, res, got, want.Some, want.Full)
			}
		}
	}
}
