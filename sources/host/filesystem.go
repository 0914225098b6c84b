package host

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

const (
	filesystemDefaultMountPointsExclude = `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`
	filesystemDefaultFSTypesExclude     = `^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$`
	filesystemStuckError                = "mountpoint timeout"
)

func init() {
	Register(Spec{
		Name:           "filesystem",
		DefaultEnabled: true,
		Options: []Option{
			{Name: "mount-points-exclude", Default: filesystemDefaultMountPointsExclude, Help: "Regexp of mount points to exclude for filesystem collector. (mutually exclusive to mount-points-include)"},
			{Name: "mount-points-include", Help: "Regexp of mount points to include for filesystem collector. (mutually exclusive to mount-points-exclude)"},
			{Name: "ignored-mount-points", Help: "Regexp of mount points to ignore for filesystem collector."},
			{Name: "fs-types-exclude", Default: filesystemDefaultFSTypesExclude, Help: "Regexp of filesystem types to exclude for filesystem collector. (mutually exclusive to fs-types-include)"},
			{Name: "fs-types-include", Help: "Regexp of filesystem types to exclude for filesystem collector. (mutually exclusive to fs-types-exclude)"},
			{Name: "ignored-fs-types", Help: "Regexp of filesystem types to ignore for filesystem collector."},
			{Name: "mount-timeout", Default: "5s", Help: "how long to wait for a mount to respond before marking it as stale"},
			{Name: "stat-workers", Default: "4", Help: "how many stat calls to process simultaneously"},
		},
		New: newFilesystemCollector,
	})
}

type filesystemLabels struct {
	device, mountPoint, fsType, major, minor, deviceError string
}

type filesystemStats struct {
	labels                        filesystemLabels
	size, free, avail, files, ffr float64
	ro, deviceError               float64
}

type filesystemCollector struct {
	fs            procfs.FS
	root          string
	mountPoints   *nameFilter
	fsTypes       *nameFilter
	timeout       time.Duration
	workers       int
	logger        *slog.Logger
	statfs        func(path string, buf *unix.Statfs_t) error
	size, free    *prometheus.Desc
	avail, files  *prometheus.Desc
	filesFree, ro *prometheus.Desc
	deviceError   *prometheus.Desc
	mountInfo     *prometheus.Desc

	// stuck holds the mount points whose statfs outlived the timeout and
	// has not returned yet; they are not statted again until it does, so a
	// dead NFS server costs one blocked goroutine, not one per scrape.
	mu    sync.Mutex
	stuck map[string]struct{}

	// The last mount table read (<procfs>/1/mountinfo) and what it gave;
	// the slice is only read once returned.
	mountsMu   sync.Mutex
	mountinfo  string
	mountsBuf  []byte
	mountsKey  []byte
	mountsLast []filesystemMount
	mountsOK   bool
}

// filesystemFilter builds a mount point or fs type filter the way
// node_exporter does: a deprecated flag replaces the default exclude, an
// include alone drops the default exclude.
func filesystemFilter(env *Env, what, defaultExclude string) (*nameFilter, error) {
	oldName := map[string]string{"mount-points": "ignored-mount-points", "fs-types": "ignored-fs-types"}[what]
	return optionFilter(env, what+"-exclude", what+"-include", oldName, defaultExclude)
}

