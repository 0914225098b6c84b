package host

import (
	"errors"
	"fmt"
	"io"
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
	shared     *scrapeShared
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
	s := &Source{timeout: c.CollectorTimeout, shared: &scrapeShared{}}
	if s.timeout == 0 {
		s.timeout = DefaultCollectorTimeout
	}
	paths := c.Paths()
	for _, name := range names {
		spec, _ := lookupSpec(name)
		env := &Env{Paths: paths, Logger: logger.With("collector", name), name: name, options: map[string]string{}, shared: s.shared}
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
		s.collectors = append(s.collectors, &running{name: name, c: col, logger: env.Logger, sequential: sequentialCollectors[name]})
	}
	return s, nil
}

// Close implements io.Closer: the agent closes a metrics source it no
// longer serves, and collectors that keep files open release them.
func (s *Source) Close() error {
	for _, r := range s.collectors {
		if c, ok := r.c.(io.Closer); ok {
			c.Close()
		}
	}
	return nil
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
	s.shared.next()
	s.run(func(int) func(prometheus.Metric) {
		return func(m prometheus.Metric) { ch <- m }
	})
}

// collectAll is Collect for the fast path: each collector's metrics are
// kept apart (no channel shared by every collector), in its order.
func (s *Source) collectAll() [][]prometheus.Metric {
	s.shared.next()
	out := make([][]prometheus.Metric, len(s.collectors))
	// One backing array for all, sized by the last scrape.
	caps := make([]int, len(s.collectors))
	n := 0
	for i, r := range s.collectors {
		caps[i] = int(r.lastN.Load())
		n += caps[i]
	}
	all := make([]prometheus.Metric, n)
	for i, k := range caps {
		out[i], all = all[:0:k], all[k:]
	}
	// Only collector i's forwarding appends to out[i], and not after run
	// returns.
	s.run(func(i int) func(prometheus.Metric) {
		return func(m prometheus.Metric) { out[i] = append(out[i], m) }
	})
	for i, r := range s.collectors {
		r.lastN.Store(int32(min(len(out[i]), 1<<16)))
	}
	return out
}

// sequentialCollectors are the collectors that only read a few procfs
// files or ask netlink, in well under a millisecond, and never wait on a
// device or a mount. Giving each its own goroutines on every scrape (one
// for its Update, one forwarding its metrics, and the stacks they grow)
// cost more than the reading itself, so a scrape runs them one after the
// other on a single worker instead, forwarded by the scrape's goroutine.
// Every other collector (filesystem, hwmon, netclass, textfile, ...: any
// that may wait on hardware, a mount or the disk) runs concurrently as in
// node_exporter.
var sequentialCollectors = map[string]bool{
	"arp": true, "conntrack": true, "cpu": true, "diskstats": true, "entropy": true,
	"filefd": true, "loadavg": true, "meminfo": true, "netdev": true, "netstat": true,
	"os": true, "pressure": true, "schedstat": true, "sockstat": true, "softnet": true,
	"stat": true, "time": true, "timex": true, "udp_queues": true, "uname": true, "vmstat": true,
}

// sequentialBudget is the share of the timeout the sequential collectors
// may take together. Past it, the one running goes on under its own
// timeout on a goroutine of its own and the rest start concurrently, as
// the others do, so a scrape still ends within about the timeout
// (timeout + timeout/sequentialBudget) even if one of them hangs.
const sequentialBudget = 10

// run runs one scrape of every collector, collector i's metrics going to
// emitFor(i), and returns once each has finished or timed out.
func (s *Source) run(emitFor func(i int) func(prometheus.Metric)) {
	var wg sync.WaitGroup
	var seq []int
	for i, r := range s.collectors {
		if r.sequential {
			seq = append(seq, i)
			continue
		}
		wg.Add(1)
		go r.collect(emitFor(i), s.timeout, wg.Done)
	}
	if len(seq) > 0 {
		soft := time.NewTimer(s.timeout / sequentialBudget)
		w := newWorker()
		for k, i := range seq {
			r := s.collectors[i]
			u := r.begin(emitFor(i), s.timeout, w.run)
			if u == nil {
				continue
			}
			switch u.wait(soft.C) {
			case updateDone:
				continue
			case updateTimedOut:
				// Its Update still holds the worker.
				w.stop()
				w = newWorker()
				continue
			}
			// Over budget: r goes on alone, the rest concurrently.
			w.stop()
			wg.Add(1)
			go func() { u.wait(nil); wg.Done() }()
			for _, j := range seq[k+1:] {
				wg.Add(1)
				go s.collectors[j].collect(emitFor(j), s.timeout, wg.Done)
			}
			w = nil
			break
		}
		if w != nil {
			w.stop()
		}
		soft.Stop()
	}
	wg.Wait()
}

