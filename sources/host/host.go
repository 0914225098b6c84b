package host

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// Type is the source type of the host metrics source in vigil's config.
const Type = "host"

// DefaultCollectorTimeout bounds one collector's Update. node_exporter has
// no such bound, so a collector stuck on a hung NFS mount or a slow sysfs
// file holds the whole scrape until Prometheus gives up (its default
// scrape_timeout is 10s) and the scrape is lost entirely. 5s is half of
// that default, leaves time to encode the rest of the scrape, and matches
// node_exporter's own bound for the one collector known to hang
// (filesystem.mount-timeout, 5s).
const DefaultCollectorTimeout = 5 * time.Second

// errorLogInterval is how often one collector's repeated failure is logged.
const errorLogInterval = time.Minute

func init() {
	pipeline.RegisterMetricsSource(Type, func(env pipeline.Env, node *yaml.Node) (prometheus.Collector, error) {
		var c Config
		if err := env.Decoder.Decode(node, &c); err != nil {
			return nil, err
		}
		return New(c, env.Logger)
	})
}

// Config is the host source's config. The paths default to node_exporter's;
// the collectors enabled are node_exporter's defaults, plus Enable, minus
// Disable (none of the defaults when DisableDefaults is set, as
// --collector.disable-defaults).
type Config struct {
	Procfs           string        `yaml:"procfs"`
	Sysfs            string        `yaml:"sysfs"`
	Rootfs           string        `yaml:"rootfs"`
	UdevData         string        `yaml:"udev_data"`
	Enable           []Name        `yaml:"enable"`
	Disable          []Name        `yaml:"disable"`
	DisableDefaults  bool          `yaml:"disable_defaults"`
	Options          Options       `yaml:"options"`
	CollectorTimeout time.Duration `yaml:"collector_timeout"`
}

// Name is a collector name, checked against the registry while decoding.
type Name string

// DecodeNode implements pipeline.NodeDecoder.
func (n *Name) DecodeNode(d pipeline.Decoder, node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return d.Errorf(node, "expected a collector name")
	}
	if _, ok := lookupSpec(node.Value); !ok {
		return d.Errorf(node, "unknown collector %q%s", node.Value, pipeline.Suggest(node.Value, collectorNames()))
	}
	*n = Name(node.Value)
	return nil
}

// Options maps full option names ("<collector>.<option>", as the flag
// --collector.<collector>.<option>) to their values.
type Options map[string]string

// DecodeNode implements pipeline.NodeDecoder: every key must be a
// registered option and every boolean option a boolean.
func (o *Options) DecodeNode(d pipeline.Decoder, node *yaml.Node) error {
	if node.Kind != yaml.MappingNode {
		return d.Errorf(node, "expected a mapping of collector options, such as {\"stat.softirq\": true}")
	}
	m := make(Options, len(node.Content)/2)
	for i := 0; i+1 < len(node.Content); i += 2 {
		kn, vn := node.Content[i], node.Content[i+1]
		for vn.Kind == yaml.AliasNode && vn.Alias != nil {
			vn = vn.Alias
		}
		key := kn.Value
		opt, ok := lookupOption(key)
		if !ok {
			return d.Errorf(kn, "unknown collector option %q%s", key, pipeline.Suggest(key, optionNames()))
		}
		if _, dup := m[key]; dup {
			return d.Errorf(kn, "duplicate option %q", key)
		}
		if vn.Kind != yaml.ScalarNode {
			return d.Errorf(vn, "option %q: expected a single value", key)
		}
		if err := checkOptionValue(opt, vn.Value); err != nil {
			return d.Errorf(vn, "option %q: %v", key, err)
		}
		m[key] = vn.Value
	}
	*o = m
	return nil
}

func checkOptionValue(opt Option, v string) error {
	if opt.Bool {
		if _, err := strconv.ParseBool(v); err != nil {
			return fmt.Errorf("invalid boolean %q", v)
		}
	}
	return nil
}

func lookupSpec(name string) (Spec, bool) {
	specs.Lock()
	defer specs.Unlock()
	s, ok := specs.m[name]
	return s, ok
}

func collectorNames() []string {
	var out []string
	for _, s := range Specs() {
		out = append(out, s.Name)
	}
	return out
}