func newFilesystemCollector(env *Env) (Collector, error) {
	fs, err := procfs.NewFS(env.Paths.Proc)
	if err != nil {
		return nil, fmt.Errorf("failed to open procfs: %w", err)
	}
	mountPoints, err := filesystemFilter(env, "mount-points", filesystemDefaultMountPointsExclude)
	if err != nil {
		return nil, fmt.Errorf("unable to parse mount points filter flags: %w", err)
	}
	fsTypes, err := filesystemFilter(env, "fs-types", filesystemDefaultFSTypesExclude)
	if err != nil {
		return nil, fmt.Errorf("unable to parse fs types filter flags: %w", err)
	}
	timeout, err := time.ParseDuration(env.Option("mount-timeout"))
	if err != nil || timeout <= 0 {
		return nil, fmt.Errorf("filesystem: bad mount-timeout %q", env.Option("mount-timeout"))
	}
	workers, err := strconv.Atoi(env.Option("stat-workers"))
	if err != nil {
		return nil, fmt.Errorf("filesystem: bad stat-workers %q", env.Option("stat-workers"))
	}
	labels := []string{"device", "mountpoint", "fstype", "device_error"}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "filesystem", name), help, labels, nil)
	}
	return &filesystemCollector{
		fs:          fs,
		mountinfo:   env.Paths.ProcPath("1", "mountinfo"),
		root:        env.Paths.Root,
		mountPoints: mountPoints,
		fsTypes:     fsTypes,
		timeout:     timeout,
		workers:     max(workers, 1),
		logger:      env.Logger,
		statfs:      unix.Statfs,
		size:        d("size_bytes", "Filesystem size in bytes."),
		free:        d("free_bytes", "Filesystem free space in bytes."),
		avail:       d("avail_bytes", "Filesystem space available to non-root users in bytes."),
		files:       d("files", "Filesystem total file nodes."),
		filesFree:   d("files_free", "Filesystem total free file nodes."),
		ro:          d("readonly", "Filesystem read-only status."),
		deviceError: d("device_error", "Whether an error occurred while getting statistics for the given device."),
		mountInfo: prometheus.NewDesc(prometheus.BuildFQName(namespace, "filesystem", "mount_info"),
			"Filesystem mount information.", []string{"device", "major", "minor", "mountpoint"}, nil),
		stuck: map[string]struct{}{},
	}, nil
}

func (c *filesystemCollector) Update(ch chan<- prometheus.Metric) error {
	stats, err := c.stats()
	if err != nil {
		return err
	}
	// A filesystem mounted twice at the same place is reported once.
	seen := make(map[filesystemLabels]struct{}, len(stats))
	for _, s := range stats {
		if _, dup := seen[s.labels]; dup {
			continue
		}
		seen[s.labels] = struct{}{}
		l := s.labels
		ch <- newMetric(c.deviceError, prometheus.GaugeValue, s.deviceError, l.device, l.mountPoint, l.fsType, l.deviceError)
		ch <- newMetric(c.ro, prometheus.GaugeValue, s.ro, l.device, l.mountPoint, l.fsType, l.deviceError)
		if s.deviceError > 0 {
			continue
		}
		ch <- newMetric(c.size, prometheus.GaugeValue, s.size, l.device, l.mountPoint, l.fsType, l.deviceError)
		ch <- newMetric(c.free, prometheus.GaugeValue, s.free, l.device, l.mountPoint, l.fsType, l.deviceError)
		ch <- newMetric(c.avail, prometheus.GaugeValue, s.avail, l.device, l.mountPoint, l.fsType, l.deviceError)
		ch <- newMetric(c.files, prometheus.GaugeValue, s.files, l.device, l.mountPoint, l.fsType, l.deviceError)
		ch <- newMetric(c.filesFree, prometheus.GaugeValue, s.ffr, l.device, l.mountPoint, l.fsType, l.deviceError)
		ch <- newMetric(c.mountInfo, prometheus.GaugeValue, 1, l.device, l.major, l.minor, l.mountPoint)
	}
	return nil
}

// filesystemMount is one mount to stat.
type filesystemMount struct {
	labels filesystemLabels
	ro     bool
}

func (c *filesystemCollector) stats() ([]filesystemStats, error) {
	mounts, err := c.mounts()
	if err != nil {
		return nil, err
	}
	out := make([]filesystemStats, len(mounts))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(c.workers, len(mounts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = c.stat(mounts[i])
			}
		}()
	}
	for i := range mounts {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, nil
}

// mounts lists the mounts to report, from <procfs>/1/mountinfo: init's
// mount namespace, which is the host's when procfs is the host's.
func (c *filesystemCollector) mounts() ([]filesystemMount, error) {
	// The mount table seldom changes, and parsing it (procfs splits
	// every mount's options into maps) cost more than reading it: the
	// last parse is reused while the file reads the same.
	c.mountsMu.Lock()
	defer c.mountsMu.Unlock()
	var err error
	c.mountsBuf, err = readFileInto(c.mountinfo, c.mountsBuf)
	if err != nil {
		c.mountsOK = false
		return c.parseMounts()
	}
	if c.mountsOK && bytes.Equal(c.mountsBuf, c.mountsKey) {
		return c.mountsLast, nil
	}
	m, err := c.parseMounts()
	if err != nil {
		c.mountsOK = false
		return nil, err
	}
	c.mountsKey = append(c.mountsKey[:0], c.mountsBuf...)
	c.mountsLast, c.mountsOK = m, true
	if cap(c.mountsBuf) > 1<<20 {
		c.mountsBuf, c.mountsKey = nil, nil
		c.mountsOK = false
	}
	return m, nil
}

