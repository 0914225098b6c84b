package pipeline

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

// carryProcessor keeps every entry back and releases them on Flush, the
// way multiline carries a block across batches.
type carryProcessor struct {
	held    []Entry
	sources []*Batch
}

func (c *carryProcessor) Process(b *Batch) {
	c.held = append(c.held, b.Entries...)
	b.Entries = b.Entries[:0]
	b.Hold()
	c.sources = append(c.sources, b)
}

func (c *carryProcessor) Flush(now time.Time, force bool) *Batch {
	if len(c.held) == 0 {
		return nil
	}
	out := NewBatch(len(c.held), nil)
	out.Entries = append(out.Entries, c.held...)
	for _, s := range c.sources {
		out.Attach(s)
	}
	c.held, c.sources = nil, nil
	return out
}

var counterDefs atomic.Int32

func init() {
	RegisterProcessor("test_carry", func(env Env, n *yaml.Node) (Processor, error) {
		return &carryProcessor{}, nil
	})
	RegisterProcessor("test_counter", func(env Env, n *yaml.Node) (Processor, error) {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_stage_defined_total", Help: "defined by a stage"})
		got, err := RegisterOrReuse(env.Registerer, c)
		if err != nil {
			return nil, err
		}
		counterDefs.Add(1)
		return counterProcessor{got.(prometheus.Counter)}, nil
	})
}

type counterProcessor struct{ c prometheus.Counter }

func (p counterProcessor) Process(b *Batch) { p.c.Add(float64(len(b.Entries))) }

func TestCarriedEntriesKeepTheirSourceBatchUnsettled(t *testing.T) {
	cfg := mustLoad(t, `
sources: {carry_src: {type: test_chan}}
processors: {carry: {type: test_carry}}
sinks: {carry_sink: {type: test_hold}}
pipelines:
  p: {sources: [carry_src], processors: [carry], sinks: [carry_sink]}
`)
	startGraph(t, cfg)
	var settled atomic.Int32
	emit(t, testSources["carry_src"], batchOf(func() { settled.Add(1) }, "first line", "continued"))
	if settled.Load() != 0 {
		t.Fatal("source batch settled while its entries were carried")
	}
	sink := testSinks["carry_sink"]
	deadline := time.Now().Add(10 * time.Second)
	for len(sink.snapshot()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the runner never flushed the carried entries")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if settled.Load() != 0 {
		t.Fatal("source batch settled before the sink settled the flushed entries")
	}
	sink.settleAll()
	if settled.Load() != 1 {
		t.Fatal("source batch not settled after its carried entries were delivered")
	}
}

func TestStopFlushesCarriedEntries(t *testing.T) {
	cfg := mustLoad(t, `
sources: {carry2_src: {type: test_chan}}
processors: {carry: {type: test_carry}}
sinks: {carry2_sink: {type: test_hold}}
pipelines:
  p: {sources: [carry2_src], processors: [carry], sinks: [carry2_sink]}
`)
	g, err := Build(cfg, quiet, NewTestMetrics())
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	// Stop at once, before the flush ticker can run.
	src := testSources["carry2_src"]
	src.in <- batchOf(nil, "carried")
	if err := <-src.emitErr; err != nil {
		t.Fatal(err)
	}
	sink := testSinks["carry2_sink"]
	sink.onClose = sink.settleAll
	if err := g.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := sink.snapshot(); len(got) != 1 {
		t.Fatalf("carried entry not delivered at stop: %v", got)
	}
}

func TestConfigDefinedMetricsLiveWithTheirGraph(t *testing.T) {
	reg := prometheus.NewRegistry()
	src := `
sources: {m_src: {type: test_chan}}
processors: {a: {type: test_counter}, b: {type: test_counter}}
sinks: {m_sink: {type: test_hold}}
pipelines:
  p: {sources: [m_src], processors: [a, b], sinks: [m_sink]}
`
	g1, err := BuildWith(mustLoad(t, src), quiet, NewTestMetrics(), reg)
	if err != nil {
		t.Fatalf("two processors defining one metric must share it: %v", err)
	}
	g1.Start()
	// A reload builds the next graph while the old one still runs.
	g2, err := BuildWith(mustLoad(t, src), quiet, NewTestMetrics(), reg)
	if err != nil {
		t.Fatalf("building the next graph collided with the running one: %v", err)
	}
	if err := g1.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	g2.Start()
	defer g2.Stop(time.Second)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "test_stage_defined_total"
	}
	if !found {
		t.Fatal("the running graph's stage metric is not served")
	}
}

func TestInspectReportsChanges(t *testing.T) {
	var buf bytes.Buffer
	cfg := mustLoad(t, `
sources: {insp_src: {type: test_chan}}
processors: {up: {type: test_upper}}
sinks: {insp_sink: {type: test_hold}}
pipelines:
  p: {sources: [insp_src], processors: [up], sinks: [insp_sink]}
`)
	cfg.Inspect = &buf
	startGraph(t, cfg)
	emit(t, testSources["insp_src"], batchOf(nil, "abc", "ABC"))
	out := buf.String()
	if !strings.Contains(out, `line: "abc" -> "ABC"`) || !strings.Contains(out, `[inspect: test_upper stage "up"]: none`) {
		t.Fatalf("inspect output:\n%s", out)
	}
	testSinks["insp_sink"].settleAll()
}
