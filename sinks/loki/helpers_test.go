package loki

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/syncbuf"
	"github.com/vigilhq/vigil/pipeline"
)

// received is one push that the test server accepted.
type received struct {
	header http.Header
	req    push.PushRequest
}

// lokiServer is a real HTTP server that decodes Loki pushes the way Loki
// does (snappy block + protobuf). fault, when set, may answer a request
// instead (n counts requests from 1); it is the only fake part.
type lokiServer struct {
	srv   *httptest.Server
	calls atomic.Int64

	mu    sync.Mutex
	got   []received
	fault func(w http.ResponseWriter, r *http.Request, n int64) bool
}

func newLokiServer(t *testing.T, fault func(w http.ResponseWriter, r *http.Request, n int64) bool) *lokiServer {
	t.Helper()
	ls := &lokiServer{fault: fault}
	ls.srv = httptest.NewServer(http.HandlerFunc(ls.handle))
	t.Cleanup(ls.srv.Close)
	return ls
}

func (ls *lokiServer) handle(w http.ResponseWriter, r *http.Request) {
	n := ls.calls.Add(1)
	// Reading the body first also lets the server notice a client that
	// hangs up while a fault stalls the reply.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if ls.fault != nil && ls.fault(w, r, n) {
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "bad method or content type", http.StatusBadRequest)
		return
	}
	req, err := decodePush(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ls.mu.Lock()
	ls.got = append(ls.got, received{header: r.Header.Clone(), req: req})
	ls.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func decodePush(body []byte) (push.PushRequest, error) {
	var req push.PushRequest
	raw, err := snappyDecodeStrict(body)
	if err != nil {
		return req, err
	}
	return req, req.Unmarshal(raw)
}

func (ls *lokiServer) URL() string { return ls.srv.URL + "/loki/api/v1/push" }

func (ls *lokiServer) received() []received {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return append([]received(nil), ls.got...)
}

// lines returns every received line in arrival order, per tenant.
func (ls *lokiServer) lines(tenant string) []string {
	var out []string
	for _, r := range ls.received() {
		if r.header.Get("X-Scope-OrgID") != tenant {
			continue
		}
		for _, s := range r.req.Streams {
			for _, e := range s.Entries {
				out = append(out, e.Line)
			}
		}
	}
	return out
}

func (ls *lokiServer) entryCount() int {
	n := 0
	for _, r := range ls.received() {
		for _, s := range r.req.Streams {
			n += len(s.Entries)
		}
	}
	return n
}

// syncBuffer collects output written from several goroutines.
type syncBuffer = syncbuf.Buffer

type testSink struct {
	*Sink
	metrics *pipeline.Metrics
	logs    *syncBuffer
}

// newTestSink builds a sink from YAML, as the config loader would.
func newTestSink(t *testing.T, cfg string) *testSink {
	t.Helper()
	s, err := buildSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

func buildSink(cfg string) (*testSink, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(cfg), &doc); err != nil {
		return nil, err
	}
	logs := &syncBuffer{}
	m := pipeline.NewTestMetrics()
	env := pipeline.Env{
		Name:    "loki",
		Decoder: pipeline.Decoder{File: "test.yaml"},
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
		Metrics: m,
	}
	s, err := New(env, doc.Content[0])
	if err != nil {
		return nil, err
	}
	return &testSink{Sink: s, metrics: m, logs: logs}, nil
}

// fastRetries keeps retry tests quick without changing what they test.
const fastRetries = `
backoff_config:
  min_period: 10ms
  max_period: 50ms
`

// tracked is a source batch that counts its settlement.
type tracked struct {
	*pipeline.Batch
	settled atomic.Int32
}

func newTracked(entries ...pipeline.Entry) *tracked {
	tb := &tracked{}
	tb.Batch = pipeline.NewBatch(len(entries), func() { tb.settled.Add(1) })
	tb.Entries = append(tb.Entries, entries...)
	return tb
}

// consume hands b to the sink the way the runner does: Consume, then the
// creator's reference is released.
func consume(s pipeline.Sink, b *tracked) {
	s.Consume(b.Batch)
	b.Settle()
}

func entry(t int64, line string, labels pipeline.Labels) pipeline.Entry {
	return pipeline.Entry{Time: t, Line: []byte(line), Labels: labels}
}

// waitFor polls cond with a generous deadline: the machine may be loaded.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	close(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	if m.Histogram != nil {
		return float64(m.Histogram.GetSampleCount())
	}
	return m.GetGauge().GetValue()
}

func hostOf(u string) string {
	return strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
}
