package processors

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// metrics is Promtail's metrics stage: counters, gauges and histograms
// defined in the config and updated from each entry's extracted data,
// served on /metrics. Each series carries the entry's stream labels, as in
// Promtail, minus names Prometheus would reject and names starting with
// "__". Series not updated for max_idle_duration disappear.
//
// Two processors that define the same metric (same name and description)
// share one collector, so the same definition in several scrape configs
// adds up instead of failing at scrape time with duplicate series. They
// must agree on the type and buckets; the first definition's
// max_idle_duration applies to the shared series.
//
// Differences from Promtail, on purpose:
//   - Keys that do not belong to the metric's type (match_all on a gauge)
//     are errors; Promtail ignores them.
//   - match_all with action add and no count_entry_bytes is an error;
//     Promtail accepts it and never counts anything.
//   - Histogram buckets out of order are an error at load; Promtail
//     panics on the first observation.
//   - A value a counter cannot take (negative, NaN, infinite) is counted
//     in vigil_processor_errors_total{reason="invalid_value"}, as are
//     values that are not numbers, durations or booleans; Promtail panics
//     on a negative add and logs the rest at debug level.
//   - Extracted values are text, so "true" and "false" count as 1 and 0
//     whatever stage extracted them (in Promtail only JSON booleans do).
//   - A histogram series leaves out a stream label named "le", which the
//     client library reserves for buckets (Promtail panics).
type metrics struct {
	defs      []*metricsDef
	now       func() time.Time
	errValue  prometheus.Counter
	errLabels prometheus.Counter
}

type metricsKind int

const (
	metricsCounter metricsKind = iota
	metricsGauge
	metricsHistogram
)

func (k metricsKind) String() string {
	return [...]string{"counter", "gauge", "histogram"}[k]
}

type metricsDef struct {
	coll       *metricsCollector
	source     string
	value      *string
	action     string
	matchAll   bool
	countBytes bool

	// The series of the previous entry's label slice: entries of one
	// stream share their labels, so most lookups end here.
	lastPtr *pipeline.Label
	lastLen int
	last    *metricsSeries
}

// metricsDefConfig holds Promtail's keys for one metric.
type metricsDefConfig struct {
	Type            string         `yaml:"type"`
	Description     string         `yaml:"description"`
	Source          *string        `yaml:"source"`
	Prefix          string         `yaml:"prefix"`
	MaxIdleDuration *time.Duration `yaml:"max_idle_duration"`
	Config          yaml.Node      `yaml:"config"`
}

type metricsCounterConfig struct {
	Value           *string `yaml:"value"`
	Action          string  `yaml:"action"`
	MatchAll        bool    `yaml:"match_all"`
	CountEntryBytes bool    `yaml:"count_entry_bytes"`
}

type metricsGaugeConfig struct {
	Value  *string `yaml:"value"`
	Action string  `yaml:"action"`
}

type metricsHistogramConfig struct {
	Value   *string   `yaml:"value"`
	Buckets []float64 `yaml:"buckets"`
}

const (
	metricsDefaultPrefix = "promtail_custom_"
	metricsDefaultIdle   = 5 * time.Minute
	// metricsPruneEvery is how often processing removes idle series, for
	// when nothing scrapes /metrics (a scrape prunes too).
	metricsPruneEvery = time.Minute
)

func init() {
	pipeline.RegisterProcessor("metrics", newMetrics)
}

func newMetrics(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	d := env.Decoder
	if node.Kind != yaml.MappingNode {
		return nil, d.Errorf(node, "metrics: expected a mapping of metric names to their definitions")
	}
	if len(node.Content) == 0 {
		return nil, d.Errorf(node, "empty metric stage configuration")
	}
	reg := env.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	c := counters{env}
	m := &metrics{now: time.Now, errValue: c.stageError("invalid_value"), errLabels: c.stageError("invalid_labels")}
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		kn, vn := node.Content[i], node.Content[i+1]
		if seen[kn.Value] {
			return nil, d.Errorf(kn, "duplicate metric %q", kn.Value)
		}
		seen[kn.Value] = true
		def, err := newMetricsDef(d, reg, kn, vn, m.now)
		if err != nil {
			return nil, err
		}
		m.defs = append(m.defs, def)
	}
	return m, nil
}

