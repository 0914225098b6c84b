package host

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// linkStats is one network device's counters as the kernel keeps them
// (struct rtnl_link_stats64), indexed by the linkStat* constants.
type linkStats [linkStatCount]uint64

// The fields of struct rtnl_link_stats64 (include/uapi/linux/if_link.h),
// in the kernel's order.
const (
	linkRxPackets = iota
	linkTxPackets
	linkRxBytes
	linkTxBytes
	linkRxErrors
	linkTxErrors
	linkRxDropped
	linkTxDropped
	linkMulticast
	linkCollisions
	linkRxLengthErrors
	linkRxOverErrors
	linkRxCRCErrors
	linkRxFrameErrors
	linkRxFIFOErrors
	linkRxMissedErrors
	linkTxAbortedErrors
	linkTxCarrierErrors
	linkTxFIFOErrors
	linkTxHeartbeatErrors
	linkTxWindowErrors
	linkRxCompressed
	linkTxCompressed
	linkRxNoHandler
	linkStatCount
)

// netlinkSeq numbers the requests of this process.
var netlinkSeq atomic.Uint32

// netlinkLinks is a reusable RTM_GETLINK dump: one request for every
// device of the process's network namespace, as node_exporter's netdev
// collector does with --collector.netdev.netlink (its default). The
// answer carries each device's counters, rx_nohandler among them, which
// /proc/net/dev lacks. It is cheaper than /proc/net/dev too: a handful
// of syscalls and binary counters instead of a text table to parse.
type netlinkLinks struct {
	buf   []byte
	names map[string]string // interned device names, so a steady host allocates none
}

// dump calls f for every device with a name and counters. A device whose
// kernel reports only 32-bit counters (IFLA_STATS) gets them widened, as
// node_exporter does.
func (n *netlinkLinks) dump(f func(name string, s *linkStats)) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return os.NewSyscallError("netlink socket", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return os.NewSyscallError("netlink bind", err)
	}
	seq := netlinkSeq.Add(1)
	// struct nlmsghdr followed by struct ifinfomsg (family AF_UNSPEC).
	var req [unix.SizeofNlMsghdr + unix.SizeofIfInfomsg]byte
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.RTM_GETLINK)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	if err := unix.Sendto(fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return os.NewSyscallError("netlink sendto", err)
	}
	if n.buf == nil {
		// The kernel fills dump answers up to 32 KiB (more with a large
		// page size); a bigger buffer never truncates one.
		n.buf = make([]byte, 64<<10)
	}
	if n.names == nil {
		n.names = map[string]string{}
	}
	for {
		r, _, err := unix.Recvfrom(fd, n.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("netlink recvfrom", err)
		}
		done, err := n.parse(n.buf[:r], seq, f)
		if err != nil || done {
			return err
		}
	}
}

// parse walks one datagram of the dump; done is set at NLMSG_DONE.
func (n *netlinkLinks) parse(b []byte, seq uint32, f func(name string, s *linkStats)) (done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return false, fmt.Errorf("netlink: malformed message (length %d of %d bytes)", l, len(b))
		}
		msgSeq := ne.Uint32(b[8:])
		msg := b[unix.SizeofNlMsghdr:l]
		b = b[min(nlmAlign(l), len(b)):]
		if msgSeq != seq {
			continue // not an answer to this request
		}
		switch typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if len(msg) >= 4 {
				if errno := int32(ne.Uint32(msg)); errno != 0 {
					return false, os.NewSyscallError("netlink RTM_GETLINK", unix.Errno(-errno))
				}
			}
			return true, nil
		case unix.RTM_NEWLINK:
			n.link(msg, f)
		}
	}
	return false, nil
}

func nlmAlign(l int) int { return (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
func rtaAlign(l int) int { return (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1) }

// link reads one RTM_NEWLINK message: struct ifinfomsg, then attributes.
func (n *netlinkLinks) link(msg []byte, f func(name string, s *linkStats)) {
	if len(msg) < unix.SizeofIfInfomsg {
		return
	}
	ne := binary.NativeEndian
	attrs := msg[unix.SizeofIfInfomsg:]
	var (
		name        []byte
		s           linkStats
		have64      bool
		have32      bool
		stats32Data []byte
	)
	for len(attrs) >= unix.SizeofRtAttr {
		l := int(ne.Uint16(attrs[0:]))
		typ := ne.Uint16(attrs[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < unix.SizeofRtAttr || l > len(attrs) {
			break
		}
		data := attrs[unix.SizeofRtAttr:l]
		attrs = attrs[min(rtaAlign(l), len(attrs)):]
		switch typ {
		case unix.IFLA_IFNAME:
			name = data
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
		case unix.IFLA_STATS64:
			// Older kernels send fewer fields (no rx_nohandler before
			// 4.6): those stay zero.
			for i := 0; i < linkStatCount && 8*i+8 <= len(data); i++ {
				s[i] = ne.Uint64(data[8*i:])
			}
			have64 = true
		case unix.IFLA_STATS:
			stats32Data, have32 = data, true
		}
	}
	if name == nil {
		return
	}
	if !have64 {
		if !have32 {
			return
		}
		for i := 0; i < linkStatCount && 4*i+4 <= len(stats32Data); i++ {
			s[i] = uint64(ne.Uint32(stats32Data[4*i:]))
		}
	}
	f(n.intern(name), &s)
}

// intern returns name as a string, reusing the one from earlier dumps.
func (n *netlinkLinks) intern(b []byte) string {
	if s, ok := n.names[string(b)]; ok { // no allocation: the compiler looks up b in place
		return s
	}
	if len(n.names) >= nameFilterMemoMax {
		clear(n.names)
	}
	s := string(b)
	n.names[s] = s
	return s
}