func lookupOption(full string) (Option, bool) {
	name, opt, ok := strings.Cut(full, ".")
	if !ok {
		return Option{}, false
	}
	s, ok := lookupSpec(name)
	if !ok {
		return Option{}, false
	}
	for _, o := range s.Options {
		if o.Name == opt {
			return o, true
		}
	}
	return Option{}, false
}

func optionNames() []string {
	var out []string
	for _, s := range Specs() {
		for _, o := range s.Options {
			out = append(out, s.Name+"."+o.Name)
		}
	}
	return out
}

// Enabled resolves which collectors c enables, sorted by name.
func (c Config) Enabled() ([]string, error) {
	on := map[string]bool{}
	if !c.DisableDefaults {
		for _, s := range Specs() {
			if s.DefaultEnabled {
				on[s.Name] = true
			}
		}
	}
	disabled := map[Name]bool{}
	for _, n := range c.Disable {
		disabled[n] = true
	}
	for _, n := range c.Enable {
		if disabled[n] {
			return nil, fmt.Errorf("collector %q is both enabled and disabled", n)
		}
		if _, ok := lookupSpec(string(n)); !ok {
			return nil, fmt.Errorf("unknown collector %q%s", n, pipeline.Suggest(string(n), collectorNames()))
		}
		on[string(n)] = true
	}
	for n := range disabled {
		delete(on, string(n))
	}
	out := make([]string, 0, len(on))
	for n := range on {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// Paths resolves c's paths, node_exporter's defaults filling the gaps.
func (c Config) Paths() Paths {
	p := DefaultPaths()
	if c.Procfs != "" {
		p.Proc = c.Procfs
	}
	if c.Sysfs != "" {
		p.Sys = c.Sysfs
	}
	if c.Rootfs != "" {
		p.Root = c.Rootfs
	}
	if c.UdevData != "" {
		p.UdevData = c.UdevData
	}
	return p
}

// Source is the host metrics source: a prometheus.Collector that runs its
// enabled collectors concurrently on every scrape, as node_exporter does,
// and reports each one's duration and success.
type Source struct {
	collectors []*running
	timeout    time.Duration
}

var (
	scrapeDurationDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "scrape", "collector_duration_seconds"),
		"node_exporter: Duration of a collector scrape.",
		[]string{"collector"}, nil)
	scrapeSuccessDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "scrape", "collector_success"),
		"node_exporter: Whether a collector succeeded.",
		[]string{"collector"}, nil)
)

// New builds the collectors c enables. A collector whose constructor fails
// fails the whole source, as node_exporter refuses to start.
func New(c Config, logger *slog.Logger) (*Source, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if c.CollectorTimeout < 0 {
		return nil, errors.New("collector_timeout must be positive")
	}
	names, err := c.Enabled()
	if err != nil {
		return nil, err
	}
	s := &Source{timeout: c.CollectorTimeout}
	if s.timeout == 0 {
		s.timeout = DefaultCollectorTimeout
	}
	paths := c.Paths()
	for _, name := range names {
		spec, _ := lookupSpec(name)
		env := &Env{Paths: paths, Logger: logger.With("collector", name), name: name, options: map[string]string{}}
		for _, o := range spec.Options {
			full := name + "." + o.Name
			v, ok := c.Options[full]
			if !ok {
				v = o.Default
			} else if err := checkOptionValue(o, v); err != nil {
				return nil, fmt.Errorf("option %q: %w", full, err)
			}
			env.options[full] = v
		}
		col, err := spec.New(env)
		if err != nil {
			return nil, fmt.Errorf("collector %s: %w", name, err)
		}
		s.collectors = append(s.collectors, &running{name: name, c: col, logger: env.Logger})
	}
	return s, nil
}

// Collectors names the collectors the source runs.
func (s *Source) Collectors() []string {
	out := make([]string, len(s.collectors))
	for i, r := range s.collectors {
		out[i] = r.name
	}
	return out
}

// Describe implements prometheus.Collector. Like node_exporter, it
// describes only the scrape metrics: the collectors' series depend on the
// host.
func (s *Source) Describe(ch chan<- *prometheus.Desc) {
	ch <- scrapeDurationDesc
	ch <- scrapeSuccessDesc
}

