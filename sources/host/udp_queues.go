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
	missing := 0
	for _, v := range []struct {
		ip, file string
		read     func() (*procfs.NetUDPSummary, error)
	}{
		{"v4", "udp", c.fs.NetUDPSummary},
		{"v6", "udp6", c.fs.NetUDP6Summary},
	} {
		s, err := v.read()
		switch {
		case err == nil:
			ch <- c.desc.mustNewConstMetric(float64(s.TxQueueLength), "tx", v.ip)
			ch <- c.desc.mustNewConstMetric(float64(s.RxQueueLength), "rx", v.ip)
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
