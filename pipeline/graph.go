package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Graph is a built config: its components, wired and ready to start.
type Graph struct {
	cfg       *Config
	logger    *slog.Logger
	metrics   *Metrics
	positions *Positions
	budget    *Budget

	sources []*sourceNode
	sinks   []namedSink
	routes  []*route
	reg     *graphRegisterer
	// closers are the metrics sources that hold resources (a Docker
	// Engine connection); they are closed when the graph stops or is
	// discarded.
	closers []io.Closer

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	syncWG  sync.WaitGroup
	stopped bool
}

type sourceNode struct {
	name string
	src  Source
	out  *output
}

type namedSink struct {
	name string
	sink Sink
}

// route is one pipeline as seen from one of its sources.
type route struct {
	pipeline   string
	processors []Processor
	sinks      []Sink
	// mu serialises processing: sources emit from several goroutines,
	// and processors keep state.
	mu sync.Mutex
}

// output routes a source's batches through its pipelines.
type output struct {
	budget *Budget
	routes []*route
	// clones is how many routes get a private copy of each batch: with
	// several pipelines on one source, each pipeline that has processors
	// gets its own copy so processors never see each other's changes.
	clones int
}

// Emit implements Output.
func (o *output) Emit(ctx context.Context, b *Batch) error {
	n := b.Bytes() * int64(1+o.clones)
	tenant := budgetTenant(b)
	if err := o.budget.Acquire(ctx, tenant, n); err != nil {
		return err
	}
	b.release = func() { o.budget.Release(tenant, n) }
	if len(o.routes) == 1 {
		deliver(o.routes[0], b)
		return nil
	}
	// Take every copy before any processor runs.
	per := make([]*Batch, len(o.routes))
	for i, r := range o.routes {
		if len(r.processors) > 0 {
			per[i] = b.Clone()
		} else {
			b.Hold()
			per[i] = b
		}
	}
	for i, r := range o.routes {
		deliver(r, per[i])
	}
	b.Settle()
	return nil
}

// budgetTenant is the tenant a batch's bytes count against in the budget:
// its entries' tenant when they share one (as a docker source's batches
// do), else "".
func budgetTenant(b *Batch) string {
	if len(b.Entries) == 0 {
		return ""
	}
	t := b.Entries[0].Tenant
	if t == "" {
		return "" // all "" or mixed: "" either way, without a look at the rest
	}
	for i := 1; i < len(b.Entries); i++ {
		if b.Entries[i].Tenant != t {
			return ""
		}
	}
	return t
}

// deliver runs b through a pipeline and settles the reference it was given.
func deliver(r *route, b *Batch) {
	if len(r.processors) > 0 {
		r.mu.Lock()
		defer r.mu.Unlock()
	}
	r.finish(0, b)
}

// finish runs b through the processors from index from on, then the
// sinks, and settles the caller's reference. r.mu is held when there are
// processors.
func (r *route) finish(from int, b *Batch) {
	for _, p := range r.processors[from:] {
		p.Process(b)
		if len(b.Entries) == 0 {
			break
		}
	}
	if len(b.Entries) > 0 {
		for _, s := range r.sinks {
			s.Consume(b)
		}
	}
	b.Settle()
}

// flush releases what Flusher processors hold whose wait is over, or
// everything when force is set.
func (r *route) flush(now time.Time, force bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, p := range r.processors {
		if f, ok := p.(Flusher); ok {
			if b := f.Flush(now, force); b != nil {
				r.finish(i+1, b)
			}
		}
	}
}

func (r *route) hasFlusher() bool {
	for _, p := range r.processors {
		if _, ok := p.(Flusher); ok {
			return true
		}
	}
	return false
}

// Build creates every component of cfg. Nothing reads or sends until Start.
// An error names the component and, for config problems, the position.
func Build(cfg *Config, logger *slog.Logger, metrics *Metrics) (_ *Graph, err error) {
	return BuildWith(cfg, logger, metrics, prometheus.NewRegistry())
}