func newMetricsDef(d pipeline.Decoder, reg prometheus.Registerer, kn, vn *yaml.Node, now func() time.Time) (*metricsDef, error) {
	name := kn.Value
	var mc metricsDefConfig
	if err := d.Decode(vn, &mc); err != nil {
		return nil, err
	}
	def := &metricsDef{source: name}
	if mc.Source != nil {
		def.source = *mc.Source
	}
	var kind metricsKind
	switch strings.ToLower(mc.Type) {
	case "counter":
		kind = metricsCounter
	case "gauge":
		kind = metricsGauge
	case "histogram":
		kind = metricsHistogram
	default:
		return nil, d.Errorf(pipeline.NodeAt(vn, "type"), "invalid metric type %q, metric type must be one of 'counter', 'gauge', or 'histogram'", strings.ToLower(mc.Type))
	}
	idle := metricsDefaultIdle
	if mc.MaxIdleDuration != nil {
		idle = *mc.MaxIdleDuration
		if idle < time.Second {
			return nil, d.Errorf(pipeline.NodeAt(vn, "max_idle_duration"), "max_idle_duration less than 1s not allowed")
		}
	}
	prefix := mc.Prefix
	if prefix == "" {
		prefix = metricsDefaultPrefix
	}
	fqName := prefix + name
	if !model.LegacyValidation.IsValidMetricName(fqName) {
		return nil, d.Errorf(kn, "%q is not a valid Prometheus metric name", fqName)
	}

	cfgNode := &mc.Config
	if cfgNode.Kind == 0 {
		cfgNode = nil
	}
	at := pipeline.NodeAt(vn, "config")
	var buckets []float64
	switch kind {
	case metricsCounter:
		var cc metricsCounterConfig
		if err := d.Decode(cfgNode, &cc); err != nil {
			return nil, err
		}
		def.value, def.matchAll, def.countBytes = cc.Value, cc.MatchAll, cc.CountEntryBytes
		def.action = strings.ToLower(cc.Action)
		actionAt := pipeline.NodeAt(cfgNode, "action")
		if actionAt == nil {
			actionAt = at
		}
		switch {
		case def.action == "":
			return nil, d.Errorf(actionAt, "counter action must be defined as either `inc` or `add`")
		case def.action != "inc" && def.action != "add":
			return nil, d.Errorf(actionAt, "action %s is not valid, action must be either `inc` or `add`", def.action)
		case cc.MatchAll && cc.Value != nil:
			return nil, d.Errorf(at, "`match_all: true` cannot be combined with `value`, please remove `match_all` or `value`")
		case cc.CountEntryBytes && !cc.MatchAll:
			return nil, d.Errorf(at, "`count_entry_bytes: true` can only be set with `match_all: true`")
		case cc.CountEntryBytes && def.action != "add":
			return nil, d.Errorf(at, "`count_entry_bytes: true` can only be used with `action: add`")
		case cc.MatchAll && def.action == "add" && !cc.CountEntryBytes:
			// Promtail accepts this and never counts anything: match_all
			// looks at no extracted value, so there is nothing to add.
			return nil, d.Errorf(at, "`match_all: true` with `action: add` needs `count_entry_bytes: true`: there is no extracted value to add")
		}
	case metricsGauge:
		var gc metricsGaugeConfig
		if err := d.Decode(cfgNode, &gc); err != nil {
			return nil, err
		}
		def.value = gc.Value
		def.action = strings.ToLower(gc.Action)
		actionAt := pipeline.NodeAt(cfgNode, "action")
		if actionAt == nil {
			actionAt = at
		}
		switch def.action {
		case "set", "inc", "dec", "add", "sub":
		case "":
			return nil, d.Errorf(actionAt, "gauge action must be defined as `set`, `inc`, `dec`, `add`, or `sub`")
		default:
			return nil, d.Errorf(actionAt, "action %s is not valid, action must be `set`, `inc`, `dec`, `add`, or `sub`", def.action)
		}
	case metricsHistogram:
		var hc metricsHistogramConfig
		if err := d.Decode(cfgNode, &hc); err != nil {
			return nil, err
		}
		def.value = hc.Value
		for i := 1; i < len(hc.Buckets); i++ {
			if hc.Buckets[i] <= hc.Buckets[i-1] {
				return nil, d.Errorf(pipeline.NodeAt(cfgNode, "buckets"), "histogram buckets must be in increasing order: %v", hc.Buckets)
			}
		}
		buckets = hc.Buckets
		if len(buckets) == 0 {
			buckets = prometheus.DefBuckets
		}
	}

	coll := &metricsCollector{
		kind: kind, fqName: fqName, help: mc.Description, buckets: buckets, idle: idle, now: now,
		desc:   prometheus.NewDesc(fqName, mc.Description, nil, nil),
		series: map[uint64][]*metricsSeries{},
	}
	got, err := pipeline.RegisterOrReuse(reg, coll)
	if err != nil {
		return nil, d.Errorf(kn, "metric %s: %v", fqName, err)
	}
	existing, ok := got.(*metricsCollector)
	if !ok {
		return nil, d.Errorf(kn, "metric %s is already defined by another component", fqName)
	}
	if existing.kind != kind || !slices.Equal(existing.buckets, buckets) {
		return nil, d.Errorf(kn, "metric %s is already defined by another metrics stage as a %s%s; definitions of one metric must agree",
			fqName, existing.kind, map[bool]string{true: " with other buckets"}[existing.kind == kind])
	}
	def.coll = existing
	return def, nil
}

