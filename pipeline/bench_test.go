package pipeline

import (
	"context"
	"testing"
)

// settleSink settles each batch as it arrives: the cheapest possible sink,
// so the benchmark measures the engine's own cost per batch.
type settleSink struct{ n int }

func (s *settleSink) Consume(b *Batch)                { s.n += len(b.Entries) }
func (s *settleSink) Close(ctx context.Context) error { return nil }

func benchmarkEmit(b *testing.B, routes []*route) {
	const lines = 1024
	line := make([]byte, 130)
	out := &output{budget: NewBudget(DefaultBufferBytes, nil), routes: routes}
	if len(routes) > 1 {
		for _, r := range routes {
			if len(r.processors) > 0 {
				out.clones++
			}
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(lines * int64(len(line)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch := NewBatch(lines, func() {})
		for j := 0; j < lines; j++ {
			batch.Entries = append(batch.Entries, Entry{Line: line})
		}
		if err := out.Emit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}

// BenchmarkEmit is the engine's overhead per 1024-line batch: budget,
// routing, settlement.
func BenchmarkEmit(b *testing.B) {
	benchmarkEmit(b, []*route{{sinks: []Sink{&settleSink{}}}})
}

// BenchmarkEmitFanOut has two pipelines, one with a processor, so each
// batch is copied once.
func BenchmarkEmitFanOut(b *testing.B) {
	benchmarkEmit(b, []*route{
		{sinks: []Sink{&settleSink{}, &settleSink{}}},
		{processors: []Processor{upperProcessor{}}, sinks: []Sink{&settleSink{}}},
	})
}