// BuildWith is Build with the registry that config-defined metrics (the
// metrics stage) are served from.
func BuildWith(cfg *Config, logger *slog.Logger, metrics *Metrics, reg prometheus.Registerer) (_ *Graph, err error) {
	d := Decoder{File: cfg.File}
	g := &Graph{cfg: cfg, logger: logger, metrics: metrics, reg: newGraphRegisterer(reg)}
	defer func() {
		if err != nil {
			g.reg.unregisterAll()
			g.closeMetricsSources()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = g.closeSinks(ctx)
		}
	}()
	if g.positions, err = OpenPositions(cfg.Positions.Filename, cfg.Positions.IgnoreInvalidYAML); err != nil {
		return nil, err
	}
	if cfg.DryRun {
		g.positions.SetReadOnly()
	}
	g.budget = NewBudget(int64(cfg.Buffer.MaxBytes), func(used int64) { metrics.BufferBytes.Set(float64(used)) })
	metrics.BufferCapacity.Set(float64(cfg.Buffer.MaxBytes))
	g.budget.onTenant = func(tenant string, held int64) { metrics.BufferTenant.WithLabelValues(tenant).Set(float64(held)) }
	g.budget.onPressure = func() {
		for _, s := range g.sinks {
			if f, ok := s.sink.(NowFlusher); ok {
				f.FlushNow()
			}
		}
	}

	env := func(name, kind string) Env {
		return Env{Name: name, Decoder: d, Logger: logger.With(kind, name), Metrics: metrics, Positions: g.positions, Registerer: g.reg}
	}
	sinks := map[string]Sink{}
	for _, c := range cfg.Sinks {
		f, ok := lookup(registry.sinks, c.Type)
		if !ok {
			return nil, d.Errorf(c.At, "sink %q: unknown type %q%s", c.Name, c.Type, suggest(c.Type, SinkTypes()))
		}
		s, err := f(env(c.Name, "sink"), c.Node)
		if err != nil {
			return nil, wrapComponentErr("sink", c, err)
		}
		sinks[c.Name] = s
		g.sinks = append(g.sinks, namedSink{c.Name, s})
	}
	routesBySource := map[string][]*route{}
	for _, p := range cfg.Pipelines {
		r := &route{pipeline: p.Name}
		for _, ref := range p.Processors {
			c, _ := cfg.Processors.Get(ref.Name)
			f, ok := lookup(registry.processors, c.Type)
			if !ok {
				return nil, d.Errorf(c.At, "processor %q: unknown type %q%s", c.Name, c.Type, suggest(c.Type, ProcessorTypes()))
			}
			// Each pipeline gets its own instance: processors may keep state.
			proc, err := f(env(c.Name, "processor"), c.Node)
			if err != nil {
				return nil, wrapComponentErr("processor", c, err)
			}
			if cfg.Inspect != nil {
				proc = inspect(cfg.Inspect, c.Type, c.Name, proc)
			}
			r.processors = append(r.processors, proc)
		}
		g.routes = append(g.routes, r)
		for _, ref := range p.Sinks {
			r.sinks = append(r.sinks, sinks[ref.Name])
		}
		for _, ref := range p.Sources {
			routesBySource[ref.Name] = append(routesBySource[ref.Name], r)
		}
	}
	for _, c := range cfg.Sources {
		if mf, ok := lookup(registry.metrics, c.Type); ok {
			col, err := mf(env(c.Name, "source"), c.Node)
			if err != nil {
				return nil, wrapComponentErr("source", c, err)
			}
			if cl, ok := col.(io.Closer); ok {
				g.closers = append(g.closers, cl)
			}
			// Served from the agent's registry once the graph starts, and
			// removed when it stops: a reload swaps it with the new one.
			if err := g.reg.Register(col); err != nil {
				return nil, d.Errorf(c.NameAt, "source %q (type %s): cannot serve its metrics: %v (two sources of this type would expose the same series)", c.Name, c.Type, err)
			}
			continue
		}
		f, ok := lookup(registry.sources, c.Type)
		if !ok {
			return nil, d.Errorf(c.At, "source %q: unknown type %q%s", c.Name, c.Type, suggest(c.Type, SourceTypes()))
		}
		src, err := f(env(c.Name, "source"), c.Node)
		if err != nil {
			return nil, wrapComponentErr("source", c, err)
		}
		out := &output{budget: g.budget, routes: routesBySource[c.Name]}
		if len(out.routes) > 1 {
			for _, r := range out.routes {
				if len(r.processors) > 0 {
					out.clones++
				}
			}
		}
		g.sources = append(g.sources, &sourceNode{name: c.Name, src: src, out: out})
	}
	return g, nil
}

func wrapComponentErr(kind string, c Component, err error) error {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf("%s %q (type %s): %w", kind, c.Name, c.Type, err)
}

// Config is the config the graph was built from.
func (g *Graph) Config() *Config { return g.cfg }

// Positions is the graph's checkpoint store.
func (g *Graph) Positions() *Positions { return g.positions }

// Start runs the sources and the periodic positions sync.
func (g *Graph) Start() {
	if err := g.reg.activate(); err != nil {
		g.logger.Error("registering config-defined metrics", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	for _, s := range g.sources {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := s.src.Run(ctx, s.out); err != nil && ctx.Err() == nil {
				g.logger.Error("source stopped", "source", s.name, "err", err)
			}
		}()
	}
	var flushing []*route
	for _, r := range g.routes {
		if r.hasFlusher() {
			flushing = append(flushing, r)
		}
	}
	if len(flushing) > 0 {
		g.syncWG.Add(1)
		go func() {
			defer g.syncWG.Done()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					for _, r := range flushing {
						r.flush(now, false)
					}
				}
			}
		}()
	}
	g.syncWG.Add(1)
	go func() {
		defer g.syncWG.Done()
		g.positions.Run(ctx, g.cfg.Positions.SyncPeriod, func(err error) {
			g.logger.Error("saving positions", "err", err)
		})
	}()
}

// Stop shuts the graph down in the order that loses nothing: sources stop
// reading, sinks deliver what they hold until the deadline, then the
// positions of everything settled are saved. Entries still unsettled at the
// deadline are not checkpointed, so they are read again on the next start.
func (g *Graph) Stop(timeout time.Duration) error {
	if g.stopped {
		return nil
	}
	g.stopped = true
	if g.cancel != nil {
		g.cancel()
	}
	g.wg.Wait()
	g.syncWG.Wait()
	// Entries processors still carry (multiline) go out before the sinks
	// drain.
	for _, r := range g.routes {
		if r.hasFlusher() {
			r.flush(time.Now(), true)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := g.closeSinks(ctx)
	g.reg.unregisterAll()
	g.closeMetricsSources()
	if perr := g.positions.Save(); perr != nil {
		err = errors.Join(err, perr)
	}
	return err
}

// closeMetricsSources closes the metrics sources that implement
// io.Closer, once they are no longer served.
func (g *Graph) closeMetricsSources() {
	for _, c := range g.closers {
		if err := c.Close(); err != nil {
			g.logger.Warn("closing a metrics source", "err", err)
		}
	}
	g.closers = nil
}

func (g *Graph) closeSinks(ctx context.Context) error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range g.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.sink.Close(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("sink %q: %w", s.name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Discard releases a graph that was built but never started, as validation
// does.
func (g *Graph) Discard() error {
	g.stopped = true
	g.reg.unregisterAll()
	g.closeMetricsSources()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return g.closeSinks(ctx)
}
