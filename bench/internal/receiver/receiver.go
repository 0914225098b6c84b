// Package receiver is a Loki push endpoint that only counts: lines, bytes,
// streams and tenants, and the end-to-end latency of lines that carry the
// generator's t=<unix ns> token. It can also misbehave on purpose (503,
// 429, slowness) for experiments on retries and backpressure.
package receiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"

	"github.com/vigilhq/vigil/bench/internal/hist"
	"github.com/vigilhq/vigil/bench/internal/loggen"
)

// PushPath is Loki's push endpoint.
const PushPath = "/loki/api/v1/push"

// NoTenant is the tenant key of pushes without an X-Scope-OrgID header.
const NoTenant = "(none)"

// Options configure fault injection. The zero value accepts everything at
// once.
type Options struct {
	// FailFirst answers the first N pushes with 503.
	FailFirst int
	// ThrottleFirst answers the N pushes after those with 429 and a
	// Retry-After header.
	ThrottleFirst int
	// RetryAfter is sent with 429s, rounded up to whole seconds (default 1s).
	RetryAfter time.Duration
	// Delay is waited before answering each push, like a slow Loki.
	Delay time.Duration
	// MaxBodyBytes limits a request body after decompression (default 64 MiB).
	MaxBodyBytes int64
	// Now is the ack clock (default time.Now).
	Now func() time.Time
	// Logger reports bad requests (default: discard).
	Logger *slog.Logger
	// Trace, when set, gets one CSV line per accepted push (see
	// TraceHeader), to see how latency evolves during a run.
	Trace io.Writer
}

// TraceHeader names the columns of Options.Trace.
const TraceHeader = "ack_unix_ms,tenant,streams,lines,bytes,wire_bytes,min_latency_ms,max_latency_ms\n"

// TenantStats counts what one tenant pushed.
type TenantStats struct {
	Requests int64 `json:"requests"`
	Lines    int64 `json:"lines"`
	Bytes    int64 `json:"bytes"`
	Streams  int64 `json:"streams"`
}

// LatencyStats summarises ack time minus the write time embedded in each
// line. Quantiles overestimate by less than 1.6%.
type LatencyStats struct {
	Count    uint64 `json:"count"`
	Unparsed int64  `json:"unparsed"` // lines without a t= token
	// LineTimed counts lines whose entry timestamp is exactly the write
	// time in their t= token: the agent took the time from the line (a
	// timestamp stage parsing the JSON format's ts) rather than stamping
	// the time it read the line.
	LineTimed int64   `json:"line_timed"`
	MinMs     float64 `json:"min_ms"`
	MeanMs    float64 `json:"mean_ms"`
	P50Ms     float64 `json:"p50_ms"`
	P90Ms     float64 `json:"p90_ms"`
	P99Ms     float64 `json:"p99_ms"`
	P999Ms    float64 `json:"p999_ms"`
	MaxMs     float64 `json:"max_ms"`
}

// Stats is a snapshot of everything counted since the start or last Reset.
type Stats struct {
	// Requests are accepted pushes; rejected ones are in Rejected.
	Requests int64 `json:"requests"`
	Lines    int64 `json:"lines"`
	// Bytes counts line bytes, WireBytes request bodies as sent.
	Bytes     int64                  `json:"bytes"`
	WireBytes int64                  `json:"wire_bytes"`
	Streams   int64                  `json:"streams"` // distinct (tenant, labels)
	Tenants   map[string]TenantStats `json:"tenants"`
	// Rejected counts answers other than 204 by status code.
	Rejected  map[string]int64 `json:"rejected"`
	Latency   LatencyStats     `json:"latency"`
	FirstPush time.Time        `json:"first_push,omitzero"`
	LastPush  time.Time        `json:"last_push,omitzero"`
}

// Receiver is an http.Handler serving the push endpoint, GET /stats,
// POST /reset and GET /ready.
type Receiver struct {
	opts  Options
	lines atomic.Int64 // also under mu; atomic so waiting is cheap
	// pushes counts every push request, for fault injection.
	pushes atomic.Int64

	mu       sync.Mutex
	stats    Stats
	streams  map[string]struct{}
	tenantSt map[string]map[string]struct{}
	latency  hist.Histogram

	bufs sync.Pool
	mux  *http.ServeMux
}

// New returns a receiver with the given fault injection.
func New(opts Options) *Receiver {
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = time.Second
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Receiver{opts: opts}
	r.resetLocked()
	r.mux = http.NewServeMux()
	r.mux.HandleFunc("POST "+PushPath, r.push)
	r.mux.HandleFunc("POST /api/prom/push", r.push) // Loki's legacy path
	r.mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r.Stats())
	})
	r.mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		r.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	r.mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ready")
	})
	return r
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.mux.ServeHTTP(w, req) }

