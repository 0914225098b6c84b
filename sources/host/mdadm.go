package host

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

func init() {
	Register(Spec{Name: "mdadm", DefaultEnabled: true, New: newMdadmCollector})
}

// mdadmStates are node_md_state's state label values, each with the
// activity state of /proc/mdstat that sets it to 1.
var mdadmStates = [...]struct{ label, activity string }{
	{"active", "active"},
	{"inactive", "inactive"},
	{"recovering", "recovering"},
	{"resync", "resyncing"},
	{"check", "checking"},
}

type mdadmCollector struct {
	proc     procfs.FS
	blockDir string // <sysfs>/block
	logger   *slog.Logger

	state        [len(mdadmStates)]typedDesc
	disks        typedDesc
	required     typedDesc
	blocks       typedDesc
	blocksSynced typedDesc
	raidDisks    typedDesc
	degraded     typedDesc
}

func newMdadmCollector(env *Env) (Collector, error) {
	proc, err := procfs.NewFS(env.Paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("mdadm: open procfs: %w", err)
	}
	d := func(name, help string, labels []string, constLabels prometheus.Labels) typedDesc {
		return typedDesc{prometheus.NewDesc(prometheus.BuildFQName(namespace, "md", name), help, labels, constLabels), prometheus.GaugeValue}
	}
	dev := []string{"device"}
	c := &mdadmCollector{
		proc:         proc,
		blockDir:     env.Paths.SysPath("block"),
		logger:       env.Logger,
		disks:        d("disks", "Number of active/failed/spare disks of device.", []string{"device", "state"}, nil),
		required:     d("disks_required", "Total number of disks of device.", dev, nil),
		blocks:       d("blocks", "Total number of blocks on device.", dev, nil),
		blocksSynced: d("blocks_synced", "Number of blocks synced on device.", dev, nil),
		raidDisks:    d("raid_disks", "Number of raid disks on device.", dev, nil),
		degraded:     d("degraded", "Number of degraded disks on device.", dev, nil),
	}
	for i, s := range mdadmStates {
		c.state[i] = d("state", "Indicates the state of md-device.", dev, prometheus.Labels{"state": s.label})
	}
	return c, nil
}

func (c *mdadmCollector) Update(ch chan<- prometheus.Metric) error {
	stats, err := c.proc.MDStat()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			c.logger.Debug("not collecting mdstat, file does not exist")
			return ErrNoData
		}
		return fmt.Errorf("error parsing mdstatus: %w", err)
	}
	for _, s := range stats {
		ch <- c.required.mustNewConstMetric(float64(s.DisksTotal), s.Name)
		ch <- c.disks.mustNewConstMetric(float64(s.DisksActive), s.Name, "active")
		ch <- c.disks.mustNewConstMetric(float64(s.DisksFailed), s.Name, "failed")
		ch <- c.disks.mustNewConstMetric(float64(s.DisksSpare), s.Name, "spare")
		for i, st := range mdadmStates {
			v := 0.0
			if s.ActivityState == st.activity {
				v = 1
			}
			ch <- c.state[i].mustNewConstMetric(v, s.Name)
		}
		ch <- c.blocks.mustNewConstMetric(float64(s.BlocksTotal), s.Name)
		ch <- c.blocksSynced.mustNewConstMetric(float64(s.BlocksSynced), s.Name)
	}

	raids, err := mdadmReadRaids(c.blockDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			c.logger.Debug("not collecting mdraid sysfs attributes", "err", err)
			return nil
		}
		return fmt.Errorf("error parsing mdraids: %w", err)
	}
	for _, r := range raids {
		// Disks is unknown for containers (imsm, ddf) and during some
		// reshapes; reporting 0 there would be wrong.
		if r.hasDisks {
			ch <- c.raidDisks.mustNewConstMetric(float64(r.disks), r.device)
		}
		ch <- c.degraded.mustNewConstMetric(float64(r.degraded), r.device)
	}
	return nil
}

// mdadmRaid holds the sysfs attributes of an md array that are exported.
type mdadmRaid struct {
	device   string
	disks    uint64
	hasDisks bool
	degraded uint64
}

// mdadmReadRaids reads <sysfs>/block/md*/md/{level,raid_disks,degraded}
// with the semantics of procfs' sysfs.Mdraids, which also reads about ten
// attributes per array that are not exported; reading only these three
// makes the collector several times cheaper.
func mdadmReadRaids(blockDir string) ([]mdadmRaid, error) {
	entries, err := os.ReadDir(blockDir)
	if err != nil {
		return nil, err
	}
	var out []mdadmRaid
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "md") {
			continue
		}
		dir := filepath.Join(blockDir, e.Name(), "md")
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		r := mdadmRaid{device: e.Name()}
		level, err := os.ReadFile(filepath.Join(dir, "level"))
		if err != nil {
			return out, err
		}
		lvl := strings.TrimSpace(string(level))
		switch lvl {
		case "container", "imsm", "ddf", "":
			// No member disks of their own, or unknown.
		default:
			raw, err := os.ReadFile(filepath.Join(dir, "raid_disks"))
			if err != nil {
				return out, fmt.Errorf("reading raid_disks for %s: %w", r.device, err)
			}
			content := strings.TrimSpace(string(raw))
			// During a reshape the file reads "current (previous)".
			if i := strings.IndexByte(content, ' '); i > 0 {
				content = content[:i]
			}
			if v, err := strconv.ParseUint(content, 10, 64); err == nil {
				r.disks, r.hasDisks = v, true
			}
		}
		switch lvl {
		case "raid1", "raid4", "raid5", "raid6", "raid10":
			v, err := readUint(filepath.Join(dir, "degraded"))
			if err != nil {
				return out, err
			}
			r.degraded = v
		}
		out = append(out, r)
	}
	return out, nil
}
