package processors

import (
	"log/slog"
	"sort"
	"strings"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// cardinalityLimit caps the distinct streams of each tenant. Promtail has
// no such stage: a label with unbounded values (a request id, a pod hash)
// creates a stream per value, which Loki punishes by rejecting pushes for
// the whole tenant. Over the cap, vigil keeps the line and moves the
// offending labels into structured metadata, where Loki still stores and
// queries them without creating streams.
//
//	type: cardinality_limit
//	max_streams: 500                 # per tenant; required
//	labels: [request_id, pod]        # demotable, in order; default: every
//	                                 # label that is not protected
//	protected_labels: [job, tenant, container, service]   # the default
//	forget_after: 1h                 # the default
//
// Demotions are counted in vigil_cardinality_demoted_total{component,
// tenant} and logged at most once a minute per tenant.
//
// A stream is its label set's hash within its tenant. Streams not seen for
// forget_after are forgotten, so the set stays bounded and a burst of
// short-lived streams frees its room once it is over.
//
// Under the cap every new stream is admitted. Over it, a new stream has
// its demotable labels moved to metadata: with `labels` given, one at a
// time in that order until the reduced set is a stream already known (so
// as many labels as possible survive without adding a stream); otherwise,
// or when no reduction is known, all of them at once. The reduced stream
// is admitted even over the cap: its count is bounded by the values of
// the labels that cannot be demoted.
type cardinalityLimit struct {
	max       int
	demotable []string        // in demotion order; nil means all but protected
	protected map[string]bool // only used when demotable is nil
	forget    time.Duration
	now       func() time.Time
	logger    *slog.Logger
	vec       *prometheus.CounterVec
	component string

	tenants   map[string]*cardinalityTenant
	lastSweep time.Time

	// Demotion decisions for inputs seen before, so that a demoted stream
	// costs a lookup instead of new label sets per entry.
	memo map[cardinalityMemoKey]*cardinalityDemotion

	lastTenantName string
	lastTenant     *cardinalityTenant

	// The previous entry's tenant and label slice, and what became of it.
	lastKeyTenant *cardinalityTenant
	lastPtr       *pipeline.Label
	lastLen       int
	lastStream    *cardinalityStream
	lastDemotion  *cardinalityDemotion

	skip []bool // scratch: labels left out of a reduced set
}

type cardinalityTenant struct {
	name    string
	streams map[uint64]*cardinalityStream
	// epoch moves when streams are forgotten: memoised demotions decided
	// while the tenant was full are then decided again, as there may be
	// room now.
	epoch   uint64
	demoted prometheus.Counter
	lastLog time.Time
	held    int
}

type cardinalityStream struct {
	lastSeen int64 // unix ns
	gone     bool  // forgotten: holders must look again
}

type cardinalityDemotion struct {
	epoch  uint64
	labels pipeline.Labels // what stays in the stream
	meta   pipeline.Labels // what moves to structured metadata
	target *cardinalityStream
}

type cardinalityMemoKey struct {
	tenant *cardinalityTenant
	hash   uint64
}

type cardinalityConfig struct {
	MaxStreams      int            `yaml:"max_streams"`
	Labels          []string       `yaml:"labels"`
	ProtectedLabels *[]string      `yaml:"protected_labels"`
	ForgetAfter     *time.Duration `yaml:"forget_after"`
}

var cardinalityDefaultProtected = []string{"job", "tenant", "container", "service"}

const (
	cardinalityDefaultForget = time.Hour
	cardinalitySweepEvery    = time.Minute
	cardinalityMemoMax       = 16384
	cardinalityLogEvery      = time.Minute
)

func init() {
	pipeline.RegisterProcessor("cardinality_limit", newCardinalityLimit)
}

func newCardinalityLimit(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	d := env.Decoder
	var cfg cardinalityConfig
	if err := d.Decode(node, &cfg); err != nil {
		return nil, err
	}
	if cfg.MaxStreams <= 0 {
		return nil, d.Errorf(pipeline.NodeAt(node, "max_streams"), "cardinality_limit: max_streams must be a positive number of streams per tenant")
	}
	p := &cardinalityLimit{
		max:       cfg.MaxStreams,
		forget:    cardinalityDefaultForget,
		now:       time.Now,
		logger:    env.Logger,
		component: env.Name,
		tenants:   map[string]*cardinalityTenant{},
		memo:      map[cardinalityMemoKey]*cardinalityDemotion{},
	}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	if cfg.ForgetAfter != nil {
		if *cfg.ForgetAfter <= 0 {
			return nil, d.Errorf(pipeline.NodeAt(node, "forget_after"), "cardinality_limit: forget_after must be positive")
		}
		p.forget = *cfg.ForgetAfter
	}
	protected := cardinalityDefaultProtected
	if cfg.ProtectedLabels != nil {
		protected = *cfg.ProtectedLabels
	}
	p.protected = map[string]bool{}
	for _, n := range protected {
		p.protected[n] = true
	}
	if cfg.Labels != nil {
		labelsNode := pipeline.NodeAt(node, "labels")
		seen := map[string]bool{}
		for i, n := range cfg.Labels {
			at := labelsNode
			if i < len(labelsNode.Content) {
				at = labelsNode.Content[i]
			}
			switch {
			case n == "":
				return nil, d.Errorf(at, "cardinality_limit: empty label name in labels")
			case seen[n]:
				return nil, d.Errorf(at, "cardinality_limit: label %q listed twice", n)
			case p.protected[n]:
				return nil, d.Errorf(at, "cardinality_limit: label %q is protected and cannot be demoted; remove it from labels or from protected_labels", n)
			}
			seen[n] = true
		}
		if len(cfg.Labels) == 0 {
			return nil, d.Errorf(labelsNode, "cardinality_limit: labels is empty, so nothing could be demoted; leave it out to demote every label that is not protected")
		}
		p.demotable = cfg.Labels
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_cardinality_demoted_total",
		Help: "Entries of streams over the cardinality limit whose labels were moved to structured metadata.",
	}, []string{"component", "tenant"})
	reg := env.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	got, err := pipeline.RegisterOrReuse(reg, vec)
	if err != nil {
		return nil, d.Errorf(node, "cardinality_limit: %v", err)
	}
	if p.vec, _ = got.(*prometheus.CounterVec); p.vec == nil {
		return nil, d.Errorf(node, "cardinality_limit: vigil_cardinality_demoted_total is already registered by another component")
	}
	return p, nil
}

