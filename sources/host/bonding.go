package host

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	Register(Spec{Name: "bonding", DefaultEnabled: true, New: newBondingCollector})
}

type bondingCollector struct {
	root          string // <sysfs>/class/net
	logger        *slog.Logger
	slaves, activ typedDesc
}

func newBondingCollector(env *Env) (Collector, error) {
	return &bondingCollector{
		root:   env.Paths.SysPath("class", "net"),
		logger: env.Logger,
		slaves: typedDesc{prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "bonding", "slaves"),
			"Number of configured slaves per bonding interface.", []string{"master"}, nil), prometheus.GaugeValue},
		activ: typedDesc{prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "bonding", "active"),
			"Number of active slaves per bonding interface.", []string{"master"}, nil), prometheus.GaugeValue},
	}, nil
}

func (c *bondingCollector) Update(ch chan<- prometheus.Metric) error {
	masters, err := os.ReadFile(filepath.Join(c.root, "bonding_masters"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			c.logger.Debug("not collecting bonding, file does not exist", "file", filepath.Join(c.root, "bonding_masters"))
			return ErrNoData
		}
		return fmt.Errorf("bonding: %w", err)
	}
	// Read everything first: node_exporter reports nothing when one master
	// fails, rather than a partial set.
	type status struct {
		master         string
		slaves, active int
	}
	var out []status
	for _, master := range strings.Fields(string(masters)) {
		s, a, err := c.masterStatus(master)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				c.logger.Debug("not collecting bonding, file does not exist", "err", err)
				return ErrNoData
			}
			return fmt.Errorf("bonding: %w", err)
		}
		out = append(out, status{master, s, a})
	}
	for _, s := range out {
		ch <- c.slaves.mustNewConstMetric(float64(s.slaves), s.master)
		ch <- c.activ.mustNewConstMetric(float64(s.active), s.master)
	}
	return nil
}

// masterStatus counts a master's slaves and those whose MII status is up.
func (c *bondingCollector) masterStatus(master string) (slaves, active int, err error) {
	list, err := os.ReadFile(filepath.Join(c.root, master, "bonding", "slaves"))
	if err != nil {
		return 0, 0, err
	}
	for _, slave := range strings.Fields(string(list)) {
		state, err := os.ReadFile(filepath.Join(c.root, master, "lower_"+slave, "bonding_slave", "mii_status"))
		if errors.Is(err, os.ErrNotExist) {
			// Older kernels name the link slave_<name>.
			state, err = os.ReadFile(filepath.Join(c.root, master, "slave_"+slave, "bonding_slave", "mii_status"))
		}
		if err != nil {
			return 0, 0, err
		}
		slaves++
		if strings.TrimSpace(string(state)) == "up" {
			active++
		}
	}
	return slaves, active, nil
}