func (m *metrics) Process(b *pipeline.Batch) {
	now := m.now()
	for _, d := range m.defs {
		d.coll.maybePrune(now)
	}
	nowNs := now.UnixNano()
	for i := range b.Entries {
		e := &b.Entries[i]
		for _, d := range m.defs {
			m.record(d, e, nowNs)
		}
	}
}

func (m *metrics) record(d *metricsDef, e *pipeline.Entry, now int64) {
	if d.matchAll {
		s := m.series(d, e.Labels, now)
		if s == nil {
			return
		}
		if d.countBytes {
			s.counter.Add(float64(len(e.Line)))
		} else {
			s.counter.Inc()
		}
		s.lastMod.Store(now)
		return
	}
	v, ok := e.Extracted.Get(d.source)
	if !ok {
		// Not an error: counting only the entries that have the source
		// (a regex group that matched) is how the stage is used.
		return
	}
	if d.value != nil && v != *d.value {
		return
	}
	var f float64
	if d.coll.kind == metricsHistogram || d.action == "add" || d.action == "set" || d.action == "sub" {
		var err error
		if f, err = metricsFloat(v); err != nil {
			m.errValue.Inc()
			return
		}
		// A counter cannot go down (the client library panics), and one
		// NaN or infinity would poison it for good.
		if d.coll.kind == metricsCounter && (f < 0 || math.IsNaN(f) || math.IsInf(f, 0)) {
			m.errValue.Inc()
			return
		}
	}
	s := m.series(d, e.Labels, now)
	if s == nil {
		return
	}
	switch d.coll.kind {
	case metricsCounter:
		if d.action == "inc" {
			s.counter.Inc()
		} else {
			s.counter.Add(f)
		}
	case metricsGauge:
		switch d.action {
		case "set":
			s.gauge.Set(f)
		case "inc":
			s.gauge.Inc()
		case "dec":
			s.gauge.Dec()
		case "add":
			s.gauge.Add(f)
		case "sub":
			s.gauge.Sub(f)
		}
	case metricsHistogram:
		s.histogram.Observe(f)
	}
	s.lastMod.Store(now)
}

// metricsFloat converts an extracted value as Promtail does: a number, a
// duration in seconds ("0.5ms" is 0.0005), or a boolean as 1 or 0 (JSON
// booleans reach Promtail's stage as booleans; here they are text).
func metricsFloat(s string) (float64, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f, nil
	}
	switch s {
	case "true":
		return 1, nil
	case "false":
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("can't convert %q to float64", s)
	}
	return d.Seconds(), nil
}

func (m *metrics) series(d *metricsDef, ls pipeline.Labels, now int64) *metricsSeries {
	ptr := unsafe.SliceData(ls)
	if s := d.last; s != nil && ptr == d.lastPtr && len(ls) == d.lastLen && !s.gone.Load() {
		return s
	}
	s, err := d.coll.get(ls, now)
	if err != nil {
		m.errLabels.Inc()
		return nil
	}
	d.lastPtr, d.lastLen, d.last = ptr, len(ls), s
	return s
}

// metricsCollector serves one configured metric: one series per distinct
// (cleaned) stream label set. It is an ordinary checked collector whose
// descriptor has no variable labels; the series carry the stream labels as
// constant labels, which the registry accepts as it only checks series
// against their descriptor in pedantic mode.
type metricsCollector struct {
	kind    metricsKind
	fqName  string
	help    string
	buckets []float64
	idle    time.Duration
	desc    *prometheus.Desc
	now     func() time.Time

	mu        sync.Mutex
	series    map[uint64][]*metricsSeries
	lastPrune time.Time
}

