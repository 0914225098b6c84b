package host

import (
	"os"
	"testing"

	"github.com/prometheus/procfs/sysfs"
)

// The collector reads only the attributes it reports, with its own reader;
// on the live host (real sysfs, with its EINVAL and EOPNOTSUPP answers for
// links that are down) what it reads must be what procfs's netclass parser
// reads, which node_exporter uses.
func TestNetclassLiveMatchesProcfs(t *testing.T) {
	if _, err := os.Stat("/sys/class/net"); err != nil {
		t.Skip("no /sys/class/net")
	}
	fs, err := sysfs.NewFS("/sys")
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector(t, "netclass", Paths{Sys: "/sys"}, nil).(*netclassCollector)
	devices, err := fs.NetClassDevices()
	if err != nil {
		t.Fatal(err)
	}
	// Twice: the first read opens the attribute files, the second reads
	// them through the descriptors held open.
	for range 2 {
		checkNetclassLive(t, fs, c, devices)
	}
}

func checkNetclassLive(t *testing.T, fs sysfs.FS, c *netclassCollector, devices []string) {
	t.Helper()
	for _, dev := range devices {
		want, err := fs.NetClassByIface(dev)
		if err != nil {
			t.Fatalf("procfs: %s: %v", dev, err)
		}
		var got netclassIface
		if err := c.read(dev, &got); err != nil {
			t.Fatalf("%s: %v", dev, err)
		}
		ints := map[int]*int64{
			ncAddrAssignType: want.AddrAssignType, ncCarrier: want.Carrier, ncCarrierChanges: want.CarrierChanges,
			ncCarrierUpCount: want.CarrierUpCount, ncCarrierDownCount: want.CarrierDownCount, ncDevID: want.DevID,
			ncDormant: want.Dormant, ncFlags: want.Flags, ncIfIndex: want.IfIndex, ncIfLink: want.IfLink,
			ncLinkMode: want.LinkMode, ncMTU: want.MTU, ncNetDevGroup: want.NetDevGroup,
			ncNameAssignType: want.NameAssignType, ncSpeed: want.Speed, ncTxQueueLen: want.TxQueueLen, ncType: want.Type,
		}
		for i, w := range ints {
			switch {
			case (w != nil) != got.has[i]:
				t.Errorf("%s %s: present %v, procfs %v", dev, netclassIntAttrs[i], got.has[i], w != nil)
			case w != nil && *w != got.ints[i] && i != ncCarrierChanges && i != ncCarrierUpCount && i != ncCarrierDownCount:
				t.Errorf("%s %s = %d, procfs %d", dev, netclassIntAttrs[i], got.ints[i], *w)
			}
		}
		strs := map[int]string{ncAddress: want.Address, ncBroadcast: want.Broadcast, ncDuplex: want.Duplex, ncIfAlias: want.IfAlias, ncOperState: want.OperState}
		for i, w := range strs {
			if got.strs[i] != w {
				t.Errorf("%s %s = %q, procfs %q", dev, netclassStrAttrs[i], got.strs[i], w)
			}
		}
	}
}
