package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/dockertest"
	"github.com/vigilhq/vigil/internal/syncbuf"
	"github.com/vigilhq/vigil/pipeline"
)

var nameSeq atomic.Int64

func TestMain(m *testing.M) {
	if name := os.Getenv(unprivilegedEnv); name != "" {
		os.Exit(unprivilegedChild(name))
	}
	code := m.Run()
	dockertest.RemoveImages()
	os.Exit(code)
}

// needDocker skips without a reachable engine, except on CI where a
// missing engine is a failure.
func needDocker(t *testing.T) { t.Helper(); dockertest.Need(t) }

// loggenImage is the FROM scratch image of the test log generator.
func loggenImage(t *testing.T) string {
	t.Helper()
	return dockertest.Image(t, "github.com/vigilhq/vigil/sources/docker/testdata/loggen")
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	return dockertest.Docker(t, args...)
}

// uniqueName returns a container name with the test prefix, removed with
// its container when the test ends.
func uniqueName(t *testing.T) string {
	name := fmt.Sprintf("vigiltest-%d-%d", os.Getpid(), nameSeq.Add(1))
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
	return name
}

// dockerLogs is the ground truth: what the engine holds for a container,
// per stream.
func dockerLogs(t *testing.T, name string) (stdout, stderr []string) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command("docker", "logs", name)
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker logs %s: %v", name, err)
	}
	return splitLines(o.String()), splitLines(e.String())
}

func splitLines(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// recorder is an Output that keeps copies of what it is given. It settles
// each batch at once unless hold is set; held batches settle on release.
type recorder struct {
	mu      sync.Mutex
	entries []pipeline.Entry
	hold    bool
	held    []*pipeline.Batch
}

func (r *recorder) Emit(ctx context.Context, b *pipeline.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	for _, e := range b.Entries {
		e.Line = append([]byte(nil), e.Line...)
		r.entries = append(r.entries, e)
	}
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

func (r *recorder) release() {
	r.mu.Lock()
	held := r.held
	r.held = nil
	r.hold = false
	r.mu.Unlock()
	for _, b := range held {
		b.Settle()
	}
}

// lines returns the lines of container name on stream ("" for both).
func (r *recorder) lines(name, stream string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.entries {
		if e.Labels.Get("container") == name && (stream == "" || e.Labels.Get("stream") == stream) {
			out = append(out, string(e.Line))
		}
	}
	return out
}

func (r *recorder) entriesOf(name string) []pipeline.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []pipeline.Entry
	for _, e := range r.entries {
		if e.Labels.Get("container") == name {
			out = append(out, e)
		}
	}
	return out
}

// syncBuffer collects output written from several goroutines.
type syncBuffer = syncbuf.Buffer

type harness struct {
	src  *Source
	out  *recorder
	logs *syncBuffer
	stop func() // cancels Run and waits for it
}

// startSource builds a source from YAML and runs it until stop or the
// test's end. It returns once the first container list is done, so the
// event subscription is in place.
func startSource(t *testing.T, cfgYAML string, pos *pipeline.Positions, out *recorder) *harness {
	t.Helper()
	if throughAPI && !strings.Contains(cfgYAML, "read_log_files") {
		cfgYAML = "read_log_files: false\n" + cfgYAML
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(cfgYAML), &doc); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	env := pipeline.Env{
		Name:      "docker_test",
		Decoder:   pipeline.Decoder{File: "test.yaml"},
		Logger:    slog.New(slog.NewTextHandler(io.MultiWriter(logs), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:   pipeline.NewTestMetrics(),
		Positions: pos,
	}
	src, err := New(env, doc.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	waitFor(t, 20*time.Second, "first container list", func() bool { return src.refreshes.Load() > 0 })
	return &harness{src: src, out: out, logs: logs, stop: stop}
}

// throughAPI makes startSource read every log through the Engine API, as
// with an Engine that is not local; TestThroughEngineAPI sets it.
var throughAPI bool

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func memPositions(t *testing.T) *pipeline.Positions {
	p, err := pipeline.OpenPositions(filepath.Join(t.TempDir(), "positions.yaml"), false)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// equalLines reports the first difference between two line lists.
func equalLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d lines, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("%s: line %d differs:\n got %.120q\nwant %.120q", what, i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.FailNow()
	}
}
