package pipeline

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func startGraph(t *testing.T, cfg *Config) *Graph {
	t.Helper()
	g, err := Build(cfg, quiet, NewTestMetrics())
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	g.Start()
	t.Cleanup(func() { _ = g.Stop(time.Second) })
	return g
}

func emit(t *testing.T, src *chanSource, b *Batch) {
	t.Helper()
	src.in <- b
	if err := <-src.emitErr; err != nil {
		t.Fatalf("emit: %v", err)
	}
}

func TestFanOutSettlesOnlyAfterEverySink(t *testing.T) {
	cfg := mustLoad(t, `
sources: {fan_src: {type: test_chan}}
sinks:
  fan_a: {type: test_hold}
  fan_b: {type: test_hold}
pipelines:
  p: {sources: [fan_src], sinks: [fan_a, fan_b]}
`)
	startGraph(t, cfg)
	var settled atomic.Int32
	emit(t, testSources["fan_src"], batchOf(func() { settled.Add(1) }, "one", "two"))
	a, b := testSinks["fan_a"], testSinks["fan_b"]
	if got := a.snapshot(); !reflect.DeepEqual(got, []string{"one", "two"}) {
		t.Fatalf("sink a got %v", got)
	}
	if got := b.snapshot(); !reflect.DeepEqual(got, []string{"one", "two"}) {
		t.Fatalf("sink b got %v", got)
	}
	if settled.Load() != 0 {
		t.Fatal("batch settled before any sink settled")
	}
	a.settleAll()
	if settled.Load() != 0 {
		t.Fatal("batch settled after only one of two sinks")
	}
	b.settleAll()
	if settled.Load() != 1 {
		t.Fatalf("batch settled %d times after both sinks, want 1", settled.Load())
	}
}

func TestPipelinesWithProcessorsGetTheirOwnCopy(t *testing.T) {
	cfg := mustLoad(t, `
sources: {copy_src: {type: test_chan}}
processors: {up: {type: test_upper}}
sinks:
  copy_raw: {type: test_hold}
  copy_up: {type: test_hold}
pipelines:
  raw: {sources: [copy_src], sinks: [copy_raw]}
  upper: {sources: [copy_src], processors: [up], sinks: [copy_up]}
`)
	g := startGraph(t, cfg)
	var settled atomic.Int32
	emit(t, testSources["copy_src"], batchOf(func() { settled.Add(1) }, "keep", "drop"))
	if got := testSinks["copy_raw"].snapshot(); !reflect.DeepEqual(got, []string{"keep", "drop"}) {
		t.Fatalf("raw pipeline saw %v: the other pipeline's processor leaked into it", got)
	}
	if got := testSinks["copy_up"].snapshot(); !reflect.DeepEqual(got, []string{"KEEP"}) {
		t.Fatalf("upper pipeline got %v", got)
	}
	if used := g.budget.Used(); used == 0 {
		t.Fatal("budget not held while sinks hold the batch")
	}
	testSinks["copy_raw"].settleAll()
	if settled.Load() != 0 {
		t.Fatal("settled before the second pipeline's sink")
	}
	testSinks["copy_up"].settleAll()
	if settled.Load() != 1 {
		t.Fatal("not settled after both pipelines")
	}
	if used := g.budget.Used(); used != 0 {
		t.Fatalf("budget still holds %d bytes after settlement", used)
	}
}

func TestBatchFullyDroppedByProcessorSettles(t *testing.T) {
	cfg := mustLoad(t, `
sources: {drop_src: {type: test_chan}}
processors: {up: {type: test_upper}}
sinks: {drop_sink: {type: test_hold}}
pipelines:
  p: {sources: [drop_src], processors: [up], sinks: [drop_sink]}
`)
	startGraph(t, cfg)
	var settled atomic.Int32
	emit(t, testSources["drop_src"], batchOf(func() { settled.Add(1) }, "drop"))
	if settled.Load() != 1 {
		t.Fatal("a batch whose every entry was dropped must settle at once")
	}
	if n := len(testSinks["drop_sink"].snapshot()); n != 0 {
		t.Fatalf("sink got %d entries, want none", n)
	}
}

func TestBackpressureBlocksEmitUntilSettled(t *testing.T) {
	cfg := mustLoad(t, `
buffer: {max_bytes: 1MiB}
sources: {bp_src: {type: test_chan}}
sinks: {bp_sink: {type: test_hold}}
pipelines:
  p: {sources: [bp_src], sinks: [bp_sink]}
`)
	g := startGraph(t, cfg)
	big := func() *Batch {
		b := NewBatch(1, nil)
		b.Entries = append(b.Entries, Entry{Line: make([]byte, 640<<10)})
		return b
	}
	src := testSources["bp_src"]
	emit(t, src, big())
	src.in <- big()
	select {
	case err := <-src.emitErr:
		t.Fatalf("second emit returned (%v) although the budget was full", err)
	case <-time.After(200 * time.Millisecond):
	}
	if used := g.budget.Used(); used > 1<<20 {
		t.Fatalf("budget over capacity: %d", used)
	}
	testSinks["bp_sink"].settleAll()
	select {
	case err := <-src.emitErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("emit still blocked after the first batch settled")
	}
}

