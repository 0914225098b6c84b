package loki

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Drop reasons, as Promtail labels promtail_dropped_entries_total.
const (
	reasonGeneric       = "ingester_error"
	reasonRateLimited   = "rate_limited"
	reasonStreamLimited = "stream_limited"
	reasonLineTooLong   = "line_too_long"
)

var reasons = []string{reasonGeneric, reasonRateLimited, reasonStreamLimited, reasonLineTooLong}

// maxErrBody is how much of Loki's error reply is kept for the log.
const maxErrBody = 1024

// pushResult is the outcome of one request.
type pushResult struct {
	status     int // -1 when no response arrived
	retryAfter time.Duration
	body       string // first line of a non-2xx reply
	err        error
}

// deliver sends one batch until it is accepted or dropped, then settles
// it. It returns false when the sink was aborted; the batch is then
// abandoned, unsettled.
func (q *tenantQueue) deliver(lb *lokiBatch) bool {
	s := q.s
	if q.enc == nil {
		q.enc = getEncoder()
	}
	enc := q.enc
	defer enc.reset()
	body, lineBytes, err := enc.encode(lb.entries, q.labels)
	entries := len(lb.entries)
	if err != nil {
		// Cannot happen with valid timestamps; if it does, retrying would
		// fail the same way.
		q.drop(lb, reasonGeneric, fmt.Sprintf("encoding: %v", err))
		return true
	}
	s.metrics.EncodedBytes.WithLabelValues(s.host).Add(float64(len(body)))

	for retries := 0; ; retries++ {
		start := time.Now()
		r := s.push(q.tenant, body)
		s.metrics.RequestDuration.WithLabelValues(strconv.Itoa(r.status), s.host).Observe(time.Since(start).Seconds())
		if r.err == nil {
			s.metrics.SentEntries.WithLabelValues(s.host).Add(float64(entries))
			s.metrics.SentBytes.WithLabelValues(s.host).Add(float64(lineBytes))
			lb.settle()
			return true
		}
		if s.abortCtx.Err() != nil {
			return false
		}
		reason, retryable := classify(r)
		switch {
		case r.status == http.StatusTooManyRequests && s.cfg.DropRateLimitedBatches:
			q.drop(lb, reason, r.err.Error())
			return true
		case !retryable:
			q.drop(lb, reason, r.err.Error())
			return true
		case s.cfg.BackoffConfig.MaxRetries > 0 && retries >= s.cfg.BackoffConfig.MaxRetries:
			q.drop(lb, reason, fmt.Sprintf("giving up after %d retries: %v", retries, r.err))
			return true
		}
		s.metrics.BatchRetries.WithLabelValues(s.host, q.tenant).Inc()
		wait := s.backoff(retries, r.retryAfter)
		s.drops.Warn("retry:"+q.tenant, "push failed, will retry",
			"tenant", q.tenant, "status", r.status, "error", r.err, "retry_in", wait, "attempt", retries+1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.abortCtx.Done():
			t.Stop()
			return false
		}
	}
}

// drop counts and logs a batch that will never be delivered, then
// settles it: the delivery contract treats a counted drop as done.
func (q *tenantQueue) drop(lb *lokiBatch, reason, msg string) {
	s := q.s
	n := 0
	for i := range lb.entries {
		n += len(lb.entries[i].Line)
	}
	s.metrics.DroppedEntries.WithLabelValues(s.host, reason, q.tenant).Add(float64(len(lb.entries)))
	s.metrics.DroppedBytes.WithLabelValues(s.host, reason, q.tenant).Add(float64(n))
	s.drops.Warn("drop:"+reason+":"+q.tenant, "dropping batch",
		"tenant", q.tenant, "reason", reason, "entries", len(lb.entries), "bytes", n, "error", msg)
	lb.settle()
}

// classify maps a failed push to its drop reason and whether to retry:
// 429, 5xx and network errors are retried, other statuses are permanent.
func classify(r pushResult) (reason string, retryable bool) {
	body := strings.ToLower(r.body)
	switch {
	case strings.Contains(body, "stream limit"):
		reason = reasonStreamLimited
	case strings.Contains(body, "max entry size") || strings.Contains(body, "line too long"):
		reason = reasonLineTooLong
	case r.status == http.StatusTooManyRequests:
		reason = reasonRateLimited
	default:
		reason = reasonGeneric
	}
	retryable = r.status < 0 || r.status == http.StatusTooManyRequests || r.status/100 == 5
	return reason, retryable
}

// backoff is the wait before retry number n+1: Retry-After when the server
// sent one (capped at max_period), else exponential backoff with full
// jitter between min_period and min(max_period, min_period*2^n).
func (s *Sink) backoff(n int, retryAfter time.Duration) time.Duration {
	bc := s.cfg.BackoffConfig
	if retryAfter > 0 {
		return min(retryAfter, bc.MaxPeriod)
	}
	ceil := bc.MinPeriod
	for i := 0; i < n && ceil < bc.MaxPeriod; i++ {
		ceil *= 2
	}
	ceil = min(ceil, bc.MaxPeriod)
	if ceil <= bc.MinPeriod {
		return bc.MinPeriod
	}
	return bc.MinPeriod + rand.N(ceil-bc.MinPeriod+1)
}

// push makes one request.
func (s *Sink) push(tenant string, body []byte) pushResult {
	ctx := s.abortCtx
	if s.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return pushResult{status: -1, err: err}
	}
	req.Header = s.requestHeaders(tenant)

	resp, err := s.client.Do(req)
	if err != nil {
		return pushResult{status: -1, err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return pushResult{status: resp.StatusCode}
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, maxErrBody))
	line := ""
	if sc.Scan() {
		line = sc.Text()
	}
	r := pushResult{
		status: resp.StatusCode,
		body:   line,
		err:    fmt.Errorf("server returned HTTP status %s: %s", resp.Status, line),
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return r
}

func (s *Sink) requestHeaders(tenant string) http.Header {
	h := make(http.Header, len(s.headers)+4)
	// Configured headers first: as in Promtail (and Prometheus' auth round
	// trippers), a configured Authorization header wins over basic_auth
	// and bearer tokens, while the headers the protocol needs win over
	// configured ones.
	for k, v := range s.headers {
		h[k] = v
	}
	h.Set("Content-Type", "application/x-protobuf")
	h.Set("User-Agent", s.userAgent)
	if tenant != "" {
		h.Set("X-Scope-OrgID", tenant)
	}
	if h.Get("Authorization") == "" {
		if a := s.auth.Header(); a != "" {
			h.Set("Authorization", a)
		}
	}
	return h
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or
// unparsable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
