// Package host measures the host the way node_exporter does: one collector
// per file, each registered with its node_exporter name and whether it is
// enabled by default, exposing node_exporter's metric names, label names,
// types and help text.
package host

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// namespace prefixes every host metric, as in node_exporter.
const namespace = "node"

// Collector is one node_exporter collector. Update sends the current values
// on ch. It is called once per scrape, possibly concurrently with other
// collectors but never with itself.
type Collector interface {
	Update(ch chan<- prometheus.Metric) error
}

// ErrNoData means the collector has nothing to report on this host (the
// hardware or kernel feature is absent). It is logged at debug level and
// reported as node_scrape_collector_success 0, as node_exporter does.
var ErrNoData = errors.New("collector returned no data")

// Option is a collector setting. Its full name is "<collector>.<name>"; it
// is the flag --collector.<collector>.<name> and the key of the same name
// under the host source's options in YAML.
type Option struct {
	Name    string // e.g. "device-exclude"; the full name adds the collector's
	Default string // as node_exporter's default; bools are "true"/"false"
	Help    string
	Bool    bool
}

// Spec describes a collector for the registry.
type Spec struct {
	Name           string // node_exporter's collector name, e.g. "diskstats"
	DefaultEnabled bool   // node_exporter's default
	Options        []Option
	New            func(env *Env) (Collector, error)
}

// Env is what a collector's constructor receives.
type Env struct {
	Paths   Paths
	Logger  *slog.Logger
	name    string
	options map[string]string // full option name -> value, defaults filled in
	shared  *scrapeShared     // what the Source's collectors share per scrape; nil outside a Source
}

// Option returns the value of the collector's option name (short name).
func (e *Env) Option(name string) string {
	v, ok := e.options[e.name+"."+name]
	if !ok {
		panic(fmt.Sprintf("host: collector %s reads undeclared option %q", e.name, name))
	}
	return v
}

// BoolOption returns a boolean option's value.
func (e *Env) BoolOption(name string) bool {
	b, _ := strconv.ParseBool(e.Option(name))
	return b
}

// Paths are where the host's filesystems are mounted. In a container the
// host's are typically under /host: /host/proc, /host/sys and /host.
type Paths struct {
	Proc     string // --path.procfs, default /proc
	Sys      string // --path.sysfs, default /sys
	Root     string // --path.rootfs, default /
	UdevData string // --path.udev.data, default /run/udev/data
}

// DefaultPaths are node_exporter's defaults.
func DefaultPaths() Paths {
	return Paths{Proc: "/proc", Sys: "/sys", Root: "/", UdevData: "/run/udev/data"}
}

// ProcPath joins elements onto the procfs mount point.
func (p Paths) ProcPath(elem ...string) string {
	return filepath.Join(append([]string{p.Proc}, elem...)...)
}

// SysPath joins elements onto the sysfs mount point.
func (p Paths) SysPath(elem ...string) string {
	return filepath.Join(append([]string{p.Sys}, elem...)...)
}

// RootPath joins elements onto the root filesystem's mount point.
func (p Paths) RootPath(elem ...string) string {
	return filepath.Join(append([]string{p.Root}, elem...)...)
}

var specs = struct {
	sync.Mutex
	m map[string]Spec
}{m: map[string]Spec{}}

// Register adds a collector to the registry; collectors call it from init.
func Register(s Spec) {
	specs.Lock()
	defer specs.Unlock()
	if _, dup := specs.m[s.Name]; dup {
		panic("host: collector " + s.Name + " registered twice")
	}
	specs.m[s.Name] = s
}

// Specs lists the registered collectors by name.
func Specs() []Spec {
	specs.Lock()
	defer specs.Unlock()
	out := make([]Spec, 0, len(specs.m))
	for _, s := range specs.m {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// typedDesc pairs a descriptor with its value type, as node_exporter does.
type typedDesc struct {
	desc      *prometheus.Desc
	valueType prometheus.ValueType
}

func (d typedDesc) mustNewConstMetric(value float64, labels ...string) prometheus.Metric {
	return newMetric(d.desc, d.valueType, value, labels...)
}
