package host

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	Register(Spec{Name: "udp_queues", DefaultEnabled: true, New: newUDPQueuesCollector})
}

type udpQueuesCollector struct {
	proc   Paths
	desc   typedDesc
	logger *slog.Logger

	mu  sync.Mutex
	buf []byte
}

func newUDPQueuesCollector(env *Env) (Collector, error) {
	return &udpQueuesCollector{
		proc: env.Paths,
		desc: typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "udp", "queues"),
			"Number of allocated memory in the kernel for UDP datagrams in bytes.",
			[]string{"queue", "ip"}, nil), prometheus.GaugeValue},
		logger: env.Logger,
	}, nil
}

func (c *udpQueuesCollector) Update(ch chan<- prometheus.Metric) error {
	missing := 0
	for _, v := range [...]struct{ ip, file string }{{"v4", "udp"}, {"v6", "udp6"}} {
		tx, rx, err := c.queues(c.proc.ProcPath("net", v.file))
		switch {
		case err == nil:
			ch <- c.desc.mustNewConstMetric(float64(tx), "tx", v.ip)
			ch <- c.desc.mustNewConstMetric(float64(rx), "rx", v.ip)
		case errors.Is(err, os.ErrNotExist):
			c.logger.Debug("not collecting ip" + v.ip + " based metrics")
			missing++
		default:
			return fmt.Errorf("couldn't get %s queued bytes: %w", v.file, err)
		}
	}
	if missing == 2 {
		return ErrNoData
	}
	return nil
}

// queues sums the tx_queue and rx_queue columns of /proc/net/udp or udp6,
// as procfs's NetUDPSummary (which node_exporter uses) does, without
// parsing every socket's addresses.
func (c *udpQueuesCollector) queues(path string) (tx, rx uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf, err = readFileInto(path, c.buf)
	if err != nil {
		return 0, 0, err
	}
	_, b := cutLine(c.buf) // the header
	for len(b) > 0 {
		var line []byte
		line, b = cutLine(b)
		var f [10][]byte
		rest := line
		n := 0
		for n < len(f) {
			if f[n], rest = cutField(rest); f[n] == nil {
				break
			}
			n++
		}
		if n < len(f) {
			return 0, 0, fmt.Errorf("%s: couldn't parse %q: less than 10 columns found", path, line)
		}
		t, r, ok := bytes.Cut(f[4], []byte(":"))
		if !ok {
			return 0, 0, fmt.Errorf("%s: couldn't parse %q (queues)", path, f[4])
		}
		tv, err1 := strconv.ParseUint(string(t), 16, 64)
		rv, err2 := strconv.ParseUint(string(r), 16, 64)
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("%s: couldn't parse %q (queues)", path, f[4])
		}
		tx += tv
		rx += rv
	}
	if cap(c.buf) > 1<<20 {
		c.buf = nil
	}
	return tx, rx, nil
}
