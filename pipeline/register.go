package pipeline

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// graphRegisterer collects a graph's config-defined metrics, checked
// against each other while the graph is built, serves them from the agent's
// registry only once the graph starts (the old graph of a reload has
// stopped by then), and removes them when the graph stops.
type graphRegisterer struct {
	reg  prometheus.Registerer
	temp *prometheus.Registry

	mu     sync.Mutex
	cols   []prometheus.Collector
	active bool
}

func newGraphRegisterer(reg prometheus.Registerer) *graphRegisterer {
	return &graphRegisterer{reg: reg, temp: prometheus.NewRegistry()}
}

func (g *graphRegisterer) Register(c prometheus.Collector) error {
	if err := g.temp.Register(c); err != nil {
		return err
	}
	g.mu.Lock()
	active := g.active
	g.mu.Unlock()
	if active {
		if err := g.reg.Register(c); err != nil {
			g.temp.Unregister(c)
			return err
		}
	}
	g.mu.Lock()
	g.cols = append(g.cols, c)
	g.mu.Unlock()
	return nil
}

func (g *graphRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := g.Register(c); err != nil {
			panic(err)
		}
	}
}

func (g *graphRegisterer) Unregister(c prometheus.Collector) bool {
	g.mu.Lock()
	for i, x := range g.cols {
		if x == c {
			g.cols = append(g.cols[:i], g.cols[i+1:]...)
			break
		}
	}
	g.mu.Unlock()
	g.temp.Unregister(c)
	return g.reg.Unregister(c)
}

// activate serves the collected metrics.
func (g *graphRegisterer) activate() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.active = true
	var errs []error
	for _, c := range g.cols {
		if err := g.reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (g *graphRegisterer) unregisterAll() {
	g.mu.Lock()
	cols := g.cols
	g.cols = nil
	g.active = false
	g.mu.Unlock()
	for _, c := range cols {
		g.reg.Unregister(c)
	}
}

// RegisterOrReuse registers c, or returns the collector already registered
// under the same descriptor (two processors defining the same metric).
func RegisterOrReuse(reg prometheus.Registerer, c prometheus.Collector) (prometheus.Collector, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector, nil
		}
		return nil, err
	}
	return c, nil
}
