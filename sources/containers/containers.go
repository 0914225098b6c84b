// Package containers is vigil's cAdvisor-compatible metrics source, the
// source type "containers": cAdvisor's container_* series, names, types,
// help text and units, for every running Docker container and for the
// root cgroup (id="/"), plus machine_cpu_cores and machine_memory_bytes.
//
// It reads the few cgroup v1 or v2 files each series needs, and each
// container's /proc/<pid>/net/dev, at scrape time: no housekeeping loop,
// no filesystem walk, a fixed set of files per container. Container
// metadata (name, image, labels, init pid, health) comes from the Docker
// Engine watcher the docker log source shares, kept current by the
// Engine's event stream.
//
// Series carry no explicit timestamps, unlike cAdvisor's: vigil reads at
// scrape time, so Prometheus's scrape timestamp is the time of the
// reading, and without explicit timestamps Prometheus writes staleness
// markers when a container's series disappear, so a stopped container
// drops out of instant queries at the next scrape instead of lingering
// for five minutes.
package containers

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/dockerengine"
	"github.com/vigilhq/vigil/internal/engineapi"
	"github.com/vigilhq/vigil/pipeline"
)

// Type is the source type in vigil's config.
const Type = "containers"

// Defaults: the host's own mounts. In a container with the host's
// filesystems under /host, point the keys at /host/sys/fs/cgroup,
// /host/proc, /host/sys and /host.
const (
	DefaultHost     = "unix:///var/run/docker.sock"
	DefaultCgroupfs = "/sys/fs/cgroup"
	DefaultProcfs   = "/proc"
	DefaultSysfs    = "/sys"
	DefaultRootfs   = "/"
)

// engineRecheck is how often a missing Docker socket is looked for again.
const engineRecheck = 10 * time.Second

func init() {
	pipeline.RegisterMetricsSource(Type, func(env pipeline.Env, node *yaml.Node) (prometheus.Collector, error) {
		var c Config
		if err := env.Decoder.Decode(node, &c); err != nil {
			return nil, err
		}
		if err := c.check(env.Decoder, node); err != nil {
			return nil, err
		}
		return New(c, env.Logger)
	})
}

// Config is the containers source's config.
type Config struct {
	// Host is the Docker Engine: a unix socket or a plain tcp:// address.
	Host     string `yaml:"host"`
	Cgroupfs string `yaml:"cgroupfs"`
	Procfs   string `yaml:"procfs"`
	Sysfs    string `yaml:"sysfs"`  // for machine_*'s system_uuid
	Rootfs   string `yaml:"rootfs"` // for machine_*'s machine_id
	// TenantLabel names the container label whose value is the tenant
	// label of its series; DefaultTenant is used where the label is
	// missing or empty, as in the docker log source. No tenant label is
	// set when both are empty.
	TenantLabel   string `yaml:"tenant_label"`
	DefaultTenant string `yaml:"default_tenant"`
	// LabelAllowlist lists the Docker label keys exposed as
	// container_label_<key>. Absent: every label, as cAdvisor's default
	// (--store_container_labels); an empty list: none.
	LabelAllowlist *[]string `yaml:"label_allowlist"`
}

func (c *Config) check(d pipeline.Decoder, node *yaml.Node) error {
	host := c.Host
	if host == "" {
		host = DefaultHost
	}
	u, err := engineapi.ParseHost(host)
	if err == nil && u.Scheme != "unix" && u.Scheme != "tcp" {
		err = fmt.Errorf("invalid docker host %q: scheme %q is not one of unix, tcp", host, u.Scheme)
	}
	if err != nil {
		return d.Errorf(pipeline.NodeAt(node, "host"), "%v", err)
	}
	for _, k := range []struct{ key, v string }{{"cgroupfs", c.Cgroupfs}, {"procfs", c.Procfs}, {"sysfs", c.Sysfs}, {"rootfs", c.Rootfs}} {
		if k.v != "" && !filepath.IsAbs(k.v) {
			return d.Errorf(pipeline.NodeAt(node, k.key), "%s must be an absolute path, not %q", k.key, k.v)
		}
	}
	if c.LabelAllowlist != nil {
		for i, k := range *c.LabelAllowlist {
			if k == "" {
				return d.Errorf(pipeline.NodeAt(node, "label_allowlist").Content[i], "empty label key")
			}
		}
	}
	return nil
}