// Collect implements prometheus.Collector. It returns once every collector
// has finished or timed out; nothing is sent on ch after it returns.
func (s *Source) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	wg.Add(len(s.collectors))
	for _, r := range s.collectors {
		go r.collect(func(m prometheus.Metric) { ch <- m }, s.timeout, wg.Done)
	}
	wg.Wait()
}

// collectAll is Collect for the fast path: each collector's metrics are
// kept apart (no channel shared by every collector), in its order.
func (s *Source) collectAll() [][]prometheus.Metric {
	out := make([][]prometheus.Metric, len(s.collectors))
	var wg sync.WaitGroup
	wg.Add(len(s.collectors))
	for i, r := range s.collectors {
		// Only r's forwarding goroutine appends to out[i], and not after
		// it calls wg.Done.
		go r.collect(func(m prometheus.Metric) { out[i] = append(out[i], m) }, s.timeout, wg.Done)
	}
	wg.Wait()
	return out
}

// running is one collector with what the engine tracks about it.
type running struct {
	name   string
	c      Collector
	logger *slog.Logger
	// busy is set while an Update runs. An Update that outlived its
	// scrape's timeout keeps it set, so the next scrapes skip the
	// collector instead of piling up goroutines behind the same hang.
	busy atomic.Bool

	mu      sync.Mutex
	lastLog time.Time
	held    int
}

// metricsBuffer lets a collector run ahead of the forwarding a little,
// without holding a scrape's worth of metrics.
const metricsBuffer = 64

// collect runs one Update and forwards its metrics to emit until it
// returns or the timeout passes, then calls done; emit is not called after
// done. After a timeout the goroutine goes on discarding what the Update
// still sends until it returns, so the late metrics never reach a later
// scrape, and the collector stays busy until then.
func (r *running) collect(emit func(prometheus.Metric), timeout time.Duration, done func()) {
	if !r.busy.CompareAndSwap(false, true) {
		r.logError(fmt.Errorf("still running from an earlier scrape that timed out; skipped"))
		emit(newMetric(scrapeDurationDesc, prometheus.GaugeValue, 0, r.name))
		emit(newMetric(scrapeSuccessDesc, prometheus.GaugeValue, 0, r.name))
		done()
		return
	}
	start := time.Now()
	inner := make(chan prometheus.Metric, metricsBuffer)
	result := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				result <- fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		result <- r.c.Update(inner)
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case m := <-inner:
			emit(m)
		case err := <-result:
			// Everything sent before Update returned is buffered by now.
			for drained := false; !drained; {
				select {
				case m := <-inner:
					emit(m)
				default:
					drained = true
				}
			}
			r.busy.Store(false)
			r.report(emit, time.Since(start), err)
			done()
			return
		case <-timer.C:
			r.report(emit, time.Since(start), fmt.Errorf("timed out after %s; its metrics are left out of this scrape", timeout))
			done()
			for {
				select {
				case <-inner:
				case err := <-result:
					r.busy.Store(false)
					if err != nil && !errors.Is(err, ErrNoData) {
						r.logError(fmt.Errorf("finished %s after a timeout: %w", time.Since(start).Round(time.Millisecond), err))
					}
					return
				}
			}
		}
	}
}

func (r *running) report(emit func(prometheus.Metric), d time.Duration, err error) {
	success := 1.0
	if err != nil {
		success = 0
		if errors.Is(err, ErrNoData) {
			r.logger.Debug("collector returned no data", "duration_seconds", d.Seconds(), "err", err)
		} else {
			r.logError(err)
		}
	}
	emit(newMetric(scrapeDurationDesc, prometheus.GaugeValue, d.Seconds(), r.name))
	emit(newMetric(scrapeSuccessDesc, prometheus.GaugeValue, success, r.name))
}

// logError logs a collector failure at most once per errorLogInterval, so a
// collector failing on every scrape does not flood the log.
func (r *running) logError(err error) {
	now := time.Now()
	r.mu.Lock()
	if !r.lastLog.IsZero() && now.Sub(r.lastLog) < errorLogInterval {
		r.held++
		r.mu.Unlock()
		return
	}
	held := r.held
	r.lastLog, r.held = now, 0
	r.mu.Unlock()
	args := []any{"err", err}
	if held > 0 {
		args = append(args, "suppressed_since_last", held)
	}
	r.logger.Error("collector failed", args...)
}
