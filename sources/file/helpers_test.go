package file

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// waitFor polls cond with a generous deadline: tests run on a loaded
// 2-core machine and must not depend on timings.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// parseNode parses a YAML mapping as the config loader hands it over.
func parseNode(t testing.TB, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("parsing test config: %v", err)
	}
	return doc.Content[0]
}

// rec is an entry as the recorder saw it, with its line copied.
type rec struct {
	file   string
	line   string
	ts     int64
	labels pipeline.Labels
}

// recorder is an Output that records what is emitted. It settles each
// batch at once unless hold is set, in which case the test settles them.
type recorder struct {
	mu      sync.Mutex
	entries []rec
	held    []*pipeline.Batch
	hold    bool
	batches int
}

func (r *recorder) Emit(ctx context.Context, b *pipeline.Batch) error {
	r.mu.Lock()
	for _, e := range b.Entries {
		r.entries = append(r.entries, rec{file: e.Labels.Get("filename"), line: string(e.Line), ts: e.Time, labels: e.Labels})
	}
	r.batches++
	hold := r.hold
	if hold {
		r.held = append(r.held, b)
	}
	r.mu.Unlock()
	if !hold {
		b.Settle()
	}
	return nil
}

func (r *recorder) lines(file string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.entries {
		if file == "" || e.file == file {
			out = append(out, e.line)
		}
	}
	return out
}

func (r *recorder) count(file string) int { return len(r.lines(file)) }

func (r *recorder) all() []rec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rec(nil), r.entries...)
}

func (r *recorder) heldBatches() []*pipeline.Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*pipeline.Batch(nil), r.held...)
}

// logRecorder keeps warnings and errors, so tests can assert that nothing
// worth a warning happened.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		l.mu.Lock()
		l.msgs = append(l.msgs, r.Message)
		l.mu.Unlock()
	}
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }
func (l *logRecorder) warnings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

type harness struct {
	t         testing.TB
	src       *Source
	out       pipeline.Output
	rec       *recorder
	positions *pipeline.Positions
	metrics   *pipeline.Metrics
	logs      *logRecorder
	cancel    context.CancelFunc
	done      chan error
}

type option func(*harness)

func withPositions(p *pipeline.Positions) option { return func(h *harness) { h.positions = p } }
func withOutput(o pipeline.Output) option        { return func(h *harness) { h.out = o } }
func holding() option                            { return func(h *harness) { h.rec.hold = true } }

// tune adjusts the source once it exists (options run before and after).
func tune(f func(*Source)) option {
	return func(h *harness) {
		if h.src != nil {
			f(h.src)
		}
	}
}

// start builds a source from cfg with fast test timings and runs it.
func start(t testing.TB, cfg string, opts ...option) *harness {
	t.Helper()
	h := &harness{t: t, rec: &recorder{}, metrics: pipeline.NewTestMetrics(), logs: &logRecorder{}}
	h.positions, _ = pipeline.OpenPositions("", false)
	for _, o := range opts {
		if o != nil {
			o(h)
		}
	}
	env := pipeline.Env{
		Name:      "files",
		Decoder:   pipeline.Decoder{File: "test.yaml"},
		Logger:    slog.New(h.logs),
		Metrics:   h.metrics,
		Positions: h.positions,
	}
	src, err := New(env, parseNode(t, cfg))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.src = src
	src.pollMin, src.pollMax = 10*time.Millisecond, 50*time.Millisecond
	src.drainIdle = 300 * time.Millisecond
	for _, o := range opts {
		if o != nil {
			o(h) // again, now that the source exists
		}
	}
	if h.out == nil {
		h.out = h.rec
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- src.Run(ctx, h.out) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
		h.done <- err // stop is idempotent
	case <-time.After(10 * time.Second):
		h.t.Errorf("Run did not return after cancel")
	}
}

func (h *harness) offset(path string) int64 {
	off, ok := h.positions.GetOffset(path)
	if !ok {
		return -1
	}
	return off
}

func (h *harness) filesActive() float64 {
	v, _ := series(h.metrics.FilesActive, "")
	return v
}

// series returns the value of c's series whose path label is path (any
// series when path is empty), and whether there is one. Reading through
// Collect never creates a series, unlike WithLabelValues.
func series(c prometheus.Collector, path string) (float64, bool) {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	var v float64
	found := false
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			continue
		}
		match := path == ""
		for _, l := range d.GetLabel() {
			if (l.GetName() == "path" || l.GetName() == "source") && l.GetValue() == path {
				match = true
			}
		}
		if !match || found {
			continue
		}
		found = true
		switch {
		case d.Gauge != nil:
			v = d.Gauge.GetValue()
		case d.Counter != nil:
			v = d.Counter.GetValue()
		}
	}
	return v, found
}

// writeFile creates path with content.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// appendFile appends content to path, creating it if needed.
func appendFile(t testing.TB, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// numbered returns lines "<prefix>-<i>\n" for i in [from, to).
func numbered(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s-%06d\n", prefix, i)
	}
	return b.String()
}

func expectLines(prefix string, from, to int) []string {
	return strings.Split(strings.TrimSuffix(numbered(prefix, from, to), "\n"), "\n")
}