// worker runs functions one after the other on one goroutine.
type worker struct{ jobs chan func() }

func newWorker() *worker {
	w := &worker{jobs: make(chan func())}
	go func() {
		for f := range w.jobs {
			f()
		}
	}()
	return w
}

// run starts f on the worker, which must be idle.
func (w *worker) run(f func()) { w.jobs <- f }

// stop ends the worker once its current function returns.
func (w *worker) stop() { close(w.jobs) }

// running is one collector with what the engine tracks about it.
type running struct {
	name   string
	c      Collector
	logger *slog.Logger
	// sequential: cheap enough to run on the scrape's shared worker.
	sequential bool
	// lastN is how many metrics the fast path's last scrape had from it.
	lastN atomic.Int32
	// last is the collector's update, reused while it is not busy.
	last *update
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

// collect runs one Update on a goroutine of its own and forwards its
// metrics to emit until it returns or the timeout passes, then calls done;
// emit is not called after done. After a timeout a goroutine goes on
// discarding what the Update still sends until it returns, so the late
// metrics never reach a later scrape, and the collector stays busy until
// then.
func (r *running) collect(emit func(prometheus.Metric), timeout time.Duration, done func()) {
	if u := r.begin(emit, timeout, func(f func()) { go f() }); u != nil {
		u.wait(nil)
	}
	done()
}

// update is one Update of a collector in flight.
type update struct {
	r       *running
	emit    func(prometheus.Metric)
	start   time.Time
	timeout time.Duration
	timer   *time.Timer
	inner   chan prometheus.Metric
	result  chan error
	run     func()
}

// begin starts an Update with start (which runs a function on another
// goroutine), or, if the collector is still busy with an Update that
// timed out, reports it failed and returns nil.
func (r *running) begin(emit func(prometheus.Metric), timeout time.Duration, start func(func())) *update {
	if !r.busy.CompareAndSwap(false, true) {
		r.logError(fmt.Errorf("still running from an earlier scrape that timed out; skipped"))
		emit(newMetric(scrapeDurationDesc, prometheus.GaugeValue, 0, r.name))
		emit(newMetric(scrapeSuccessDesc, prometheus.GaugeValue, 0, r.name))
		return nil
	}
	// The collector's previous update is over (it is not busy): its
	// channels are empty and nothing sends on them any more, so they,
	// its timer and the function that runs Update are reused.
	u := r.last
	if u == nil {
		u = &update{
			r:      r,
			inner:  make(chan prometheus.Metric, metricsBuffer),
			result: make(chan error, 1),
		}
		u.run = func() {
			defer func() {
				if p := recover(); p != nil {
					u.result <- fmt.Errorf("panic: %v\n%s", p, debug.Stack())
				}
			}()
			u.result <- r.c.Update(u.inner)
		}
		r.last = u
	}
	u.emit, u.start, u.timeout = emit, time.Now(), timeout
	if u.timer == nil {
		u.timer = time.NewTimer(timeout)
	} else {
		u.timer.Reset(timeout)
	}
	start(u.run)
	return u
}

// How a wait ended.
const (
	updateDone = iota
	updateTimedOut
	updateYielded
)

// wait forwards the Update's metrics until it returns or times out, and
// reports it. If yield fires first, it returns updateYielded, and the
// update must be waited for again.
func (u *update) wait(yield <-chan time.Time) int {
	r := u.r
	for {
		select {
		case m := <-u.inner:
			u.emit(m)
		case err := <-u.result:
			u.timer.Stop()
			// Everything sent before Update returned is buffered by now.
			for drained := false; !drained; {
				select {
				case m := <-u.inner:
					u.emit(m)
				default:
					drained = true
				}
			}
			// Once r is not busy, a concurrent scrape may reuse u.
			emit, d := u.emit, time.Since(u.start)
			r.busy.Store(false)
			r.report(emit, d, err)
			return updateDone
		case <-u.timer.C:
			r.report(u.emit, time.Since(u.start), fmt.Errorf("timed out after %s; its metrics are left out of this scrape", u.timeout))
			go u.discard()
			return updateTimedOut
		case <-yield:
			return updateYielded
		}
	}
}

// discard drops what a timed-out Update still sends until it returns.
func (u *update) discard() {
	for {
		select {
		case <-u.inner:
		case err := <-u.result:
			// Empty the channel for the next update.
			for drained := false; !drained; {
				select {
				case <-u.inner:
				default:
					drained = true
				}
			}
			d, r := time.Since(u.start), u.r
			r.busy.Store(false) // u may be reused from here on
			if err != nil && !errors.Is(err, ErrNoData) {
				r.logError(fmt.Errorf("finished %s after a timeout: %w", d.Round(time.Millisecond), err))
			}
			return
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
