// Command vigilprof is vigil's agent with profiling, for finding where the
// benchmark's CPU and memory go. It runs a config the way `vigil
// -config.file` does (same components, same agent) and, on SIGTERM, writes
//
//   - a CPU profile of the whole run to $VIGIL_CPUPROFILE, and
//   - the heap profile taken when the heap in use was largest to
//     $VIGIL_HEAPPROFILE,
//
// when those are set. Use it through the harness:
//
//	go build -o bench/out/vigilprof ./bench/cmd/vigilprof
//	VIGIL_CPUPROFILE=/tmp/cpu.prof VIGIL_HEAPPROFILE=/tmp/heap.prof \
//	  go run ./bench/cmd/harness -build=false -vigil bench/out/vigilprof -scenario passthrough
//	go tool pprof -top bench/out/vigilprof /tmp/cpu.prof
//
// It only exists in bench/ so the product binary carries no profiling code.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/components"
	"github.com/vigilhq/vigil/pipeline"
)

func main() {
	os.Exit(run())
}

// validate builds every component without starting any, like `vigil
// validate`.
func validate(file string) int {
	cfg, err := pipeline.LoadFile(file, pipeline.LoadOptions{})
	if err == nil {
		var g *pipeline.Graph
		g, err = pipeline.Build(cfg, slog.New(slog.DiscardHandler), pipeline.NewTestMetrics())
		if err == nil {
			err = g.Discard()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%s: valid %s config\n", cfg.File, cfg.Format)
	return 0
}

func run() int {
	components.Link()
	// The harness runs `<vigil> validate FILE` before each throughput
	// scenario, so vigilprof answers it as vigil does.
	if len(os.Args) == 3 && os.Args[1] == "validate" {
		return validate(os.Args[2])
	}
	configFile := flag.String("config.file", "", "config file")
	listen := flag.String("web.listen-address", "127.0.0.1:9100", "address for /ready and /metrics")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	load := func() (*pipeline.Config, error) { return pipeline.LoadFile(*configFile, pipeline.LoadOptions{}) }
	cfg, err := load()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	if p := os.Getenv("VIGIL_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	peak := &peakHeap{}
	stopSampling := make(chan struct{})
	if p := os.Getenv("VIGIL_HEAPPROFILE"); p != "" {
		go peak.sample(stopSampling)
		defer func() {
			close(stopSampling)
			if err := peak.write(p); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}()
	}

	agent := pipeline.NewAgent(logger, load)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: agent.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server", "err", err)
		}
	}()
	if err := agent.Start(cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	if err := agent.Stop(); err != nil {
		logger.Warn("shutdown did not drain completely", "err", err)
	}
	_ = srv.Close()
	return 0
}

// peakHeap keeps the heap profile of the moment the heap in use was
// largest. Profiles are kept in memory and written once at exit, so
// writing them does not disturb the run.
type peakHeap struct {
	mu      sync.Mutex
	max     uint64
	live    uint64 // heap allocated after the GC at the peak
	profile bytes.Buffer
	at      time.Time
	// The largest values seen of what else adds to the RSS: goroutine
	// stacks, heap spans kept from the OS, and the goroutine count.
	maxStack, maxHeapKept uint64
	maxGoroutines         int
}

func (p *peakHeap) sample(stop <-chan struct{}) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var ms runtime.MemStats
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		runtime.ReadMemStats(&ms)
		p.mu.Lock()
		p.maxStack = max(p.maxStack, ms.StackInuse)
		p.maxHeapKept = max(p.maxHeapKept, ms.HeapSys-ms.HeapReleased)
		p.maxGoroutines = max(p.maxGoroutines, runtime.NumGoroutine())
		p.mu.Unlock()
		// Only a 10% larger heap is worth another profile.
		if ms.HeapInuse > p.max+p.max/10 {
			p.mu.Lock()
			p.max = ms.HeapInuse
			p.profile.Reset()
			// The heap profile describes the heap as of a completed GC
			// cycle, possibly one behind; two GCs make it describe the
			// peak itself.
			runtime.GC()
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			p.live = after.HeapAlloc
			_ = pprof.Lookup("heap").WriteTo(&p.profile, 0)
			p.at = time.Now()
			p.mu.Unlock()
		}
	}
}

func (p *peakHeap) write(path string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.profile.Len() == 0 {
		return nil
	}
	fmt.Fprintf(os.Stderr, "vigilprof: peak heap in use %.1f MB at %s, %.1f MB live after GC\n",
		float64(p.max)/(1<<20), p.at.Format(time.RFC3339Nano), float64(p.live)/(1<<20))
	fmt.Fprintf(os.Stderr, "vigilprof: at most %.1f MB of heap kept from the OS, %.1f MB of goroutine stacks, %d goroutines\n",
		float64(p.maxHeapKept)/(1<<20), float64(p.maxStack)/(1<<20), p.maxGoroutines)
	return os.WriteFile(path, p.profile.Bytes(), 0o644)
}
