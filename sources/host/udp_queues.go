package host

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

func init() {
	Register(Spec{Name: "udp_queues", DefaultEnabled: true, New: newUDPQueuesCollector})
}

type udpQueuesCollector struct {
	fs     procfs.FS
	desc   typedDesc
	logger *slog.Logger
}

func newUDPQueuesCollector(env *Env) (Collector, error) {
	fs, err := procfs.NewFS(env.Paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("failed to open procfs: %w", err)
	}
	return &udpQueuesCollector{
		fs: fs,
		desc: typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "udp", "queues"),
			"Number of allocated memory in the kernel for UDP datagrams in bytes.",
			[]string{"queue", "ip"}, nil), prometheus.GaugeValue},
		logger: env.Logger,
	}, nil
}

func (c *udpQueuesCollector) Update(ch chan<- prometheus.Metric) error {
	s4, err4 := c.fs.NetUDPSummary()
	if err4 == nil {
		ch <- c.desc.mustNewConstMetric(float64(s4.TxQueueLength), "tx", "v4")
		ch <- c.desc.mustNewConstMetric(float64(s4.RxQueueLength), "rx", "v4")
	} else if errors.Is(err4, os.ErrNotExist) {
		c.logger.Debug("not collecting ipv4 based metrics")
	} else {
		return fmt.Errorf("couldn't get udp queued bytes: %w", err4)
	}
	s6, err6 := c.fs.NetUDP6Summary()
	if err6 == nil {
		ch <- c.desc.mustNewConstMetric(float64(s6.TxQueueLength), "tx", "v6")
		ch <- c.desc.mustNewConstMetric(float64(s6.RxQueueLength), "rx", "v6")
	} else if errors.Is(err6, os.ErrNotExist) {
		c.logger.Debug("not collecting ipv6 based metrics")
	} else {
		return fmt.Errorf("couldn't get udp6 queued bytes: %w", err6)
	}
	if errors.Is(err4, os.ErrNotExist) && errors.Is(err6, os.ErrNotExist) {
		return ErrNoData
	}
	return nil
}