// inventory is what the source needs of the Docker Engine watcher.
type inventory interface {
	Running() []dockerengine.Container
	Ready() bool
}

// inspector is the optional part of an inventory that tells a container's
// network mode: a container that joins another's network namespace
// (network_mode container:<id>) gets no network series, as in cAdvisor,
// since they would repeat the other container's.
type inspector interface {
	Inspect(ctx context.Context, id string) (container.InspectResponse, error)
}

// Source is the containers metrics source, a prometheus.Collector. Scrapes
// are serialized: each reuses the buffers and label sets of the last.
type Source struct {
	cfg    Config
	log    *slog.Logger
	warn   *pipeline.RateLimitedLogger
	layout *layout
	procfs string

	mu       sync.Mutex
	r        *reader
	open     func() (inventory, func(), error) // nil when an inventory was given
	inv      inventory
	closeInv func()
	nextOpen time.Time
	closed   bool
	allow    map[string]bool // nil: every label
	tracked  map[string]*tracked
	root     *tracked
	devs     *devNames
	machine  machineInfo
	gen      uint64
}

// tracked is one container as the source last saw it.
type tracked struct {
	id, name, image string
	labels          map[string]string
	pid             int
	health          string
	startedAt       float64
	cgroup          string
	g               group
	netPath         string // "" for no network series
	ls              *labelSet
	st              stats
	gen             uint64
}

// New builds the source: it detects the cgroup layout, reads the
// machine's static facts, and connects to the Docker Engine when its
// socket is there (and later, when it appears).
func New(c Config, logger *slog.Logger) (*Source, error) {
	if c.Host == "" {
		c.Host = DefaultHost
	}
	s, err := newSource(c, logger, nil)
	if err != nil {
		return nil, err
	}
	host := c.Host
	s.open = func() (inventory, func(), error) {
		if u, err := engineapi.ParseHost(host); err == nil && u.Scheme == "unix" {
			if _, err := os.Stat(u.Addr); err != nil {
				return nil, nil, err
			}
		}
		e, err := dockerengine.Open(host, s.log)
		if err != nil {
			return nil, nil, err
		}
		return e, e.Close, nil
	}
	s.mu.Lock()
	s.openInventory()
	s.mu.Unlock()
	return s, nil
}

// newSource builds a source over inv (nil: set open later).
func newSource(c Config, logger *slog.Logger, inv inventory) (*Source, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&c.Cgroupfs, DefaultCgroupfs)
	def(&c.Procfs, DefaultProcfs)
	def(&c.Sysfs, DefaultSysfs)
	def(&c.Rootfs, DefaultRootfs)
	l, err := detectLayout(c.Cgroupfs)
	if err != nil {
		return nil, err
	}
	s := &Source{
		cfg: c, log: logger, warn: pipeline.NewRateLimitedLogger(logger, time.Minute),
		layout: l, procfs: c.Procfs, r: newReader(), inv: inv,
		tracked: map[string]*tracked{},
		devs:    &devNames{path: filepath.Join(c.Procfs, "partitions")},
		machine: readMachine(c),
	}
	if c.LabelAllowlist != nil {
		s.allow = map[string]bool{}
		for _, k := range *c.LabelAllowlist {
			s.allow[k] = true
		}
	}
	s.root = &tracked{id: "/", cgroup: "/", g: l.newGroup("/", c.Procfs), startedAt: s.machine.bootTime}
	s.root.ls = newLabelSet(map[string]string{"id": "/"}, s.devs.name)
	if p := filepath.Join(c.Procfs, "1", "net", "dev"); exists(p) {
		s.root.netPath = p
	}
	logger.Debug("containers source ready", "cgroup_v2", l.v2, "cgroupfs", c.Cgroupfs, "procfs", c.Procfs)
	return s, nil
}

// openInventory connects to the Engine if it is not connected yet and its
// socket exists; a host without Docker is looked at again every
// engineRecheck, and only logged at debug level. Callers hold s.mu.
func (s *Source) openInventory() {
	if s.inv != nil || s.open == nil || s.closed || time.Now().Before(s.nextOpen) {
		return
	}
	s.nextOpen = time.Now().Add(engineRecheck)
	inv, closeInv, err := s.open()
	if err != nil {
		s.log.Debug("docker engine not available; serving the root cgroup and machine series only", "host", s.cfg.Host, "err", err)
		return
	}
	s.inv, s.closeInv = inv, closeInv
}