func (p *cardinalityLimit) Process(b *pipeline.Batch) {
	now := p.now()
	if now.Sub(p.lastSweep) >= min(cardinalitySweepEvery, p.forget) {
		p.sweep(now)
	}
	nowNs := now.UnixNano()
	for i := range b.Entries {
		p.entry(&b.Entries[i], now, nowNs)
	}
}

func (p *cardinalityLimit) tenant(name string) *cardinalityTenant {
	if p.lastTenant != nil && name == p.lastTenantName {
		return p.lastTenant
	}
	t := p.tenants[name]
	if t == nil {
		t = &cardinalityTenant{
			name:    name,
			streams: map[uint64]*cardinalityStream{},
			demoted: p.vec.WithLabelValues(p.component, name),
		}
		p.tenants[name] = t
	}
	p.lastTenantName, p.lastTenant = name, t
	return t
}

func (p *cardinalityLimit) entry(e *pipeline.Entry, now time.Time, nowNs int64) {
	t := p.tenant(e.Tenant)
	ptr := unsafe.SliceData(e.Labels)
	if t == p.lastKeyTenant && ptr == p.lastPtr && len(e.Labels) == p.lastLen {
		if s := p.lastStream; s != nil && !s.gone {
			s.lastSeen = nowNs
			return
		}
		if d := p.lastDemotion; d != nil && d.epoch == t.epoch && !d.target.gone {
			p.apply(t, e, d, now, nowNs)
			return
		}
	}
	h := cardinalityHash(e.Labels, nil)
	p.lastKeyTenant, p.lastPtr, p.lastLen = t, ptr, len(e.Labels)
	p.lastStream, p.lastDemotion = nil, nil
	if s, ok := t.streams[h]; ok {
		s.lastSeen = nowNs
		p.lastStream = s
		return
	}
	key := cardinalityMemoKey{t, h}
	if d, ok := p.memo[key]; ok && d.epoch == t.epoch && !d.target.gone {
		p.apply(t, e, d, now, nowNs)
		p.lastDemotion = d
		return
	}
	if len(t.streams) < p.max {
		s := &cardinalityStream{lastSeen: nowNs}
		t.streams[h] = s
		p.lastStream = s
		return
	}
	d := p.demote(t, e.Labels, nowNs)
	if d == nil {
		// Only protected labels: nothing can move, and dropping the line
		// is what this stage exists to avoid.
		s := &cardinalityStream{lastSeen: nowNs}
		t.streams[h] = s
		p.lastStream = s
		p.warn(t, now, "cardinality limit reached, but the new stream has only protected labels; admitted over the limit",
			"stream", e.Labels.String())
		return
	}
	if len(p.memo) >= cardinalityMemoMax {
		clear(p.memo)
	}
	p.memo[key] = d
	p.lastDemotion = d
	p.apply(t, e, d, now, nowNs)
}

