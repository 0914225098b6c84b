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
	Register(Spec{Name: "sockstat", DefaultEnabled: true, New: newSockstatCollector})
}

// sockstatPageSize converts the mem fields, counted in pages, to bytes.
var sockstatPageSize = os.Getpagesize()

type sockstatCollector struct {
	fs     procfs.FS
	logger *slog.Logger
	used   *prometheus.Desc
	// Protocols come from the file; their descriptors are built on first
	// sight and kept.
	descs map[string]*prometheus.Desc
}

func newSockstatCollector(env *Env) (Collector, error) {
	fs, err := procfs.NewFS(env.Paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("failed to open procfs: %w", err)
	}
	return &sockstatCollector{
		fs:     fs,
		logger: env.Logger,
		used: prometheus.NewDesc(prometheus.BuildFQName(namespace, "sockstat", "sockets_used"),
			"Number of IPv4 sockets in use.", nil, nil),
		descs: map[string]*prometheus.Desc{},
	}, nil
}

func (c *sockstatCollector) Update(ch chan<- prometheus.Metric) error {
	// Either file is missing when its IP version is disabled.
	stat4, err := c.fs.NetSockstat()
	switch {
	case err == nil:
	case errors.Is(err, os.ErrNotExist):
		c.logger.Debug("IPv4 sockstat statistics not found, skipping")
	default:
		return fmt.Errorf("failed to get IPv4 sockstat data: %w", err)
	}
	stat6, err := c.fs.NetSockstat6()
	switch {
	case err == nil:
	case errors.Is(err, os.ErrNotExist):
		c.logger.Debug("IPv6 sockstat statistics not found, skipping")
	default:
		return fmt.Errorf("failed to get IPv6 sockstat data: %w", err)
	}
	if stat4 != nil && stat4.Used != nil {
		ch <- newMetric(c.used, prometheus.GaugeValue, float64(*stat4.Used))
	}
	c.update(ch, stat4)
	c.update(ch, stat6)
	return nil
}

func (c *sockstatCollector) update(ch chan<- prometheus.Metric, s *procfs.NetSockstat) {
	if s == nil {
		return
	}
	for i := range s.Protocols {
		p := &s.Protocols[i]
		c.send(ch, p.Protocol, "inuse", &p.InUse)
		c.send(ch, p.Protocol, "orphan", p.Orphan)
		c.send(ch, p.Protocol, "tw", p.TW)
		c.send(ch, p.Protocol, "alloc", p.Alloc)
		c.send(ch, p.Protocol, "mem", p.Mem)
		c.send(ch, p.Protocol, "memory", p.Memory)
		if p.Mem != nil {
			b := *p.Mem * sockstatPageSize
			c.send(ch, p.Protocol, "mem_bytes", &b)
		}
	}
}

func (c *sockstatCollector) send(ch chan<- prometheus.Metric, protocol, state string, v *int) {
	if v == nil {
		return
	}
	key := protocol + "_" + state
	d, ok := c.descs[key]
	if !ok {
		d = prometheus.NewDesc(prometheus.BuildFQName(namespace, "sockstat", key),
			fmt.Sprintf("Number of %s sockets in state %s.", protocol, state), nil, nil)
		c.descs[key] = d
	}
	ch <- newMetric(d, prometheus.GaugeValue, float64(*v))
}