// Close releases the Docker Engine watcher. The pipeline calls it when
// the graph that built the source stops.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.closeInv != nil {
		s.closeInv()
		s.closeInv = nil
	}
	s.inv = nil
	return nil
}

// Describe implements prometheus.Collector. It describes the series with
// fixed labels; the container series' labels depend on the containers.
func (s *Source) Describe(ch chan<- *prometheus.Desc) {
	ch <- scrapeErrorDesc
	ch <- machineCoresDesc
	ch <- machineMemDesc
}

// Collect implements prometheus.Collector.
func (s *Source) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.openInventory()
	s.gen++
	now := float64(time.Now().Unix())
	e := &emitter{ch: ch}
	scrapeError := 0.0
	if s.inv != nil {
		if !s.inv.Ready() {
			scrapeError = 1
		}
		for _, c := range s.inv.Running() {
			t := s.track(c)
			if t == nil {
				continue
			}
			if err := s.read(t); err != nil {
				if !gone(err) {
					scrapeError = 1
					s.warn.Warn("read", "cannot read a container's cgroup", "container", t.name, "cgroup", t.cgroup, "err", err)
				}
				// Gone: it stopped since the Engine's last event.
				delete(s.tracked, t.id)
				continue
			}
			health := -1.0 // no health check
			switch t.health {
			case "healthy":
				health = 1
			case "starting", "unhealthy":
				health = 0
			}
			e.emit(famLastSeen, t.ls.base, now)
			e.emit(famStartTime, t.ls.base, t.startedAt)
			e.emit(famHealth, t.ls.base, health)
			e.emitStats(t.ls, &t.st)
		}
	}
	if err := s.read(s.root); err != nil {
		scrapeError = 1
		s.warn.Warn("root", "cannot read the root cgroup", "err", err)
	} else {
		e.emit(famLastSeen, s.root.ls.base, now)
		e.emit(famStartTime, s.root.ls.base, s.root.startedAt)
		e.emit(famHealth, s.root.ls.base, -1)
		e.emitStats(s.root.ls, &s.root.st)
	}
	for id, t := range s.tracked {
		if t.gen != s.gen {
			delete(s.tracked, id)
		}
	}
	m := s.machine
	ch <- prometheus.MustNewConstMetric(machineCoresDesc, prometheus.GaugeValue, m.cores, m.machineID, m.systemUUID, m.bootID)
	ch <- prometheus.MustNewConstMetric(machineMemDesc, prometheus.GaugeValue, m.memory, m.machineID, m.systemUUID, m.bootID)
	ch <- prometheus.MustNewConstMetric(scrapeErrorDesc, prometheus.GaugeValue, scrapeError)
}

// read reads a tracked cgroup's files and its network namespace's
// interfaces.
func (s *Source) read(t *tracked) error {
	if err := t.g.read(s.r, &t.st); err != nil {
		return err
	}
	t.st.net = t.st.net[:0]
	if t.netPath != "" {
		b, err := s.r.read(t.netPath)
		if err != nil {
			return err
		}
		t.st.net = parseNetDev(b, t.st.net)
	}
	return nil
}

// track returns the container's tracked state, set up on first sight and
// again when it restarted (a new init pid); its label set is rebuilt when
// its name, image or labels change. nil means it has no cgroup (yet or
// any more).
func (s *Source) track(c dockerengine.Container) *tracked {
	t := s.tracked[c.ID]
	if t == nil || t.pid != c.Pid {
		if c.Pid <= 0 {
			return nil
		}
		rel, err := s.layout.resolve(s.procfs, c.ID, c.Pid)
		if err != nil {
			s.log.Debug("container has no cgroup; it may have stopped", "container", c.Name, "err", err)
			return nil
		}
		t = &tracked{id: c.ID, pid: c.Pid, cgroup: rel, g: s.layout.newGroup(rel, s.procfs)}
		if s.ownNetwork(c.ID) {
			t.netPath = filepath.Join(s.procfs, strconv.Itoa(c.Pid), "net", "dev")
		}
		s.tracked[c.ID] = t
	}
	t.gen = s.gen
	t.health = c.Health
	t.startedAt = float64(c.StartedAt.Unix())
	if t.ls == nil || t.name != c.Name || t.image != c.Image || !maps.Equal(t.labels, c.Labels) {
		t.name, t.image, t.labels = c.Name, c.Image, c.Labels
		t.ls = newLabelSet(s.labelsOf(c, t.cgroup), s.devs.name)
	}
	return t
}

