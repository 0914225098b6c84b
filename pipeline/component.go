package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

// Source reads records and emits them in batches.
//
// Run reads until ctx ends, then returns. A source must move its checkpoint
// only from a batch's onSettled callback, never at emit time.
type Source interface {
	Run(ctx context.Context, out Output) error
}

// Output is where a source emits its batches.
type Output interface {
	// Emit runs the batch through the processors of every pipeline that
	// reads the source and hands it to their sinks. It blocks while the
	// memory budget is full, which is how backpressure reaches a source.
	// When Emit returns an error the batch was not taken and will never
	// settle; the source must not advance past it.
	Emit(ctx context.Context, b *Batch) error
}

// Processor transforms batches in place. It may rewrite entries, drop them
// by removing them from b.Entries (counting the drop with Env.Metrics), or
// add entries that share the batch's lifetime. It never sees acks. The
// runner calls a pipeline's processors from one goroutine at a time, so a
// processor may keep state without locks.
type Processor interface {
	Process(b *Batch)
}

// Flusher is a processor that carries entries from one batch into a later
// one, such as multiline. It holds the batches those entries came from and
// attaches them to the batch it finally emits them in (Batch.Attach). The
// runner calls Flush regularly, and with force at shutdown; Flush returns a
// batch of entries whose wait is over, or nil. That batch then goes through
// the processors after this one and on to the sinks.
type Flusher interface {
	Flush(now time.Time, force bool) *Batch
}

// Sink delivers entries.
//
// Consume must not block on the network. For work it keeps after returning
// it calls b.Hold, and b.Settle once that work is delivered or permanently
// dropped (and counted). The entries stay valid until it settles.
type Sink interface {
	Consume(b *Batch)
	// Close flushes what is pending and waits until it is settled or ctx
	// ends. What is still unsettled when ctx ends is abandoned: its batches
	// never settle, so their checkpoints do not move and the entries are
	// read again on the next start.
	Close(ctx context.Context) error
}

// NowFlusher is a sink that holds entries back to fill its batches. When
// sources are waiting for memory, the runner calls FlushNow so the sink
// sends what it holds at once instead of waiting for its batch timer.
// FlushNow must not block.
type NowFlusher interface {
	FlushNow()
}

// Env is what a component factory receives.
type Env struct {
	Name      string // the component's name in the config
	Decoder   Decoder
	Logger    *slog.Logger
	Metrics   *Metrics
	Positions *Positions
	// Registerer registers metrics a component defines from its config
	// (the metrics stage). They are unregistered when the graph stops, so
	// a reload can define them again.
	Registerer prometheus.Registerer
}

// NewProcessor builds a processor of a registered type, for processors
// that nest others (match).
func NewProcessor(env Env, typ string, at, node *yaml.Node) (Processor, error) {
	f, ok := lookup(registry.processors, typ)
	if !ok {
		return nil, env.Decoder.Errorf(at, "unknown stage %q%s", typ, suggest(typ, ProcessorTypes()))
	}
	return f(env, node)
}

// SourceFactory builds a source from its config node.
type SourceFactory func(env Env, cfg *yaml.Node) (Source, error)

// ProcessorFactory builds a processor from its config node.
type ProcessorFactory func(env Env, cfg *yaml.Node) (Processor, error)

// MetricsSourceFactory builds a metrics source from its config node: a
// prometheus.Collector served on /metrics, as node_exporter's collectors
// are. A metrics source is named under sources like any source but is not
// wired into pipelines; the graph registers its collector when it starts
// and unregisters it when it stops, so a reload swaps it. A collector that
// implements io.Closer is closed once it is no longer served (the graph
// stopped or was discarded).
type MetricsSourceFactory func(env Env, cfg *yaml.Node) (prometheus.Collector, error)

// SinkFactory builds a sink from its config node. The sink is running when
// the factory returns.
type SinkFactory func(env Env, cfg *yaml.Node) (Sink, error)

var registry = struct {
	sync.Mutex
	sources    map[string]SourceFactory
	processors map[string]ProcessorFactory
	sinks      map[string]SinkFactory
	metrics    map[string]MetricsSourceFactory
}{
	sources:    map[string]SourceFactory{},
	processors: map[string]ProcessorFactory{},
	sinks:      map[string]SinkFactory{},
	metrics:    map[string]MetricsSourceFactory{},
}

func register[F any](m map[string]F, kind, name string, f F) {
	registry.Lock()
	defer registry.Unlock()
	_, dupSource := registry.sources[name]
	_, dupMetrics := registry.metrics[name]
	if (kind == "source" && dupMetrics) || (kind == "metrics source" && dupSource) {
		panic(fmt.Sprintf("pipeline: source type %q registered twice", name))
	}
	if _, dup := m[name]; dup {
		panic(fmt.Sprintf("pipeline: %s type %q registered twice", kind, name))
	}
	m[name] = f
}

func lookup[F any](m map[string]F, name string) (F, bool) {
	registry.Lock()
	defer registry.Unlock()
	f, ok := m[name]
	return f, ok
}

func names[F any](m map[string]F) []string {
	registry.Lock()
	defer registry.Unlock()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RegisterSource makes a source type available to configs.
func RegisterSource(name string, f SourceFactory) { register(registry.sources, "source", name, f) }

// RegisterMetricsSource makes a metrics source type available to configs.
// It shares the namespace of source types.
func RegisterMetricsSource(name string, f MetricsSourceFactory) {
	register(registry.metrics, "metrics source", name, f)
}

// RegisterProcessor makes a processor type available to configs.
func RegisterProcessor(name string, f ProcessorFactory) {
	register(registry.processors, "processor", name, f)
}

// RegisterSink makes a sink type available to configs.
func RegisterSink(name string, f SinkFactory) { register(registry.sinks, "sink", name, f) }

// SourceTypes lists the registered source types, metrics sources included.
func SourceTypes() []string {
	out := append(names(registry.sources), names(registry.metrics)...)
	sort.Strings(out)
	return out
}

// MetricsSourceTypes lists the registered metrics source types.
func MetricsSourceTypes() []string { return names(registry.metrics) }

// IsMetricsSource says whether typ is a registered metrics source type.
func IsMetricsSource(typ string) bool {
	_, ok := lookup(registry.metrics, typ)
	return ok
}

// ProcessorTypes lists the registered processor types.
func ProcessorTypes() []string { return names(registry.processors) }

// SinkTypes lists the registered sink types.
func SinkTypes() []string { return names(registry.sinks) }