// parseMounts reads and parses the mount table with procfs.
func (c *filesystemCollector) parseMounts() ([]filesystemMount, error) {
	infos, err := c.fs.GetProcMounts(1)
	if errors.Is(err, os.ErrNotExist) {
		// /proc/1 is hidden with hidepid.
		c.logger.Debug("Reading root mounts failed, falling back to self mounts", "err", err)
		infos, err = c.fs.GetMounts()
	}
	if err != nil {
		return nil, err
	}
	var mounts []filesystemMount
	for _, m := range infos {
		major, minor, ok := strings.Cut(m.MajorMinorVer, ":")
		if _, err1 := strconv.Atoi(major); !ok || err1 != nil {
			return nil, fmt.Errorf("malformed mount point MajorMinorVer: %q", m.MajorMinorVer)
		}
		if _, err2 := strconv.Atoi(minor); err2 != nil {
			return nil, fmt.Errorf("malformed mount point MajorMinorVer: %q", m.MajorMinorVer)
		}
		// fstab(5) escapes of space and tab.
		mp := strings.ReplaceAll(strings.ReplaceAll(m.MountPoint, `\040`, " "), `\011`, "\t")
		mp = c.stripRoot(mp)
		if c.mountPoints.ignored(mp) {
			c.logger.Debug("Ignoring mount point", "mountpoint", mp)
			continue
		}
		if c.fsTypes.ignored(m.FSType) {
			c.logger.Debug("Ignoring fs type", "type", m.FSType)
			continue
		}
		// Read-only when either the mount or its superblock is.
		_, roMount := m.Options["ro"]
		_, roSuper := m.SuperOptions["ro"]
		mounts = append(mounts, filesystemMount{
			labels: filesystemLabels{device: m.Source, mountPoint: mp, fsType: m.FSType, major: major, minor: minor},
			ro:     roMount || roSuper,
		})
	}
	return mounts, nil
}

// stripRoot makes a mount point under --path.rootfs relative to it, so that
// in a container with the host's / at /host, /host/var is reported as /var.
func (c *filesystemCollector) stripRoot(mp string) string {
	if c.root == "/" || c.root == "" {
		return mp
	}
	s := strings.TrimPrefix(mp, c.root)
	if s == "" {
		return "/"
	}
	return s
}

func (c *filesystemCollector) stat(m filesystemMount) filesystemStats {
	s := filesystemStats{labels: m.labels}
	if m.ro {
		s.ro = 1
	}
	mp := m.labels.mountPoint
	c.mu.Lock()
	_, stuck := c.stuck[mp]
	c.mu.Unlock()
	if stuck {
		c.logger.Debug("Mount point is in an unresponsive state", "mountpoint", mp)
		s.labels.deviceError, s.deviceError = filesystemStuckError, 1
		return s
	}

	path := filepath.Join(c.root, mp)
	type result struct {
		buf unix.Statfs_t
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.err = c.statfs(path, &r.buf)
		c.mu.Lock()
		if _, ok := c.stuck[mp]; ok {
			c.logger.Debug("Mount point has recovered, monitoring will resume", "mountpoint", mp)
			delete(c.stuck, mp)
		}
		done <- r // buffered: never blocks, even after the timeout
		c.mu.Unlock()
	}()
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	var r result
	select {
	case r = <-done:
	case <-timer.C:
		c.mu.Lock()
		select {
		case r = <-done: // returned just as the timer fired
		default:
			c.logger.Debug("Mount point timed out, it is being labeled as stuck and will not be monitored", "mountpoint", mp)
			c.stuck[mp] = struct{}{}
			r.err = errors.New(filesystemStuckError)
		}
		c.mu.Unlock()
	}
	if r.err != nil {
		c.logger.Debug("Error on statfs() system call", "rootfs", path, "err", r.err)
		s.labels.deviceError, s.deviceError = r.err.Error(), 1
		return s
	}
	bs := float64(r.buf.Bsize)
	s.size = float64(r.buf.Blocks) * bs
	s.free = float64(r.buf.Bfree) * bs
	s.avail = float64(r.buf.Bavail) * bs
	s.files = float64(r.buf.Files)
	s.ffr = float64(r.buf.Ffree)
	return s
}
