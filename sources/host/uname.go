package host

import (
	"bytes"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

func init() {
	Register(Spec{Name: "uname", DefaultEnabled: true, New: newUnameCollector})
}

// unameCollector reports the uname system call. Like node_exporter it asks
// the kernel even when rootfs points elsewhere: in a container sharing the
// host's UTS namespace (network_mode/uts: host) that is the host's name.
type unameCollector struct {
	desc *prometheus.Desc
}

func newUnameCollector(*Env) (Collector, error) {
	return &unameCollector{desc: prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "uname", "info"),
		"Labeled system information as provided by the uname system call.",
		[]string{"sysname", "release", "version", "machine", "nodename", "domainname"}, nil)}, nil
}

func (c *unameCollector) Update(ch chan<- prometheus.Metric) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return err
	}
	ch <- newMetric(c.desc, prometheus.GaugeValue, 1,
		cstring(u.Sysname[:]), cstring(u.Release[:]), cstring(u.Version[:]),
		cstring(u.Machine[:]), cstring(u.Nodename[:]), cstring(u.Domainname[:]))
	return nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
