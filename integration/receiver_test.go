package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/loki/pkg/push"
	"github.com/klauspost/compress/snappy"
)

// lokiReceiver is a Loki push endpoint that decodes every request (snappy
// block compressed protobuf, as Promtail sends) and records its lines, and
// that can be scripted to fail: statuses with bodies and Retry-After, slow
// replies and reset connections. It stands in for Loki only where a real
// server cannot be made to misbehave on cue.
type lokiReceiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	accepted []recvEntry
	counts   map[string]int // line -> times accepted
	faulted  []faultedPush
	pushes   []pushRecord // every decoded request, in arrival order
	requests int
	script   []fault           // consumed one per request, before down
	down     *fault            // applied to every request while set
	tenants  map[string]*fault // applied to every request of a tenant while set
	problems []string
}

// recvEntry is one line as the receiver got it.
type recvEntry struct {
	Line   string
	Labels map[string]string
	Tenant string
	Time   time.Time
}

type faultKind int

const (
	faultStatus faultKind = iota // answer status with body (and Retry-After)
	faultSlow                    // answer nothing for delay: beyond the client's timeout
	faultReset                   // close the connection with a TCP reset, no answer
)

type fault struct {
	kind       faultKind
	status     int
	body       string
	retryAfter string
	delay      time.Duration
}

func (f fault) String() string {
	switch f.kind {
	case faultSlow:
		return "slow " + f.delay.String()
	case faultReset:
		return "reset"
	}
	return strconv.Itoa(f.status)
}

// pushRecord is one request: when it came, its first line and its fault
// (nil when accepted).
type pushRecord struct {
	at    time.Time
	first string
	fault *fault
}

// faultedPush is a request that got a fault instead of a 2xx.
type faultedPush struct {
	fault   fault
	at      time.Time
	entries []recvEntry
}

func newLokiReceiver(t *testing.T) *lokiReceiver {
	r := &lokiReceiver{t: t, counts: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.handle))
	t.Cleanup(func() {
		// A held slow request must not keep Close waiting.
		r.srv.CloseClientConnections()
		r.srv.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, p := range r.problems {
			t.Errorf("loki receiver: %s", p)
		}
	})
	return r
}

// pushURL is what vigil's loki sink points at.
func (r *lokiReceiver) pushURL() string { return r.srv.URL + "/loki/api/v1/push" }

// host is the URL's host:port, the host label of vigil's sink metrics.
func (r *lokiReceiver) host() string { return strings.TrimPrefix(r.srv.URL, "http://") }

// failNext makes the next requests fail, one fault each, in order.
func (r *lokiReceiver) failNext(fs ...fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script = append(r.script, fs...)
}

// setDown makes every request fail with f until setDown(nil).
func (r *lokiReceiver) setDown(f *fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = f
}

// setTenantDown makes every request of tenant fail with f until
// setTenantDown(tenant, nil).
func (r *lokiReceiver) setTenantDown(tenant string, f *fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tenants == nil {
		r.tenants = map[string]*fault{}
	}
	r.tenants[tenant] = f
}

