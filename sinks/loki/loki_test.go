package loki

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/pipeline"
)

func TestHappyPath(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }

	tests := []struct {
		name       string
		cfg        string
		wantHeader map[string]string // "" means absent
		wantLabels [2]string         // the two streams' selectors
	}{
		{
			name:       "plain",
			wantHeader: map[string]string{"X-Scope-OrgID": "", "Authorization": ""},
			wantLabels: [2]string{`{job="a"}`, `{job="b"}`},
		},
		{
			name:       "tenant and basic auth",
			cfg:        "tenant_id: t1\nbasic_auth: {username: u, password: p}",
			wantHeader: map[string]string{"X-Scope-OrgID": "t1", "Authorization": basic("u", "p")},
			wantLabels: [2]string{`{job="a"}`, `{job="b"}`},
		},
		{
			name:       "basic auth password_file",
			cfg:        "basic_auth: {username: u, password_file: " + pwFile + "}",
			wantHeader: map[string]string{"Authorization": basic("u", "s3cret")},
			wantLabels: [2]string{`{job="a"}`, `{job="b"}`},
		},
		{
			name:       "bearer token",
			cfg:        "bearer_token: tok",
			wantHeader: map[string]string{"Authorization": "Bearer tok"},
			wantLabels: [2]string{`{job="a"}`, `{job="b"}`},
		},
		{
			name:       "bearer token file",
			cfg:        "bearer_token_file: " + tokenFile,
			wantHeader: map[string]string{"Authorization": "Bearer from-file"},
			wantLabels: [2]string{`{job="a"}`, `{job="b"}`},
		},
		{
			name: "extra headers",
			cfg:  "headers: {X-Custom: v1, CF-Access-Client-Id: id, User-Agent: evil, X-Scope-OrgID: hdr-tenant}",
			wantHeader: map[string]string{
				"X-Custom": "v1", "Cf-Access-Client-Id": "id", "X-Scope-OrgID": "hdr-tenant",
			},
			wantLabels: [2]string{`{job="a"}`, `{job="b"}`},
		},
		{
			name:       "external labels",
			cfg:        "external_labels: {cluster: c1, job: overridden}",
			wantLabels: [2]string{`{cluster="c1", job="a"}`, `{cluster="c1", job="b"}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newLokiServer(t, nil)
			s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 10ms\n"+tt.cfg)
			a, b := ls("job", "a"), ls("job", "b")
			tb := newTracked(
				entry(1, "a1", a), entry(1, "b1", b), entry(2, "a2", a),
				entry(3, "a3", a), entry(2, "b2", b),
			)
			consume(s, tb)
			waitFor(t, "settlement", func() bool { return tb.settled.Load() == 1 })

			got := srv.received()
			if len(got) != 1 {
				t.Fatalf("got %d requests, want 1", len(got))
			}
			h := got[0].header
			if ua := h.Get("User-Agent"); !strings.HasPrefix(ua, "vigil/") {
				t.Errorf("User-Agent = %q", ua)
			}
			for k, want := range tt.wantHeader {
				if v := h.Get(k); v != want {
					t.Errorf("header %s = %q, want %q", k, v, want)
				}
			}
			streams := map[string][]string{}
			for _, st := range got[0].req.Streams {
				for _, e := range st.Entries {
					streams[st.Labels] = append(streams[st.Labels], fmt.Sprintf("%d:%s", e.Timestamp.UnixNano(), e.Line))
				}
			}
			want := map[string][]string{
				tt.wantLabels[0]: {"1:a1", "2:a2", "3:a3"},
				tt.wantLabels[1]: {"1:b1", "2:b2"},
			}
			if fmt.Sprint(streams) != fmt.Sprint(want) {
				t.Errorf("streams\n got %v\nwant %v", streams, want)
			}
			if v := value(s.metrics.SentEntries.WithLabelValues(hostOf(srv.srv.URL))); v != 5 {
				t.Errorf("sent entries = %v, want 5", v)
			}
			if v := value(s.metrics.SentBytes.WithLabelValues(hostOf(srv.srv.URL))); v != 10 {
				t.Errorf("sent bytes = %v, want 10 (line bytes)", v)
			}
			if v := value(s.metrics.EncodedBytes.WithLabelValues(hostOf(srv.srv.URL))); v <= 0 {
				t.Errorf("encoded bytes = %v", v)
			}
		})
	}
}

func TestTenants(t *testing.T) {
	// Tenant A's Loki is down for good; B must not wait for it.
	srv := newLokiServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) bool {
		if r.Header.Get("X-Scope-OrgID") == "A" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	s := newTestSink(t, "url: "+srv.URL()+"\ntenant_id: default\nbatchwait: 10ms\n"+fastRetries+"  max_retries: 0\n")

	l := ls("job", "x")
	ta := pipeline.Entry{Time: 1, Line: []byte("A-1"), Labels: l, Tenant: "A"}
	bA := newTracked(ta)
	consume(s, bA)
	waitFor(t, "tenant A to be retrying", func() bool { return srv.calls.Load() >= 3 })

	// One source batch with interleaved tenants: each request carries one.
	mixed := newTracked(
		pipeline.Entry{Time: 1, Line: []byte("B-1"), Labels: l, Tenant: "B"},
		pipeline.Entry{Time: 1, Line: []byte("default-1"), Labels: l},
		pipeline.Entry{Time: 2, Line: []byte("B-2"), Labels: l, Tenant: "B"},
		pipeline.Entry{Time: 2, Line: []byte("default-2"), Labels: l},
	)
	consume(s, mixed)
	waitFor(t, "B and default delivered", func() bool { return mixed.settled.Load() == 1 })

	if got := srv.lines("B"); !slices.Equal(got, []string{"B-1", "B-2"}) {
		t.Errorf("tenant B got %v", got)
	}
	if got := srv.lines("default"); !slices.Equal(got, []string{"default-1", "default-2"}) {
		t.Errorf("default tenant got %v", got)
	}
	for _, r := range srv.received() {
		tenant := r.header.Get("X-Scope-OrgID")
		for _, st := range r.req.Streams {
			for _, e := range st.Entries {
				if !strings.HasPrefix(e.Line, tenant+"-") {
					t.Errorf("request for tenant %q carries %q", tenant, e.Line)
				}
			}
		}
	}
	if bA.settled.Load() != 0 {
		t.Error("tenant A's batch settled although Loki never accepted it")
	}
	if v := value(s.metrics.BatchRetries.WithLabelValues(hostOf(srv.srv.URL), "A")); v < 2 {
		t.Errorf("tenant A retries = %v", v)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Close(ctx); err == nil {
		t.Error("Close with a cancelled context and undeliverable entries returned nil")
	}
	if bA.settled.Load() != 0 {
		t.Error("abandoned batch was settled")
	}
}

func TestBatchBySize(t *testing.T) {
	srv := newLokiServer(t, nil)
	s := newTestSink(t, "url: "+srv.URL()+"\nbatchsize: 1000\nbatchwait: 1h\n")
	l := ls("job", "x")
	var entries []pipeline.Entry
	for i := range 25 {
		entries = append(entries, entry(int64(i), fmt.Sprintf("%03d", i)+strings.Repeat(".", 97), l))
	}
	tb := newTracked(entries...)
	consume(s, tb)

	waitFor(t, "two full batches", func() bool { return len(srv.received()) == 2 })
	for i, r := range srv.received() {
		size := 0
		for _, st := range r.req.Streams {
			for _, e := range st.Entries {
				size += len(e.Line)
			}
		}
		if size != 1000 {
			t.Errorf("request %d carries %d bytes, want 1000", i, size)
		}
	}
	if tb.settled.Load() != 0 {
		t.Fatal("batch settled while 5 of its entries are unsent")
	}

	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tb.settled.Load() != 1 {
		t.Fatal("batch not settled after Close")
	}
	got := srv.lines("")
	if len(got) != 25 {
		t.Fatalf("got %d lines, want 25", len(got))
	}
	for i, line := range got {
		if !strings.HasPrefix(line, fmt.Sprintf("%03d", i)) {
			t.Fatalf("line %d is %q: order lost", i, line[:3])
		}
	}
}

// A sender with batches to send keeps its encoder from one push to the
// next and gives it back only when it has nothing left to send.
func TestBusySenderKeepsItsEncoder(t *testing.T) {
	srv := newLokiServer(t, nil)
	s := newTestSink(t, "url: "+srv.URL()+"\nbatchsize: 1000\nbatchwait: 20ms\n")
	l := ls("job", "x")
	var entries []pipeline.Entry
	for i := range 100 {
		entries = append(entries, entry(int64(i), fmt.Sprintf("%03d", i)+strings.Repeat(".", 97), l))
	}
	before := encodersPut.Load()
	tb := newTracked(entries...)
	consume(s, tb)
	waitFor(t, "ten pushes", func() bool { return tb.settled.Load() == 1 && len(srv.received()) == 10 })
	waitFor(t, "the idle sender to give its encoder back", func() bool { return encodersPut.Load() > before })
	time.Sleep(50 * time.Millisecond)
	if n := encodersPut.Load() - before; n != 1 {
		t.Errorf("the encoder went back to the pool %d times in one busy stretch of ten pushes, want once", n)
	}
}

func TestBatchByWait(t *testing.T) {
	srv := newLokiServer(t, nil)
	s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 20ms\n")
	for i := range 3 {
		tb := newTracked(entry(int64(i), fmt.Sprint("line ", i), ls("job", "x")))
		consume(s, tb)
		// Far below batchsize: only batchwait can send it.
		waitFor(t, "batchwait to send the entry", func() bool { return tb.settled.Load() == 1 })
	}
	if got := srv.lines(""); !slices.Equal(got, []string{"line 0", "line 1", "line 2"}) {
		t.Errorf("got %v", got)
	}
}

func TestRetriedUntilAccepted(t *testing.T) {
	tests := []struct {
		name    string
		cfg     string
		faults  int64
		fault   func(w http.ResponseWriter, r *http.Request)
		network bool // the fault leaves no HTTP status
	}{
		{
			name:   "503 for a while",
			faults: 3,
			fault: func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
			},
		},
		{
			name:   "500",
			faults: 2,
			fault:  func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "oops", http.StatusInternalServerError) },
		},
		{
			name:   "429 without Retry-After",
			faults: 2,
			fault:  func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "slow down", http.StatusTooManyRequests) },
		},
		{
			name:    "reply slower than timeout",
			cfg:     "timeout: 100ms\n",
			faults:  1,
			network: true,
			fault: func(_ http.ResponseWriter, r *http.Request) {
				select { // the client gives up and closes the connection
				case <-r.Context().Done():
				case <-time.After(20 * time.Second):
				}
			},
		},
		{
			name:    "connection reset",
			faults:  2,
			network: true,
			fault: func(w http.ResponseWriter, _ *http.Request) {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					_ = conn.Close()
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newLokiServer(t, func(w http.ResponseWriter, r *http.Request, n int64) bool {
				if n <= tt.faults {
					tt.fault(w, r)
					return true
				}
				return false
			})
			s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 10ms\ntenant_id: t\n"+tt.cfg+fastRetries)
			tb := newTracked(entry(1, "one", ls("job", "x")), entry(2, "two", ls("job", "x")))
			consume(s, tb)
			waitFor(t, "settlement", func() bool { return tb.settled.Load() == 1 })

			if got := srv.lines("t"); !slices.Equal(got, []string{"one", "two"}) {
				t.Errorf("received %v, want each line once", got)
			}
			host := hostOf(srv.srv.URL)
			if v := value(s.metrics.BatchRetries.WithLabelValues(host, "t")); v != float64(tt.faults) {
				t.Errorf("retries = %v, want %d", v, tt.faults)
			}
			if calls := srv.calls.Load(); calls != tt.faults+1 {
				t.Errorf("server saw %d requests, want %d", calls, tt.faults+1)
			}
			for _, r := range reasons {
				if v := value(s.metrics.DroppedEntries.WithLabelValues(host, r, "t")); v != 0 {
					t.Errorf("dropped[%s] = %v", r, v)
				}
			}
			if tt.network {
				if v := value(s.metrics.RequestDuration.WithLabelValues("-1", host).(prometheus.Histogram)); v != float64(tt.faults) {
					t.Errorf("requests with status -1 = %v, want %d", v, tt.faults)
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Run("honoured", func(t *testing.T) {
		var mu sync.Mutex
		var times []time.Time
		srv := newLokiServer(t, func(w http.ResponseWriter, _ *http.Request, n int64) bool {
			mu.Lock()
			times = append(times, time.Now())
			mu.Unlock()
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				http.Error(w, "slow down", http.StatusTooManyRequests)
				return true
			}
			return false
		})
		s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 10ms\nbackoff_config: {min_period: 10ms, max_period: 1m}\n")
		tb := newTracked(entry(1, "x", ls("job", "x")))
		consume(s, tb)
		waitFor(t, "settlement", func() bool { return tb.settled.Load() == 1 })
		mu.Lock()
		defer mu.Unlock()
		// A lower bound only: backoff alone would have waited <= 50ms.
		if gap := times[1].Sub(times[0]); gap < 900*time.Millisecond {
			t.Errorf("retried after %v, Retry-After asked for 1s", gap)
		}
	})
	t.Run("capped by max_period", func(t *testing.T) {
		srv := newLokiServer(t, func(w http.ResponseWriter, _ *http.Request, n int64) bool {
			if n == 1 {
				w.Header().Set("Retry-After", "3600")
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
				return true
			}
			return false
		})
		s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 10ms\n"+fastRetries)
		tb := newTracked(entry(1, "x", ls("job", "x")))
		consume(s, tb)
		waitFor(t, "retry within max_period, not an hour", func() bool { return tb.settled.Load() == 1 })
	})
}

func TestPermanentFailures(t *testing.T) {
	tests := []struct {
		name   string
		cfg    string
		status int
		body   string
		reason string
	}{
		{"400", "", 400, "entry for stream '{job=\"x\"}' has timestamp too old", reasonGeneric},
		{"400 line too long", "", 400, "Max entry size '4' bytes exceeded for stream '{job=\"x\"}'", reasonLineTooLong},
		{"401", "", 401, "no org id", reasonGeneric},
		{"429 dropped at once", "drop_rate_limited_batches: true\n", 429, "Ingestion rate limit exceeded", reasonRateLimited},
		{"429 stream limit dropped at once", "drop_rate_limited_batches: true\n", 429,
			"Maximum active stream limit exceeded, reduce the number of active streams", reasonStreamLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newLokiServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) bool {
				http.Error(w, tt.body, tt.status)
				return true
			})
			s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 10ms\ntenant_id: t\n"+tt.cfg+fastRetries)
			tb := newTracked(entry(1, "one", ls("job", "x")), entry(2, "three", ls("job", "y")))
			consume(s, tb)
			waitFor(t, "settlement of the dropped batch", func() bool { return tb.settled.Load() == 1 })
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}

			host := hostOf(srv.srv.URL)
			if calls := srv.calls.Load(); calls != 1 {
				t.Errorf("server saw %d requests: a permanent failure was retried", calls)
			}
			for _, r := range reasons {
				want, wantBytes := 0.0, 0.0
				if r == tt.reason {
					want, wantBytes = 2, 8
				}
				if v := value(s.metrics.DroppedEntries.WithLabelValues(host, r, "t")); v != want {
					t.Errorf("dropped entries[%s] = %v, want %v", r, v, want)
				}
				if v := value(s.metrics.DroppedBytes.WithLabelValues(host, r, "t")); v != wantBytes {
					t.Errorf("dropped bytes[%s] = %v, want %v", r, v, wantBytes)
				}
			}
			if v := value(s.metrics.BatchRetries.WithLabelValues(host, "t")); v != 0 {
				t.Errorf("retries = %v", v)
			}
			if v := value(s.metrics.SentEntries.WithLabelValues(host)); v != 0 {
				t.Errorf("sent entries = %v", v)
			}
			if logs := s.logs.String(); !strings.Contains(logs, "dropping batch") || !strings.Contains(logs, tt.body[:min(20, len(tt.body))]) {
				t.Errorf("drop not logged with Loki's reply:\n%s", logs)
			}
		})
	}
}

func TestMaxRetriesExhausted(t *testing.T) {
	closed := newLokiServer(t, nil)
	closedURL := closed.URL()
	closed.srv.Close() // connection refused

	tests := []struct {
		name    string
		status  int // 0: use the closed server
		retries int
		reason  string
	}{
		{"500", 500, 2, reasonGeneric},
		{"429", 429, 1, reasonRateLimited},
		{"connection refused", 0, 2, reasonGeneric},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := closedURL
			var calls *atomic.Int64
			if tt.status != 0 {
				srv := newLokiServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) bool {
					http.Error(w, "nope", tt.status)
					return true
				})
				url, calls = srv.URL(), &srv.calls
			}
			s := newTestSink(t, fmt.Sprintf("url: %s\nbatchwait: 10ms\n%s  max_retries: %d\n", url, fastRetries, tt.retries))
			b1 := newTracked(entry(1, "aa", ls("job", "x")))
			b2 := newTracked(entry(2, "bbb", ls("job", "x")), entry(3, "c", ls("job", "y")))
			consume(s, b1)
			consume(s, b2)
			waitFor(t, "both batches settled", func() bool { return b1.settled.Load() == 1 && b2.settled.Load() == 1 })
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}

			host := hostOf(strings.TrimSuffix(url, "/loki/api/v1/push"))
			if v := value(s.metrics.DroppedEntries.WithLabelValues(host, tt.reason, "")); v != 3 {
				t.Errorf("dropped entries[%s] = %v, want 3", tt.reason, v)
			}
			if v := value(s.metrics.DroppedBytes.WithLabelValues(host, tt.reason, "")); v != 6 {
				t.Errorf("dropped bytes[%s] = %v, want 6", tt.reason, v)
			}
			retries := value(s.metrics.BatchRetries.WithLabelValues(host, ""))
			// b1 and b2 may share a push or not; each push made 1 +
			// max_retries attempts.
			pushes := retries / float64(tt.retries)
			if pushes < 1 || pushes != float64(int(pushes)) {
				t.Errorf("retries = %v, not a multiple of max_retries %d", retries, tt.retries)
			}
			if calls != nil && float64(calls.Load()) != pushes*float64(tt.retries+1) {
				t.Errorf("server saw %d requests for %v pushes, want %d each", calls.Load(), pushes, tt.retries+1)
			}
			if !strings.Contains(s.logs.String(), "giving up after") {
				t.Errorf("exhaustion not logged:\n%s", s.logs.String())
			}
		})
	}
}

func TestSettleOnlyAfter2xx(t *testing.T) {
	release := make(chan struct{})
	srv := newLokiServer(t, func(_ http.ResponseWriter, _ *http.Request, n int64) bool {
		if n == 1 {
			<-release
		}
		return false
	})
	s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 10ms\n")
	tb := newTracked(entry(1, "x", ls("job", "x")))
	consume(s, tb)
	waitFor(t, "the request to reach the server", func() bool { return srv.calls.Load() == 1 })
	if tb.settled.Load() != 0 {
		t.Fatal("settled before Loki replied")
	}
	close(release)
	waitFor(t, "settlement after 2xx", func() bool { return tb.settled.Load() == 1 })
}

func TestCloseFlushesPending(t *testing.T) {
	srv := newLokiServer(t, nil)
	s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 1h\n")
	b1 := newTracked(entry(1, "a", ls("job", "x")))
	b2 := newTracked(entry(2, "b", ls("job", "x")), pipeline.Entry{Time: 3, Line: []byte("c"), Labels: ls("job", "x"), Tenant: "t2"})
	consume(s, b1)
	consume(s, b2)
	if srv.calls.Load() != 0 {
		t.Fatal("sent before batchwait")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if b1.settled.Load() != 1 || b2.settled.Load() != 1 {
		t.Fatal("Close returned before pending entries settled")
	}
	if got := srv.lines(""); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("default tenant got %v", got)
	}
	if got := srv.lines("t2"); !slices.Equal(got, []string{"c"}) {
		t.Errorf("tenant t2 got %v", got)
	}

	// Entries arriving after Close are held forever, so the source will
	// read them again rather than lose them.
	late := newTracked(entry(4, "late", ls("job", "x")))
	consume(s, late)
	if late.settled.Load() != 0 {
		t.Error("a batch consumed after Close was settled")
	}
}

func TestCloseAbandons(t *testing.T) {
	t.Run("retrying", func(t *testing.T) {
		srv := newLokiServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) bool {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return true
		})
		s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 10ms\n"+fastRetries+"  max_retries: 0\n")
		tb := newTracked(entry(1, "x", ls("job", "x")))
		consume(s, tb)
		waitFor(t, "retries", func() bool { return srv.calls.Load() >= 2 })
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := s.Close(ctx); err == nil {
			t.Fatal("Close returned nil although entries were abandoned")
		}
		if tb.settled.Load() != 0 {
			t.Fatal("abandoned batch settled")
		}
		if v := value(s.metrics.DroppedEntries.WithLabelValues(hostOf(srv.srv.URL), reasonGeneric, "")); v != 0 {
			t.Errorf("abandoned entries counted as dropped: %v", v)
		}
	})
	t.Run("in flight", func(t *testing.T) {
		stop := make(chan struct{})
		defer close(stop)
		srv := newLokiServer(t, func(_ http.ResponseWriter, r *http.Request, _ int64) bool {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return true
		})
		s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 10ms\ntimeout: 1m\n")
		tb := newTracked(entry(1, "x", ls("job", "x")))
		consume(s, tb)
		waitFor(t, "the request in flight", func() bool { return srv.calls.Load() == 1 })
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Close(ctx); err == nil {
			t.Fatal("Close returned nil")
		}
		if tb.settled.Load() != 0 {
			t.Fatal("abandoned batch settled")
		}
	})
}

func TestInvalidUTF8(t *testing.T) {
	srv := newLokiServer(t, nil)
	s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 10ms\n")
	tb := newTracked(entry(1, "ok", ls("job", "x")), entry(2, "bad \xff\xfe end", ls("job", "x")))
	consume(s, tb)
	waitFor(t, "settlement", func() bool { return tb.settled.Load() == 1 })
	got := srv.lines("")
	if !slices.Equal(got, []string{"ok", "bad \ufffd end"}) {
		t.Fatalf("got %q", got)
	}
	for _, l := range got {
		if !utf8.ValidString(l) {
			t.Errorf("invalid UTF-8 arrived: %q", l)
		}
	}
}

func TestIdleTenantRetires(t *testing.T) {
	srv := newLokiServer(t, nil)
	s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 10ms\n")
	s.idleTimeout = 20 * time.Millisecond
	tenants := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.tenants)
	}
	for i := range 3 {
		tb := newTracked(pipeline.Entry{Time: int64(i), Line: []byte(fmt.Sprint(i)), Labels: ls("job", "x"), Tenant: "t"})
		consume(s, tb)
		waitFor(t, "settlement", func() bool { return tb.settled.Load() == 1 })
		waitFor(t, "the idle sender to retire", func() bool { return tenants() == 0 })
	}
	if got := srv.lines("t"); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Errorf("got %v", got)
	}
}

func TestBackoff(t *testing.T) {
	s := &Sink{cfg: Config{BackoffConfig: BackoffConfig{MinPeriod: 100 * time.Millisecond, MaxPeriod: time.Second}}}
	for n := range 70 {
		ceil := time.Second
		if n < 4 {
			ceil = 100 * time.Millisecond << n
		}
		for range 50 {
			if d := s.backoff(n, 0); d < 100*time.Millisecond || d > ceil {
				t.Fatalf("backoff(%d) = %v, want within [100ms, %v]", n, d, ceil)
			}
		}
	}
	if d := s.backoff(0, 3*time.Second); d != time.Second {
		t.Errorf("Retry-After 3s with max_period 1s: %v", d)
	}
	if d := s.backoff(5, 300*time.Millisecond); d != 300*time.Millisecond {
		t.Errorf("Retry-After 300ms: %v", d)
	}

	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"7", 7 * time.Second}, {" 2 ", 2 * time.Second}, {"-1", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// When sources wait for memory, the runner asks the sink to send what it
// holds rather than wait out batchwait.
func TestFlushNowSendsWithoutWaitingForBatchwait(t *testing.T) {
	srv := newLokiServer(t, nil)
	s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 1h\n")
	b := newTracked(entry(1, "held back", pipeline.Labels{{Name: "job", Value: "a"}}))
	consume(s, b)
	time.Sleep(50 * time.Millisecond)
	if n := srv.entryCount(); n != 0 {
		t.Fatalf("sent %d entries before batchwait without pressure", n)
	}
	s.FlushNow()
	waitFor(t, "the flushed push", func() bool { return srv.entryCount() == 1 })
	waitFor(t, "settlement", func() bool { return b.settled.Load() == 1 })
}