func TestStopClosesSinksAfterSourcesAndSavesPositions(t *testing.T) {
	dir := t.TempDir()
	cfg := mustLoad(t, `
positions: {filename: `+filepath.Join(dir, "pos.yaml")+`}
sources: {stop_src: {type: test_chan}}
sinks: {stop_sink: {type: test_hold}}
pipelines:
  p: {sources: [stop_src], sinks: [stop_sink]}
`)
	g, err := Build(cfg, quiet, NewTestMetrics())
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	sink := testSinks["stop_sink"]
	src := testSources["stop_src"]
	// The source checkpoints from the settle callback, as real ones do.
	emit(t, src, batchOf(func() { g.Positions().PutOffset("/var/log/x", 42) }, "a"))
	sink.onClose = sink.settleAll // a sink drains on close
	if err := g.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !sink.closed {
		t.Fatal("sink not closed")
	}
	p, err := OpenPositions(filepath.Join(dir, "pos.yaml"), false)
	if err != nil {
		t.Fatal(err)
	}
	if off, ok := p.GetOffset("/var/log/x"); !ok || off != 42 {
		t.Fatalf("saved offset %d %v, want 42", off, ok)
	}
}

func TestEmitAfterStopFails(t *testing.T) {
	cfg := mustLoad(t, `
buffer: {max_bytes: 1MiB}
sources: {cancel_src: {type: test_chan}}
sinks: {cancel_sink: {type: test_hold}}
pipelines:
  p: {sources: [cancel_src], sinks: [cancel_sink]}
`)
	g, err := Build(cfg, quiet, NewTestMetrics())
	if err != nil {
		t.Fatal(err)
	}
	out := g.sources[0].out
	ctx, cancel := context.WithCancel(context.Background())
	b := NewBatch(1, nil)
	b.Entries = append(b.Entries, Entry{Line: make([]byte, 900<<10)})
	if err := out.Emit(ctx, b); err != nil {
		t.Fatal(err)
	}
	cancel()
	b2 := NewBatch(1, func() { t.Error("a batch that was refused must never settle") })
	b2.Entries = append(b2.Entries, Entry{Line: make([]byte, 900<<10)})
	if err := out.Emit(ctx, b2); err == nil {
		t.Fatal("emit into a full budget with a cancelled context succeeded")
	}
	_ = g.Discard()
}

// A tenant whose batches never settle (its Loki keeps failing) does not
// stop another tenant's batches, even one that shows up only after it
// filled its share of the budget.
func TestFailingTenantDoesNotStallOthers(t *testing.T) {
	cfg := mustLoad(t, `
buffer: {max_bytes: 1MiB}
sources: {ft_a: {type: test_chan}, ft_b: {type: test_chan}}
sinks: {ft_sink: {type: test_hold}}
pipelines:
  p: {sources: [ft_a, ft_b], sinks: [ft_sink]}
`)
	g := startGraph(t, cfg)
	batch := func(tenant string) *Batch {
		b := NewBatch(1, nil)
		b.Entries = append(b.Entries, Entry{Line: make([]byte, 100<<10), Tenant: tenant})
		return b
	}
	a, b, sink := testSources["ft_a"], testSources["ft_b"], testSinks["ft_sink"]
	// Tenant a, alone so far, fills its half of the budget; nothing of it
	// settles.
	for range 5 {
		emit(t, a, batch("a"))
	}
	a.in <- batch("a")
	select {
	case err := <-a.emitErr:
		t.Fatalf("tenant a's sixth 100 KiB batch was taken (%v): it would hold more than half of 1 MiB", err)
	case <-time.After(200 * time.Millisecond):
	}
	var m dto.Metric
	if err := g.metrics.BufferTenant.WithLabelValues("a").Write(&m); err != nil || m.GetGauge().GetValue() < 500<<10 {
		t.Errorf("vigil_buffer_tenant_bytes{tenant=\"a\"} = %v (%v), want its 5 batches", m.GetGauge().GetValue(), err)
	}
	// Tenant b keeps flowing, far past the budget's size, as its batches
	// settle.
	for i := range 30 {
		b.in <- batch("b")
		select {
		case err := <-b.emitErr:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("tenant b's batch %d waits behind tenant a's", i)
		}
		sink.settleWhere(func(bt *Batch) bool { return bt.Entries[0].Tenant == "b" })
	}
}
