package host

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// netdevValues gathers a netdev collector into family -> device -> value.
func netdevValues(t *testing.T, opts map[string]string) map[string]map[string]float64 {
	t.Helper()
	c := newCollector(t, "netdev", Paths{Proc: "/proc"}, opts)
	out := map[string]map[string]float64{}
	for name, mf := range collect(t, c) {
		out[name] = map[string]float64{}
		for _, m := range mf.GetMetric() {
			out[name][m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// Over netlink the legacy names carry what /proc/net/dev prints (the
// kernel sums the same counters into its columns), plus receive_nohandler.
// Counters only grow, so netlink read before and after /proc/net/dev
// brackets it.
func TestNetdevNetlinkMatchesProcNetDev(t *testing.T) {
	if _, err := procfs.NewDefaultFS(); err != nil {
		t.Skip("no /proc")
	}
	before := netdevValues(t, nil)
	proc := netdevValues(t, map[string]string{"netlink": "false"})
	after := netdevValues(t, nil)
	if len(before) != len(proc)+1 {
		t.Errorf("netlink: %d families, /proc/net/dev: %d; want one more (receive_nohandler)", len(before), len(proc))
	}
	if _, ok := before["node_network_receive_nohandler_total"]; !ok {
		t.Error("no node_network_receive_nohandler_total over netlink")
	}
	for fam, devs := range proc {
		for dev, v := range devs {
			lo, ok1 := before[fam][dev]
			hi, ok2 := after[fam][dev]
			if !ok1 || !ok2 {
				// A device that came or went between the reads.
				continue
			}
			if v < lo || v > hi {
				t.Errorf("%s{device=%q}: /proc/net/dev %v, netlink %v before and %v after", fam, dev, v, lo, hi)
			}
		}
	}
}

func TestNetdevNetlinkDetailed(t *testing.T) {
	got := netdevValues(t, map[string]string{"enable-detailed-metrics": "true", "device-include": "^lo$"})
	if len(got) != 24 {
		t.Errorf("%d families, want node_exporter's 24", len(got))
	}
	for _, fam := range []string{"node_network_receive_missed_errors_total", "node_network_transmit_heartbeat_errors_total", "node_network_receive_nohandler_total", "node_network_multicast_total"} {
		if _, ok := got[fam]["lo"]; !ok {
			t.Errorf("no %s{device=\"lo\"}", fam)
		}
	}
}

// nlMsg builds one netlink message of type typ with body.
func nlMsg(typ uint16, seq uint32, body []byte) []byte {
	b := make([]byte, unix.SizeofNlMsghdr, nlmAlign(unix.SizeofNlMsghdr+len(body)))
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(unix.SizeofNlMsghdr+len(body)))
	ne.PutUint16(b[4:], typ)
	ne.PutUint32(b[8:], seq)
	b = append(b, body...)
	return b[:cap(b)]
}

func rtAttr(typ uint16, data []byte) []byte {
	b := make([]byte, unix.SizeofRtAttr, rtaAlign(unix.SizeofRtAttr+len(data)))
	binary.NativeEndian.PutUint16(b[0:], uint16(unix.SizeofRtAttr+len(data)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, data...)
	return b[:cap(b)]
}

func counters(width, n int) []byte {
	b := make([]byte, width*n)
	for i := range n {
		if width == 8 {
			binary.NativeEndian.PutUint64(b[8*i:], uint64(i+1))
		} else {
			binary.NativeEndian.PutUint32(b[4*i:], uint32(i+1))
		}
	}
	return b
}

func TestNetlinkParse(t *testing.T) {
	link := func(attrs ...[]byte) []byte {
		b := make([]byte, unix.SizeofIfInfomsg)
		for _, a := range attrs {
			b = append(b, a...)
		}
		return b
	}
	var dgram []byte
	// 64-bit counters of an old kernel: 23 fields, no rx_nohandler.
	dgram = append(dgram, nlMsg(unix.RTM_NEWLINK, 7, link(rtAttr(unix.IFLA_IFNAME, []byte("eth0\x00")), rtAttr(unix.IFLA_STATS64, counters(8, 23))))...)
	// Only 32-bit counters.
	dgram = append(dgram, nlMsg(unix.RTM_NEWLINK, 7, link(rtAttr(unix.IFLA_STATS, counters(4, 24)), rtAttr(unix.IFLA_IFNAME, []byte("old\x00"))))...)
	// No counters at all: skipped.
	dgram = append(dgram, nlMsg(unix.RTM_NEWLINK, 7, link(rtAttr(unix.IFLA_IFNAME, []byte("bare\x00"))))...)
	// Another request's answer: ignored.
	dgram = append(dgram, nlMsg(unix.RTM_NEWLINK, 8, link(rtAttr(unix.IFLA_IFNAME, []byte("stray\x00")), rtAttr(unix.IFLA_STATS64, counters(8, 24))))...)
	dgram = append(dgram, nlMsg(unix.NLMSG_DONE, 7, make([]byte, 4))...)

	var n netlinkLinks
	n.names = map[string]string{}
	got := map[string]linkStats{}
	done, err := n.parse(dgram, 7, func(name string, s *linkStats) { got[name] = *s })
	if err != nil || !done {
		t.Fatalf("parse: done %v, err %v", done, err)
	}
	if len(got) != 2 {
		t.Fatalf("devices %v, want eth0 and old", got)
	}
	if s := got["eth0"]; s[linkRxPackets] != 1 || s[linkTxCompressed] != 23 || s[linkRxNoHandler] != 0 {
		t.Errorf("eth0 = %v", s)
	}
	if s := got["old"]; s[linkRxPackets] != 1 || s[linkRxNoHandler] != 24 {
		t.Errorf("old = %v", s)
	}

	errBody := make([]byte, 4+unix.SizeofNlMsghdr)
	eperm := -int32(unix.EPERM)
	binary.NativeEndian.PutUint32(errBody, uint32(eperm))
	_, err = n.parse(nlMsg(unix.NLMSG_ERROR, 7, errBody), 7, func(string, *linkStats) {})
	if !errors.Is(err, unix.EPERM) {
		t.Errorf("NLMSG_ERROR: err %v, want EPERM", err)
	}
	if _, err := n.parse(nlMsg(unix.RTM_NEWLINK, 7, nil), 7, func(string, *linkStats) {}); err != nil {
		t.Errorf("empty link message: %v", err)
	}
	bad := nlMsg(unix.RTM_NEWLINK, 7, nil)
	binary.NativeEndian.PutUint32(bad, 1000)
	if _, err := n.parse(bad, 7, func(string, *linkStats) {}); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("bad length: err %v", err)
	}
}