// ownNetwork says whether a container has a network namespace of its
// own: not when it joined another container's (network_mode
// container:<id>), which cAdvisor leaves without network series too.
func (s *Source) ownNetwork(id string) bool {
	ins, ok := s.inv.(inspector)
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := ins.Inspect(ctx, id)
	if err != nil || res.HostConfig == nil {
		return true
	}
	return !res.HostConfig.NetworkMode.IsContainer()
}

// labelsOf is a container's base label set: id (its cgroup), name, image,
// tenant, and container_label_<key> for its (allowed) Docker labels,
// sanitized as cAdvisor does; of two keys that sanitize to the same name
// the first in sorted order wins.
func (s *Source) labelsOf(c dockerengine.Container, cgroup string) map[string]string {
	m := map[string]string{"id": cgroup}
	if c.Name != "" {
		m["name"] = c.Name
	}
	if c.Image != "" {
		m["image"] = c.Image
	}
	tenant := s.cfg.DefaultTenant
	if s.cfg.TenantLabel != "" {
		if v := c.Labels[s.cfg.TenantLabel]; v != "" {
			tenant = v
		}
	}
	if tenant != "" {
		m["tenant"] = tenant
	}
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		v := c.Labels[k]
		if v == "" || (s.allow != nil && !s.allow[k]) {
			continue
		}
		n := "container_label_" + sanitize(k)
		if _, dup := m[n]; !dup {
			m[n] = v
		}
	}
	return m
}

// sanitize replaces every character that may not appear in a Prometheus
// label name with an underscore, as cAdvisor does (one per character).
func sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// machineInfo is the machine's static facts, read once.
type machineInfo struct {
	cores, memory                 float64
	machineID, systemUUID, bootID string
	bootTime                      float64
}

func readMachine(c Config) machineInfo {
	m := machineInfo{cores: float64(runtime.NumCPU())}
	read := func(paths ...string) string {
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil {
				return strings.TrimSpace(string(b))
			}
		}
		return ""
	}
	if b, err := os.ReadFile(filepath.Join(c.Procfs, "cpuinfo")); err == nil {
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			if k, _, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "processor" {
				n++
			}
		}
		if n > 0 {
			m.cores = float64(n)
		}
	}
	if b, err := os.ReadFile(filepath.Join(c.Procfs, "meminfo")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					if kb, err := strconv.ParseUint(f[0], 10, 64); err == nil {
						m.memory = float64(kb * 1024)
					}
				}
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(c.Procfs, "stat")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "btime "); ok {
				if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
					m.bootTime = v
				}
			}
		}
	}
	m.machineID = read(filepath.Join(c.Rootfs, "etc", "machine-id"), filepath.Join(c.Rootfs, "var", "lib", "dbus", "machine-id"))
	m.systemUUID = read(filepath.Join(c.Sysfs, "class", "dmi", "id", "product_uuid"))
	m.bootID = read(filepath.Join(c.Procfs, "sys", "kernel", "random", "boot_id"))
	return m
}

// devNames maps block devices to cAdvisor's device label ("/dev/sda")
// from /proc/partitions, read again (at most once a minute) when a device
// it does not know shows up.
type devNames struct {
	path   string
	m      map[devKey]string
	loaded time.Time
}

func (d *devNames) name(k devKey) (string, bool) {
	if n, ok := d.m[k]; ok {
		return n, true
	}
	if d.m != nil && time.Since(d.loaded) < time.Minute {
		return "", false
	}
	d.loaded = time.Now()
	b, err := os.ReadFile(d.path)
	if err != nil {
		if d.m == nil {
			d.m = map[devKey]string{}
		}
		return "", false
	}
	d.m = parsePartitions(b)
	n, ok := d.m[k]
	return n, ok
}

// parsePartitions reads /proc/partitions: "major minor #blocks name".
func parsePartitions(b []byte) map[devKey]string {
	m := map[devKey]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		ma, err1 := strconv.ParseUint(f[0], 10, 32)
		mi, err2 := strconv.ParseUint(f[1], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		m[devKey{uint32(ma), uint32(mi)}] = "/dev/" + f[3]
	}
	return m
}