// demote decides the reduced stream for labels of a tenant that is full,
// or returns nil when no label may be demoted.
func (p *cardinalityLimit) demote(t *cardinalityTenant, ls pipeline.Labels, now int64) *cardinalityDemotion {
	if cap(p.skip) < len(ls) {
		p.skip = make([]bool, len(ls))
	}
	skip := p.skip[:len(ls)]
	clear(skip)
	n := 0
	var h uint64
	var target *cardinalityStream
	if p.demotable != nil {
		for _, name := range p.demotable {
			i := sort.Search(len(ls), func(i int) bool { return ls[i].Name >= name })
			if i == len(ls) || ls[i].Name != name {
				continue
			}
			skip[i] = true
			n++
			h = cardinalityHash(ls, skip)
			if s, ok := t.streams[h]; ok {
				target = s
				break
			}
		}
	} else {
		for i, l := range ls {
			if !p.protected[l.Name] {
				skip[i] = true
				n++
			}
		}
		if n > 0 {
			h = cardinalityHash(ls, skip)
			target = t.streams[h]
		}
	}
	if n == 0 {
		return nil
	}
	if target == nil {
		target = &cardinalityStream{lastSeen: now}
		t.streams[h] = target
	}
	d := &cardinalityDemotion{
		epoch:  t.epoch,
		labels: make(pipeline.Labels, 0, len(ls)-n),
		meta:   make(pipeline.Labels, 0, n),
		target: target,
	}
	for i, l := range ls {
		if skip[i] {
			d.meta = append(d.meta, l)
		} else {
			d.labels = append(d.labels, l)
		}
	}
	return d
}

func (p *cardinalityLimit) apply(t *cardinalityTenant, e *pipeline.Entry, d *cardinalityDemotion, now time.Time, nowNs int64) {
	e.Labels = d.labels
	if len(e.Metadata) == 0 {
		e.Metadata = d.meta
	} else {
		e.Metadata = cardinalityMergeMeta(e.Metadata, d.meta)
	}
	d.target.lastSeen = nowNs
	t.demoted.Inc()
	if now.Sub(t.lastLog) >= cardinalityLogEvery {
		names := make([]string, len(d.meta))
		for i, l := range d.meta {
			names[i] = l.Name
		}
		p.warn(t, now, "cardinality limit reached: labels moved to structured metadata",
			"labels", strings.Join(names, ","), "stream", d.labels.String())
	} else {
		t.held++
	}
}

// warn logs at most once per tenant per minute, checked before any
// argument is built so that a flood of demotions costs no allocations.
func (p *cardinalityLimit) warn(t *cardinalityTenant, now time.Time, msg string, args ...any) {
	if now.Sub(t.lastLog) < cardinalityLogEvery {
		t.held++
		return
	}
	args = append(args, "tenant", t.name, "max_streams", p.max, "streams", len(t.streams))
	if t.held > 0 {
		args = append(args, "suppressed_since_last", t.held)
	}
	t.lastLog, t.held = now, 0
	p.logger.Warn(msg, args...)
}

// sweep forgets streams not seen for forget_after.
func (p *cardinalityLimit) sweep(now time.Time) {
	p.lastSweep = now
	cutoff := now.Add(-p.forget).UnixNano()
	removed := false
	for name, t := range p.tenants {
		n := len(t.streams)
		for h, s := range t.streams {
			if s.lastSeen <= cutoff {
				s.gone = true
				delete(t.streams, h)
			}
		}
		if len(t.streams) != n {
			t.epoch++
			removed = true
		}
		if len(t.streams) == 0 && now.Sub(t.lastLog) >= cardinalityLogEvery {
			delete(p.tenants, name)
			if p.lastTenant == t {
				p.lastTenant = nil
			}
			if p.lastKeyTenant == t {
				p.lastKeyTenant = nil
			}
		}
	}
	if removed {
		clear(p.memo)
	}
}

// cardinalityHash hashes ls without the labels marked in skip, the same
// way for a full set and for a reduced one, so that a reduced set finds
// the stream of an entry that arrived with exactly those labels.
func cardinalityHash(ls pipeline.Labels, skip []bool) uint64 {
	var d xxhash.Digest
	d.Reset()
	sep := [1]byte{0xff}
	for i, l := range ls {
		if skip != nil && skip[i] {
			continue
		}
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write(sep[:])
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write(sep[:])
	}
	return d.Sum64()
}

// cardinalityMergeMeta adds the demoted labels to existing metadata,
// both sorted by name; a demoted label wins over metadata of its name.
func cardinalityMergeMeta(meta, add pipeline.Labels) pipeline.Labels {
	out := make(pipeline.Labels, 0, len(meta)+len(add))
	i, j := 0, 0
	for i < len(meta) || j < len(add) {
		switch {
		case j == len(add) || (i < len(meta) && meta[i].Name < add[j].Name):
			out = append(out, meta[i])
			i++
		case i == len(meta) || add[j].Name < meta[i].Name:
			out = append(out, add[j])
			j++
		default:
			out = append(out, add[j])
			i++
			j++
		}
	}
	return out
}
