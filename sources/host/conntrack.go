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
	Register(Spec{Name: "conntrack", DefaultEnabled: true, New: newConntrackCollector})
}

type conntrackCollector struct {
	fs         procfs.FS
	countPath  string
	maxPath    string
	logger     *slog.Logger
	entries    typedDesc
	limit      typedDesc
	found      typedDesc
	invalid    typedDesc
	ignore     typedDesc
	insert     typedDesc
	insertFail typedDesc
	drop       typedDesc
	earlyDrop  typedDesc
	restart    typedDesc
}

func newConntrackCollector(env *Env) (Collector, error) {
	fs, err := procfs.NewFS(env.Paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("conntrack: open procfs: %w", err)
	}
	d := func(name, help string) typedDesc {
		return typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, nil, nil), prometheus.GaugeValue}
	}
	return &conntrackCollector{
		fs:         fs,
		countPath:  env.Paths.ProcPath("sys/net/netfilter/nf_conntrack_count"),
		maxPath:    env.Paths.ProcPath("sys/net/netfilter/nf_conntrack_max"),
		logger:     env.Logger,
		entries:    d("nf_conntrack_entries", "Number of currently allocated flow entries for connection tracking."),
		limit:      d("nf_conntrack_entries_limit", "Maximum size of connection tracking table."),
		found:      d("nf_conntrack_stat_found", "Number of searched entries which were successful."),
		invalid:    d("nf_conntrack_stat_invalid", "Number of packets seen which can not be tracked."),
		ignore:     d("nf_conntrack_stat_ignore", "Number of packets seen which are already connected to a conntrack entry."),
		insert:     d("nf_conntrack_stat_insert", "Number of entries inserted into the list."),
		insertFail: d("nf_conntrack_stat_insert_failed", "Number of entries for which list insertion was attempted but failed."),
		drop:       d("nf_conntrack_stat_drop", "Number of packets dropped due to conntrack failure."),
		earlyDrop:  d("nf_conntrack_stat_early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached."),
		restart:    d("nf_conntrack_stat_search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes."),
	}, nil
}

func (c *conntrackCollector) Update(ch chan<- prometheus.Metric) error {
	v, err := readUint(c.countPath)
	if err != nil {
		return c.handleErr(err)
	}
	ch <- c.entries.mustNewConstMetric(float64(v))
	if v, err = readUint(c.maxPath); err != nil {
		return c.handleErr(err)
	}
	ch <- c.limit.mustNewConstMetric(float64(v))

	stats, err := c.fs.ConntrackStat()
	if err != nil {
		return c.handleErr(err)
	}
	// One line per CPU; node_exporter reports the sums.
	var sum procfs.ConntrackStatEntry
	for _, s := range stats {
		sum.Found += s.Found
		sum.Invalid += s.Invalid
		sum.Ignore += s.Ignore
		sum.Insert += s.Insert
		sum.InsertFailed += s.InsertFailed
		sum.Drop += s.Drop
		sum.EarlyDrop += s.EarlyDrop
		sum.SearchRestart += s.SearchRestart
	}
	ch <- c.found.mustNewConstMetric(float64(sum.Found))
	ch <- c.invalid.mustNewConstMetric(float64(sum.Invalid))
	ch <- c.ignore.mustNewConstMetric(float64(sum.Ignore))
	ch <- c.insert.mustNewConstMetric(float64(sum.Insert))
	ch <- c.insertFail.mustNewConstMetric(float64(sum.InsertFailed))
	ch <- c.drop.mustNewConstMetric(float64(sum.Drop))
	ch <- c.earlyDrop.mustNewConstMetric(float64(sum.EarlyDrop))
	ch <- c.restart.mustNewConstMetric(float64(sum.SearchRestart))
	return nil
}

func (c *conntrackCollector) handleErr(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		c.logger.Debug("conntrack probably not loaded")
		return ErrNoData
	}
	return fmt.Errorf("failed to retrieve conntrack stats: %w", err)
}
