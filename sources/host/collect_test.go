package host

// Helpers for tests of one collector outside the host source: build it,
// run one Update through a registry, render or benchmark it.

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// specByName returns the registered collector name.
func specByName(t testing.TB, name string) Spec {
	t.Helper()
	s, ok := lookupSpec(name)
	if !ok {
		t.Fatalf("collector %q is not registered", name)
	}
	return s
}

// newCollector builds collector name on paths with its option defaults,
// overridden by opts (short option names, which it must declare).
func newCollector(t testing.TB, name string, paths Paths, opts map[string]string) Collector {
	t.Helper()
	spec := specByName(t, name)
	env := &Env{Paths: paths, Logger: slog.New(slog.DiscardHandler), name: name, options: map[string]string{}}
	for _, o := range spec.Options {
		env.options[name+"."+o.Name] = o.Default
	}
	for k, v := range opts {
		if _, ok := env.options[name+"."+k]; !ok {
			t.Fatalf("collector %s has no option %q", name, k)
		}
		env.options[name+"."+k] = v
	}
	c, err := spec.New(env)
	if err != nil {
		t.Fatalf("new %s: %v", name, err)
	}
	return c
}

// fixtureCollector builds collector name on the fixture trees with the
// end-to-end test's options for it, overridden by opts (short names).
func fixtureCollector(t testing.TB, name string, opts map[string]string) Collector {
	t.Helper()
	all := map[string]string{}
	for k, v := range fixtureOptions {
		if short, ok := strings.CutPrefix(k, name+"."); ok && !fixtureOptionsNotDeclared[k] {
			all[short] = v
		}
	}
	for k, v := range opts {
		all[k] = v
	}
	return newCollector(t, name, fixturePaths(t), all)
}

// collectorAdapter makes a Collector a prometheus.Collector; it describes
// nothing, which makes it an unchecked collector.
type collectorAdapter struct {
	c   Collector
	err error
}

func (a *collectorAdapter) Describe(chan<- *prometheus.Desc) {}
func (a *collectorAdapter) Collect(ch chan<- prometheus.Metric) {
	a.err = a.c.Update(ch)
}

// collect runs one Update through a registry, which checks consistency,
// and returns the families by name. An error fails the test.
func collect(t testing.TB, c Collector) map[string]*dto.MetricFamily {
	t.Helper()
	a := &collectorAdapter{c: c}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(a)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	if a.err != nil {
		t.Fatalf("update: %v", a.err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// exposition renders families in the text exposition format, by name.
func exposition(t testing.TB, mfs map[string]*dto.MetricFamily) string {
	t.Helper()
	var buf bytes.Buffer
	for _, name := range sortedKeys(mfs) {
		if _, err := expfmt.MetricFamilyToText(&buf, mfs[name]); err != nil {
			t.Fatalf("render %s: %v", name, err)
		}
	}
	return buf.String()
}

// benchUpdate measures one Update of c, the metrics drained and dropped.
func benchUpdate(b *testing.B, c Collector) {
	ch := make(chan prometheus.Metric, 1024)
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Update(ch); err != nil {
			b.Fatal(err)
		}
	}
	close(ch)
	<-done
}
