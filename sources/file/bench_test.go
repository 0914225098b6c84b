package file

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pipeline"
)

// countingOutput settles each batch as it arrives and says when it has
// seen a number of lines: the cheapest possible pipeline, so the benchmark
// measures the reader.
type countingOutput struct {
	target int64
	n      atomic.Int64
	once   sync.Once
	done   chan struct{}
}

func (c *countingOutput) Emit(_ context.Context, b *pipeline.Batch) error {
	n := c.n.Add(int64(len(b.Entries)))
	b.Settle()
	if n >= c.target {
		c.once.Do(func() { close(c.done) })
	}
	return nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRead reads 200k lines of 130 bytes from the page cache through
// the whole source (discovery, tailers, splitting, batching, checkpoints)
// into an output that settles at once, spread over 1, 100 or 1000 files.
// ns/line is wall time, cpu-ns/line the process's CPU time (both cores).
func BenchmarkRead(b *testing.B) {
	for _, files := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("files=%d", files), func(b *testing.B) { benchmarkRead(b, files, 200_000) })
	}
}

func benchmarkRead(b *testing.B, files, total int) {
	dir := b.TempDir()
	perFile := total / files
	var size int64
	for f := 0; f < files; f++ {
		fh, err := os.Create(filepath.Join(dir, fmt.Sprintf("app-%04d.log", f)))
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriter(fh)
		for i := 0; i < perFile; i++ {
			// 130 bytes with the newline, like a typical structured log line.
			n, _ := fmt.Fprintf(w, "2026-11-25T17:48:13.%06dZ level=info msg=\"request handled\" method=GET path=/api/v1/items/%08d status=200 dur=1.2ms\n", i%1000000, i)
			size += int64(n)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		fh.Close()
	}
	lines := int64(perFile * files)
	node := parseNode(b, fmt.Sprintf("include: [%q]\nlabels: {job: bench}\n", dir+"/*.log"))

	b.ReportAllocs()
	b.SetBytes(size)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		positions, _ := pipeline.OpenPositions("", false)
		env := pipeline.Env{
			Name: "bench", Decoder: pipeline.Decoder{File: "bench.yaml"},
			Logger: slog.New(slog.DiscardHandler), Metrics: pipeline.NewTestMetrics(), Positions: positions,
		}
		src, err := New(env, node)
		if err != nil {
			b.Fatal(err)
		}
		out := &countingOutput{target: lines, done: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- src.Run(ctx, out) }()
		<-out.done
		cancel()
		if err := <-ran; err != nil {
			b.Fatal(err)
		}
		if got := out.n.Load(); got != lines {
			b.Fatalf("read %d lines, want %d", got, lines)
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	n := float64(b.N) * float64(lines)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/line")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/line")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/n, "allocs/line")
}

// BenchmarkTail is the steady state: the source follows 1 or 1000 files
// and each round appends 200k lines of 130 bytes spread over them. Only
// cpu-ns/line is meaningful (wall time is mostly the poll interval): the
// process's CPU time less the writer's, so it includes the idle polling of
// every file while a round is picked up. It must not grow with the number
// of files.
func BenchmarkTail(b *testing.B) {
	for _, files := range []int{1, 1000} {
		b.Run(fmt.Sprintf("files=%d", files), func(b *testing.B) { benchmarkTail(b, files, 200_000) })
	}
}

func benchmarkTail(b *testing.B, files, total int) {
	dir := b.TempDir()
	perFile := total / files
	var block []byte
	for i := 0; i < perFile; i++ {
		block = fmt.Appendf(block, "2026-11-25T17:48:13.%06dZ level=info msg=\"request handled\" method=GET path=/api/v1/items/%08d status=200 dur=1.2ms\n", i%1000000, i)
	}
	writers := make([]*os.File, files)
	for f := range writers {
		w, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("app-%04d.log", f)), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		writers[f] = w
	}
	lines := int64(perFile * files)
	metrics := pipeline.NewTestMetrics()
	positions, _ := pipeline.OpenPositions("", false)
	env := pipeline.Env{
		Name: "bench", Decoder: pipeline.Decoder{File: "bench.yaml"},
		Logger: slog.New(slog.DiscardHandler), Metrics: metrics, Positions: positions,
	}
	src, err := New(env, parseNode(b, fmt.Sprintf("include: [%q]\nlabels: {job: bench}\n", dir+"/*.log")))
	if err != nil {
		b.Fatal(err)
	}
	out := &countingOutput{target: 1 << 62, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- src.Run(ctx, out) }()
	defer func() {
		cancel()
		<-ran
	}()
	waitFor(b, "every file to be tailed", func() bool { v, _ := series(metrics.FilesActive, ""); return v == float64(files) })

	b.ReportAllocs()
	b.SetBytes(int64(len(block) * files))
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	// The writer's thread is pinned so its CPU time (growing the page cache
	// is not cheap) can be told apart from the source's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var writer time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w0 := threadCPUTime()
		for _, w := range writers {
			if _, err := w.Write(block); err != nil {
				b.Fatal(err)
			}
		}
		writer += threadCPUTime() - w0
		want := int64(i+1) * lines
		for out.n.Load() < want {
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	n := float64(b.N) * float64(lines)
	b.ReportMetric(float64((cpu-writer).Nanoseconds())/n, "cpu-ns/line")
	b.ReportMetric(float64(writer.Nanoseconds())/n, "writer-cpu-ns/line")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/n, "allocs/line")
}

func threadCPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkQuietFiles is the memory a followed file costs once it is
// quiet: the source follows 1000 files of 10 lines, and once every line
// is read and settled, the live heap (after a GC) less what it was before
// the source started is divided by the number of files. It counts the
// tailers, open files, trackers, label sets and the path's metric series
// (the metrics are the test registry's, as in the agent), and any read
// buffer a quiet file keeps. goroutines/file is the goroutines added per
// file. b.N is ignored beyond the first round: the figure is per file.
func BenchmarkQuietFiles(b *testing.B) {
	const files = 1000
	dir := b.TempDir()
	for f := 0; f < files; f++ {
		var block []byte
		for i := 0; i < 10; i++ {
			block = fmt.Appendf(block, "2026-11-25T17:48:13.%06dZ level=info msg=\"request handled\" method=GET path=/api/v1/items/%08d status=200 dur=1.2ms\n", i, i)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("app-%04d.log", f)), block, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	node := parseNode(b, fmt.Sprintf("include: [%q]\nlabels: {job: bench}\n", dir+"/*.log"))
	for i := 0; i < b.N; i++ {
		metrics := pipeline.NewTestMetrics()
		positions, _ := pipeline.OpenPositions("", false)
		env := pipeline.Env{
			Name: "bench", Decoder: pipeline.Decoder{File: "bench.yaml"},
			Logger: slog.New(slog.DiscardHandler), Metrics: metrics, Positions: positions,
		}
		src, err := New(env, node)
		if err != nil {
			b.Fatal(err)
		}
		out := &countingOutput{target: files * 10, done: make(chan struct{})}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		goroutines := runtime.NumGoroutine()
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- src.Run(ctx, out) }()
		<-out.done
		time.Sleep(100 * time.Millisecond) // the last polls see the files quiet
		runtime.GC()
		runtime.ReadMemStats(&after)
		if i == 0 {
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/files, "B/file")
			b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/files, "goroutines/file")
		}
		cancel()
		if err := <-ran; err != nil {
			b.Fatal(err)
		}
		runtime.KeepAlive(metrics)
	}
}