type metricsSeries struct {
	labels    pipeline.Labels // cleaned
	metric    prometheus.Metric
	counter   prometheus.Counter
	gauge     prometheus.Gauge
	histogram prometheus.Histogram
	lastMod   atomic.Int64 // unix ns
	gone      atomic.Bool  // pruned: holders must look the series up again
}

func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked(c.now())
	for _, chain := range c.series {
		for _, s := range chain {
			ch <- s.metric
		}
	}
}

// keep tells whether a stream label becomes a label of the series: as in
// Promtail, names Prometheus rejects and reserved "__" names are left out.
// A histogram cannot carry "le", its bucket label.
func (c *metricsCollector) keep(name string) bool {
	if strings.HasPrefix(name, "__") || !model.LegacyValidation.IsValidLabelName(name) {
		return false
	}
	return c.kind != metricsHistogram || name != "le"
}

func (c *metricsCollector) get(ls pipeline.Labels, now int64) (*metricsSeries, error) {
	var d xxhash.Digest
	d.Reset()
	sep := [1]byte{0xff}
	for _, l := range ls {
		if c.keep(l.Name) {
			_, _ = d.WriteString(l.Name)
			_, _ = d.Write(sep[:])
			_, _ = d.WriteString(l.Value)
			_, _ = d.Write(sep[:])
		}
	}
	h := d.Sum64()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.series[h] {
		if c.sameCleaned(s.labels, ls) {
			return s, nil
		}
	}
	s, err := c.newSeries(ls)
	if err != nil {
		return nil, err
	}
	// Fresh, so a scrape between here and the update cannot prune it.
	s.lastMod.Store(now)
	c.series[h] = append(c.series[h], s)
	return s, nil
}

func (c *metricsCollector) sameCleaned(cleaned, ls pipeline.Labels) bool {
	i := 0
	for _, l := range ls {
		if !c.keep(l.Name) {
			continue
		}
		if i >= len(cleaned) || cleaned[i] != l {
			return false
		}
		i++
	}
	return i == len(cleaned)
}

func (c *metricsCollector) newSeries(ls pipeline.Labels) (*metricsSeries, error) {
	s := &metricsSeries{}
	constLabels := prometheus.Labels{}
	for _, l := range ls {
		if !c.keep(l.Name) {
			continue
		}
		if !utf8.ValidString(l.Value) {
			return nil, fmt.Errorf("label %s has a value that is not UTF-8", l.Name)
		}
		s.labels = append(s.labels, l)
		constLabels[l.Name] = l.Value
	}
	switch c.kind {
	case metricsCounter:
		s.counter = prometheus.NewCounter(prometheus.CounterOpts{Name: c.fqName, Help: c.help, ConstLabels: constLabels})
		s.metric = s.counter
	case metricsGauge:
		s.gauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: c.fqName, Help: c.help, ConstLabels: constLabels})
		s.metric = s.gauge
	case metricsHistogram:
		s.histogram = prometheus.NewHistogram(prometheus.HistogramOpts{Name: c.fqName, Help: c.help, ConstLabels: constLabels, Buckets: c.buckets})
		s.metric = s.histogram
	}
	// A bad descriptor would fail every scrape of /metrics, not just
	// this series.
	if err := s.metric.Desc().Err(); err != nil {
		return nil, err
	}
	return s, nil
}

func (c *metricsCollector) maybePrune(now time.Time) {
	c.mu.Lock()
	if now.Sub(c.lastPrune) >= min(metricsPruneEvery, c.idle) {
		c.pruneLocked(now)
	}
	c.mu.Unlock()
}

// pruneLocked removes series idle for max_idle_duration or longer, as
// Promtail does.
func (c *metricsCollector) pruneLocked(now time.Time) {
	c.lastPrune = now
	cutoff := now.Add(-c.idle).UnixNano()
	for h, chain := range c.series {
		kept := chain[:0]
		for _, s := range chain {
			if s.lastMod.Load() <= cutoff {
				s.gone.Store(true)
				continue
			}
			kept = append(kept, s)
		}
		clear(chain[len(kept):])
		if len(kept) == 0 {
			delete(c.series, h)
		} else {
			c.series[h] = kept
		}
	}
}