func (r *Receiver) resetLocked() {
	r.stats = Stats{Tenants: map[string]TenantStats{}, Rejected: map[string]int64{}}
	r.streams = map[string]struct{}{}
	r.tenantSt = map[string]map[string]struct{}{}
	r.latency.Reset()
	r.lines.Store(0)
}

// Reset forgets everything counted. Fault injection keeps its count, so
// "fail the first N" stays the first N of the receiver's life.
func (r *Receiver) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resetLocked()
}

// Lines is the number of lines accepted so far; cheaper than Stats.
func (r *Receiver) Lines() int64 { return r.lines.Load() }

// Stats returns a snapshot.
func (r *Receiver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Tenants = make(map[string]TenantStats, len(r.stats.Tenants))
	for k, v := range r.stats.Tenants {
		s.Tenants[k] = v
	}
	s.Rejected = make(map[string]int64, len(r.stats.Rejected))
	for k, v := range r.stats.Rejected {
		s.Rejected[k] = v
	}
	ms := func(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }
	h := &r.latency
	s.Latency.Count = h.Count()
	if h.Count() > 0 {
		s.Latency.MinMs, s.Latency.MaxMs = ms(h.Min()), ms(h.Max())
		s.Latency.MeanMs = ms(int64(h.Mean()))
		s.Latency.P50Ms, s.Latency.P90Ms = ms(h.Quantile(0.5)), ms(h.Quantile(0.9))
		s.Latency.P99Ms, s.Latency.P999Ms = ms(h.Quantile(0.99)), ms(h.Quantile(0.999))
	}
	return s
}

// WaitLines polls until at least n lines were accepted or ctx ends.
func (r *Receiver) WaitLines(ctx context.Context, n int64) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for r.lines.Load() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("received %d of %d lines: %w", r.lines.Load(), n, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

func (r *Receiver) reject(w http.ResponseWriter, code int, msg string) {
	r.mu.Lock()
	r.stats.Rejected[strconv.Itoa(code)]++
	r.mu.Unlock()
	http.Error(w, msg, code)
}

// pending is what one request adds, gathered outside the lock.
type pending struct {
	streams   [][]byte // labels of each stream, aliasing the body
	lines     int64
	bytes     int64
	unparsed  int64
	lineTimed int64
	latencies []int64
}

func (r *Receiver) push(w http.ResponseWriter, req *http.Request) {
	n := r.pushes.Add(1)
	body, release, err := r.readBody(w, req)
	if err != nil {
		r.opts.Logger.Warn("bad push body", "err", err)
		r.reject(w, http.StatusBadRequest, err.Error())
		return
	}
	defer release()
	if r.opts.Delay > 0 {
		select {
		case <-time.After(r.opts.Delay):
		case <-req.Context().Done():
			return
		}
	}
	switch {
	case n <= int64(r.opts.FailFirst):
		r.reject(w, http.StatusServiceUnavailable, "injected failure")
		return
	case n <= int64(r.opts.FailFirst+r.opts.ThrottleFirst):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(r.opts.RetryAfter.Seconds()))))
		r.reject(w, http.StatusTooManyRequests, "injected throttling")
		return
	}

	// The ack time is taken before decoding: decoding a full batch takes
	// about a millisecond, which would otherwise count as pipeline latency.
	ack := r.opts.Now().UnixNano()
	p := pending{latencies: make([]int64, 0, 1024)}
	var lastLabels []byte
	visit := func(labels, line []byte, ts int64) {
		// Entries arrive grouped by stream, so a change of labels is a
		// new stream; duplicates across requests are removed in record.
		if len(p.streams) == 0 || !bytes.Equal(labels, lastLabels) {
			p.streams = append(p.streams, labels)
			lastLabels = labels
		}
		p.lines++
		p.bytes += int64(len(line))
		if t, ok := loggen.ParseTimestamp(line); ok {
			p.latencies = append(p.latencies, ack-t)
			if t == ts {
				p.lineTimed++
			}
		} else {
			p.unparsed++
		}
	}
	wire := int64(len(body))
	if isJSON(req.Header.Get("Content-Type")) {
		_, err = WalkJSON(body, visit)
	} else {
		var raw []byte
		raw, err = r.snappyDecode(body)
		if err == nil {
			defer r.putBuf(raw)
			_, err = WalkPush(raw, visit)
		}
	}
	if err != nil {
		r.opts.Logger.Warn("bad push request", "err", err)
		r.reject(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.ContentLength >= 0 {
		wire = req.ContentLength // the compressed size, when gzipped
	}
	tenant := req.Header.Get("X-Scope-OrgID")
	if tenant == "" {
		tenant = NoTenant
	}
	r.record(tenant, wire, &p)
	w.WriteHeader(http.StatusNoContent)
}

func (r *Receiver) record(tenant string, wire int64, p *pending) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	if r.stats.FirstPush.IsZero() {
		r.stats.FirstPush = now
	}
	r.stats.LastPush = now
	r.stats.Requests++
	r.stats.Lines += p.lines
	r.stats.Bytes += p.bytes
	r.stats.WireBytes += wire
	r.stats.Latency.Unparsed += p.unparsed
	r.stats.Latency.LineTimed += p.lineTimed
	ts := r.stats.Tenants[tenant]
	ts.Requests++
	ts.Lines += p.lines
	ts.Bytes += p.bytes
	seen := r.tenantSt[tenant]
	if seen == nil {
		seen = map[string]struct{}{}
		r.tenantSt[tenant] = seen
	}
	for _, l := range p.streams {
		if _, ok := seen[string(l)]; !ok {
			seen[string(l)] = struct{}{}
			ts.Streams++
			r.stats.Streams++
		}
	}
	r.stats.Tenants[tenant] = ts
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, v := range p.latencies {
		r.latency.Record(v)
		lo, hi = min(lo, v), max(hi, v)
	}
	r.lines.Add(p.lines)
	if r.opts.Trace != nil {
		if len(p.latencies) == 0 {
			lo, hi = 0, 0
		}
		fmt.Fprintf(r.opts.Trace, "%d,%s,%d,%d,%d,%d,%.3f,%.3f\n", now.UnixMilli(), tenant, len(p.streams), p.lines, p.bytes, wire,
			float64(lo)/1e6, float64(hi)/1e6)
	}
}