func (r *lokiReceiver) handle(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/loki/api/v1/push" || req.Method != http.MethodPost {
		r.problem("unexpected request %s %s", req.Method, req.URL.Path)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	entries, err := decodePush(req)
	if err != nil && strings.HasPrefix(err.Error(), "reading body") {
		// The client went away mid-request: vigil aborts in-flight pushes
		// when its shutdown deadline passes. Nothing was accepted.
		return
	}
	if err != nil {
		r.problem("undecodable push: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.requests++
	var f *fault
	if len(r.script) > 0 {
		f = &r.script[0]
		r.script = r.script[1:]
	} else if r.down != nil {
		f = r.down
	} else if tf := r.tenants[req.Header.Get("X-Scope-OrgID")]; tf != nil {
		f = tf
	}
	rec := pushRecord{at: time.Now()}
	if len(entries) > 0 {
		rec.first = entries[0].Line
	}
	if f != nil {
		fl := *f
		rec.fault = &fl
	}
	r.pushes = append(r.pushes, rec)
	if f == nil {
		r.acceptLocked(entries)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	fl := *f
	r.faulted = append(r.faulted, faultedPush{fault: fl, at: rec.at, entries: entries})
	r.mu.Unlock()

	switch fl.kind {
	case faultStatus:
		if fl.retryAfter != "" {
			w.Header().Set("Retry-After", fl.retryAfter)
		}
		http.Error(w, fl.body, fl.status)
	case faultSlow:
		// The client gives up first; its lines count as not accepted.
		select {
		case <-req.Context().Done():
		case <-time.After(fl.delay):
			r.problem("slow reply of %s outlived the client's patience; make the delay longer than the sink's timeout", fl.delay)
			http.Error(w, "too slow", http.StatusServiceUnavailable)
		}
	case faultReset:
		hj, ok := w.(http.Hijacker)
		if !ok {
			r.problem("cannot hijack the connection")
			return
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			r.problem("hijack: %v", err)
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST rather than FIN
		}
		conn.Close()
	}
}

func (r *lokiReceiver) acceptLocked(entries []recvEntry) {
	r.accepted = append(r.accepted, entries...)
	for _, e := range entries {
		r.counts[e.Line]++
	}
}

func (r *lokiReceiver) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// decodePush decodes a Loki push request as Loki does for protobuf.
func decodePush(req *http.Request) ([]recvEntry, error) {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		return nil, fmt.Errorf("Content-Type %q, want application/x-protobuf", ct)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	var pr push.PushRequest
	if err := pr.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("protobuf: %w", err)
	}
	tenant := req.Header.Get("X-Scope-OrgID")
	var out []recvEntry
	for _, s := range pr.Streams {
		ls, err := parseLabels(s.Labels)
		if err != nil {
			return nil, fmt.Errorf("stream labels %q: %w", s.Labels, err)
		}
		for _, e := range s.Entries {
			out = append(out, recvEntry{Line: e.Line, Labels: ls, Tenant: tenant, Time: e.Timestamp})
		}
	}
	return out, nil
}

// parseLabels parses a stream selector as Promtail and vigil write it:
// {a="1", b="2"}, values quoted Go-style.
func parseLabels(s string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(s, "{")
	if !ok {
		return nil, fmt.Errorf("no opening brace")
	}
	out := map[string]string{}
	for {
		rest = strings.TrimLeft(rest, " ")
		if r, ok := strings.CutPrefix(rest, "}"); ok {
			if r != "" {
				return nil, fmt.Errorf("trailing text %q", r)
			}
			return out, nil
		}
		name, after, ok := strings.Cut(rest, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("bad label at %q", rest)
		}
		q, err := strconv.QuotedPrefix(after)
		if err != nil {
			return nil, fmt.Errorf("bad value for %s: %w", name, err)
		}
		v, _ := strconv.Unquote(q)
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("duplicate label %s", name)
		}
		out[name] = v
		rest = strings.TrimPrefix(after[len(q):], ",")
	}
}

// snapshot returns copies of what was accepted and faulted so far.
func (r *lokiReceiver) snapshot() (accepted []recvEntry, faulted []faultedPush, requests int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recvEntry(nil), r.accepted...), append([]faultedPush(nil), r.faulted...), r.requests
}

// acceptedCount is the number of lines accepted, duplicates included.
func (r *lokiReceiver) acceptedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.accepted)
}

// missingOf returns the lines of want that were never accepted.
func (r *lokiReceiver) missingOf(want []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var miss []string
	for _, l := range want {
		if r.counts[l] == 0 {
			miss = append(miss, l)
		}
	}
	return miss
}

// waitLines waits until every line of want was accepted at least once.
func (r *lokiReceiver) waitLines(want []string, timeout time.Duration) {
	r.t.Helper()
	waitFor(r.t, timeout, func() string {
		miss := r.missingOf(want)
		if r.acceptedCount() < len(want) && len(miss) == 0 {
			return fmt.Sprintf("only %d of %d lines accepted (duplicates included)", r.acceptedCount(), len(want))
		}
		return fmt.Sprintf("%d of %d lines never reached the receiver, first: %q", len(miss), len(want), firstN(miss, 3))
	}, func() bool {
		// Scanning every line is costly; do it only once enough arrived.
		return r.acceptedCount() >= len(want) && len(r.missingOf(want)) == 0
	})
}

// checkExactlyOnce fails unless every line of want was accepted exactly
// once and nothing else was accepted.
func (r *lokiReceiver) checkExactlyOnce(want []string) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	checkCounts(r.t, r.counts, want)
}

// checkCounts fails unless counts holds every line of want exactly once
// and nothing else.
func checkCounts(t *testing.T, counts map[string]int, want []string) {
	t.Helper()
	wantSet := make(map[string]bool, len(want))
	for _, l := range want {
		wantSet[l] = true
	}
	var missing, dups, extra []string
	for _, l := range want {
		switch n := counts[l]; {
		case n == 0:
			missing = append(missing, l)
		case n > 1:
			dups = append(dups, fmt.Sprintf("%dx %q", n, l))
		}
	}
	for l := range counts {
		if !wantSet[l] {
			extra = append(extra, l)
		}
	}
	sort.Strings(dups)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("%d of %d lines lost, first: %q", len(missing), len(want), firstN(missing, 5))
	}
	if len(dups) > 0 {
		t.Errorf("%d lines duplicated, first: %v", len(dups), firstN(dups, 5))
	}
	if len(extra) > 0 {
		t.Errorf("%d unexpected lines, first: %q", len(extra), firstN(extra, 5))
	}
}

func firstN[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}