func isJSON(ct string) bool {
	return len(ct) >= 16 && ct[:16] == "application/json"
}

func (r *Receiver) readBody(w http.ResponseWriter, req *http.Request) (body []byte, release func(), err error) {
	var rd io.Reader = http.MaxBytesReader(w, req.Body, r.opts.MaxBodyBytes)
	switch enc := req.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip body: %w", err)
		}
		rd = io.LimitReader(zr, r.opts.MaxBodyBytes+1)
	default:
		return nil, nil, fmt.Errorf("unsupported Content-Encoding %q", enc)
	}
	// Content-Length only sizes the first buffer, capped so a client
	// cannot make the receiver allocate more than the limit up front.
	buf := r.getBuf(int(min(max(req.ContentLength, 4096), r.opts.MaxBodyBytes)))
	b := bytes.NewBuffer(buf[:0])
	if _, err := b.ReadFrom(rd); err != nil {
		return nil, nil, fmt.Errorf("read body: %w", err)
	}
	if int64(b.Len()) > r.opts.MaxBodyBytes {
		return nil, nil, fmt.Errorf("body larger than %d bytes", r.opts.MaxBodyBytes)
	}
	body = b.Bytes()
	return body, func() { r.putBuf(body) }, nil
}

func (r *Receiver) snappyDecode(body []byte) ([]byte, error) {
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	if int64(n) > r.opts.MaxBodyBytes {
		return nil, fmt.Errorf("decoded body of %d bytes is larger than %d", n, r.opts.MaxBodyBytes)
	}
	buf := r.getBuf(n)
	out, err := snappy.Decode(buf[:cap(buf)], body)
	if err != nil {
		r.putBuf(buf)
		return nil, fmt.Errorf("snappy: %w", err)
	}
	return out, nil
}

func (r *Receiver) getBuf(n int) []byte {
	if b, ok := r.bufs.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]byte, 0, n)
}

func (r *Receiver) putBuf(b []byte) {
	if cap(b) <= 64<<20 {
		r.bufs.Put(&b)
	}
}

// Server is a Receiver listening on a TCP address.
type Server struct {
	*Receiver
	// URL is the base URL, e.g. http://127.0.0.1:40123.
	URL string
	srv *http.Server
}

// PushURL is the Loki push URL to configure in a client.
func (s *Server) PushURL() string { return s.URL + PushPath }

// Listen starts a receiver on addr ("127.0.0.1:0" picks a free port).
func Listen(addr string, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	r := New(opts)
	s := &Server{Receiver: r, URL: "http://" + ln.Addr().String(), srv: &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.opts.Logger.Error("receiver stopped", "err", err)
		}
	}()
	return s, nil
}

// Close stops listening and waits up to 5 s for requests in flight.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
