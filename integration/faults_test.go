package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// faultRig is vigil tailing one file into a scriptable receiver.
type faultRig struct {
	t         *testing.T
	r         *lokiReceiver
	v         *vigilProc
	file      string
	positions string
}

func newFaultRig(t *testing.T, bufferBytes string, sinkExtra ...string) *faultRig {
	t.Helper()
	r := newLokiReceiver(t)
	dir, glob := logDir(t)
	rig := &faultRig{t: t, r: r, file: filepath.Join(dir, "app.log"), positions: filepath.Join(t.TempDir(), "positions.yaml")}
	o := cfgOpts{
		Positions:   rig.positions,
		BufferBytes: bufferBytes,
		Include:     []string{glob},
		Labels:      map[string]string{"job": "faults"},
		URL:         r.pushURL(),
	}
	for _, l := range sinkExtra {
		if v, ok := strings.CutPrefix(l, "batchwait: "); ok {
			o.BatchWait = v
		} else {
			o.SinkExtra = append(o.SinkExtra, l)
		}
	}
	cfg := o.write(t, t.TempDir())
	rig.v = startVigil(t, cfg)
	return rig
}

// waitSettled waits until the positions file says the whole file is
// committed: every line was delivered or dropped for good.
func (rig *faultRig) waitSettled() {
	rig.t.Helper()
	var at, size int64
	waitFor(rig.t, deliveryTimeout, func() string {
		return fmt.Sprintf("positions file has %s at %d, file size %d: not everything settled", rig.file, at, size)
	}, func() bool {
		size = fileSize(rig.t, rig.file)
		if _, err := os.Stat(rig.positions); err != nil {
			return false
		}
		at = readPositions(rig.t, rig.positions)[rig.file]
		return at == size
	})
}

func (rig *faultRig) linesOf(pushes []faultedPush) []recvEntry {
	var out []recvEntry
	for _, p := range pushes {
		out = append(out, p.entries...)
	}
	return out
}

// TestMisbehavingReceiver drives vigil's loki sink through the faults a
// real Loki or the network produce, and checks that retryable faults lose
// nothing, permanent ones are dropped and counted exactly, and a dead
// receiver makes vigil wait within its memory budget.
func TestMisbehavingReceiver(t *testing.T) {
	needVigil(t)
	retrying := []string{
		"timeout: 1s",
		// max_period is above the Retry-After used below, so the server's
		// wait is what counts.
		"backoff_config: {min_period: 50ms, max_period: 5s, max_retries: 0}",
	}

	for _, tc := range []struct {
		name   string
		faults []fault
	}{
		{"503 then OK", []fault{
			{kind: faultStatus, status: 503, body: "service unavailable"},
			{kind: faultStatus, status: 503, body: "service unavailable"},
			{kind: faultStatus, status: 503, body: "service unavailable"},
			{kind: faultStatus, status: 503, body: "service unavailable"},
			{kind: faultStatus, status: 503, body: "service unavailable"},
		}},
		{"429 with Retry-After", []fault{
			{kind: faultStatus, status: 429, body: "Ingestion rate limit exceeded for user fake", retryAfter: "1"},
			{kind: faultStatus, status: 429, body: "Ingestion rate limit exceeded for user fake", retryAfter: "1"},
			{kind: faultStatus, status: 429, body: "Ingestion rate limit exceeded for user fake", retryAfter: "1"},
		}},
		{"replies slower than the timeout", []fault{
			{kind: faultSlow, delay: time.Minute},
			{kind: faultSlow, delay: time.Minute},
		}},
		{"connection resets", []fault{
			{kind: faultReset}, {kind: faultReset}, {kind: faultReset},
		}},
		{"mixed", []fault{
			{kind: faultReset},
			{kind: faultStatus, status: 500, body: "internal error"},
			{kind: faultSlow, delay: time.Minute},
			{kind: faultStatus, status: 502, body: "bad gateway"},
			{kind: faultStatus, status: 429, body: "Ingestion rate limit exceeded", retryAfter: "1"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rig := newFaultRig(t, "", retrying...)
			rig.r.failNext(tc.faults...)
			lines := numbered("retry", 0, 1500)
			appendLines(t, rig.file, lines[:700]...)
			time.Sleep(300 * time.Millisecond) // spread the lines over several pushes
			appendLines(t, rig.file, lines[700:]...)

			rig.r.waitLines(lines, deliveryTimeout)
			rig.v.waitMetric("promtail_sent_entries_total", nil, "every line counted as sent", deliveryTimeout, func(x float64) bool { return x >= float64(len(lines)) })
			rig.waitSettled()
			rig.r.checkExactlyOnce(lines)
			_, faulted, _ := rig.r.snapshot()
			if len(faulted) != len(tc.faults) {
				t.Errorf("receiver answered %d requests with a fault, want %d (the script)", len(faulted), len(tc.faults))
			}
			m := rig.v.scrape()
			if got := m.sum("promtail_batch_retries_total", nil); got != float64(len(tc.faults)) {
				t.Errorf("promtail_batch_retries_total = %v, want %d (one retry per failed push)", got, len(tc.faults))
			}
			if got := m.sum("promtail_dropped_entries_total", nil); got != 0 {
				t.Errorf("promtail_dropped_entries_total = %v, want 0 (retryable faults drop nothing): %v", got, m.byLabel("promtail_dropped_entries_total", "reason"))
			}
			if got := m.sum("promtail_sent_entries_total", nil); got != float64(len(lines)) {
				t.Errorf("promtail_sent_entries_total = %v, want %d", got, len(lines))
			}
			checkRetryAfter(t, rig.r)
		})
	}

	t.Run("400 drops the push and counts it", func(t *testing.T) {
		rig := newFaultRig(t, "", retrying...)
		const lokiErr = "entry with timestamp 2020-01-01 00:00:00 +0000 UTC ignored, reason: 'entry too far behind, " +
			"oldest acceptable timestamp is: 2026-01-01T00:00:00Z' for stream: {job=\"faults\"},\ntotal ignored: 1 out of 1"
		rig.r.failNext(fault{kind: faultStatus, status: http.StatusBadRequest, body: lokiErr})
		first := numbered("bad-request-1", 0, 400)
		appendLines(t, rig.file, first...)
		var rejected []recvEntry
		waitFor(t, deliveryTimeout, func() string { return "no push was answered with the 400" }, func() bool {
			_, faulted, _ := rig.r.snapshot()
			rejected = rig.linesOf(faulted)
			return len(faulted) == 1
		})
		rig.v.waitMetric("promtail_dropped_entries_total", nil, "the rejected push counted as dropped", deliveryTimeout, func(x float64) bool { return x > 0 })

		// vigil keeps going: later lines arrive.
		second := numbered("bad-request-2", 0, 400)
		appendLines(t, rig.file, second...)
		all := append(append([]string{}, first...), second...)
		rejectedSet := map[string]bool{}
		rejectedBytes := 0
		for _, e := range rejected {
			rejectedSet[e.Line] = true
			rejectedBytes += len(e.Line)
		}
		var want []string
		for _, l := range all {
			if !rejectedSet[l] {
				want = append(want, l)
			}
		}
		rig.r.waitLines(want, deliveryTimeout)
		rig.waitSettled()
		rig.r.checkExactlyOnce(want)
		if code, _, err := httpGet(rig.v.url("/ready")); err != nil || code != http.StatusOK {
			t.Errorf("vigil not ready after a 400: %d %v", code, err)
		}

		m := rig.v.scrape()
		reason := map[string]string{"reason": "ingester_error"}
		if got := m.sum("promtail_dropped_entries_total", reason); got != float64(len(rejected)) {
			t.Errorf("promtail_dropped_entries_total{reason=ingester_error} = %v, want %d (the lines of the rejected push); by reason: %v",
				got, len(rejected), m.byLabel("promtail_dropped_entries_total", "reason"))
		}
		if got := m.sum("promtail_dropped_entries_total", nil); got != float64(len(rejected)) {
			t.Errorf("promtail_dropped_entries_total (all reasons) = %v, want %d", got, len(rejected))
		}
		if got := m.sum("promtail_dropped_bytes_total", reason); got != float64(rejectedBytes) {
			t.Errorf("promtail_dropped_bytes_total{reason=ingester_error} = %v, want %d", got, rejectedBytes)
		}
		if got := m.sum("promtail_batch_retries_total", nil); got != 0 {
			t.Errorf("promtail_batch_retries_total = %v, want 0: a 400 is permanent, not retried", got)
		}
		if got := m.sum("promtail_sent_entries_total", nil); got != float64(len(want)) {
			t.Errorf("promtail_sent_entries_total = %v, want %d", got, len(want))
		}
		_, faulted, _ := rig.r.snapshot()
		if len(faulted) != 1 {
			t.Errorf("%d pushes faulted, want 1: the rejected push must not be sent again", len(faulted))
		}
	})

	t.Run("max_retries exhausted", func(t *testing.T) {
		rig := newFaultRig(t, "",
			"timeout: 1s",
			"backoff_config: {min_period: 20ms, max_period: 50ms, max_retries: 2}",
		)
		rig.r.setDown(&fault{kind: faultStatus, status: 503, body: "ingester unavailable"})
		lost := numbered("exhausted", 0, 600)
		appendLines(t, rig.file, lost...)
		rig.v.waitMetric("promtail_dropped_entries_total", nil, "every line dropped after its retries", deliveryTimeout, func(x float64) bool { return x >= float64(len(lost)) })
		// Dropped counts as settled: the position moves past the lines.
		rig.waitSettled()
		if n := rig.r.acceptedCount(); n != 0 {
			t.Fatalf("receiver accepted %d lines while down", n)
		}
		_, faulted, _ := rig.r.snapshot()
		attempts := map[string]int{} // first line of a push -> times sent
		for _, p := range faulted {
			if len(p.entries) > 0 {
				attempts[p.entries[0].Line]++
			}
		}
		for first, n := range attempts {
			if n < 2 || n > 3 {
				t.Errorf("push starting with %q was sent %d times with max_retries: 2", first, n)
			}
		}
		t.Logf("%d pushes dropped after %v attempts each", len(attempts), attempts)

		rig.r.setDown(nil)
		later := numbered("after-exhausted", 0, 300)
		appendLines(t, rig.file, later...)
		rig.r.waitLines(later, deliveryTimeout)
		rig.waitSettled()
		rig.r.checkExactlyOnce(later)
		m := rig.v.scrape()
		if got := m.sum("promtail_dropped_entries_total", nil); got != float64(len(lost)) {
			t.Errorf("promtail_dropped_entries_total = %v, want %d (the lines lost): %v", got, len(lost), m.byLabel("promtail_dropped_entries_total", "reason"))
		}
		if got := m.sum("promtail_dropped_entries_total", map[string]string{"reason": "ingester_error"}); got != float64(len(lost)) {
			t.Errorf("promtail_dropped_entries_total{reason=ingester_error} = %v, want %d", got, len(lost))
		}
		if got := m.sum("promtail_batch_retries_total", nil); got <= 0 {
			t.Errorf("promtail_batch_retries_total = %v, want > 0", got)
		}
	})

	t.Run("receiver down: bounded memory, then everything arrives", func(t *testing.T) {
		const budget = 1 << 20
		rig := newFaultRig(t, "1MiB",
			// A budget this small holds less than a push, so every push
			// waits out batchwait: keep it short for the catch-up.
			"batchwait: 20ms",
			"timeout: 2s",
			"backoff_config: {min_period: 50ms, max_period: 200ms, max_retries: 0}",
		)
		rig.r.setDown(&fault{kind: faultStatus, status: 503, body: "down"})
		time.Sleep(500 * time.Millisecond)
		baseRSS, err := rssBytes(rig.v.pid())
		if err != nil {
			t.Fatal(err)
		}

		// Far more than the budget, and more than vigil's whole footprint.
		const lineLen = 150
		pad := strings.Repeat("p", lineLen)
		var lines []string
		size := 0
		for i := 0; size < 32<<20; i++ {
			l := fmt.Sprintf("bp-%07d %s", i, pad)[:lineLen]
			lines = append(lines, l)
			size += len(l) + 1
		}
		appendLines(t, rig.file, lines...)
		rig.v.waitMetric("promtail_batch_retries_total", nil, "the first retries", deliveryTimeout, func(x float64) bool { return x >= 3 })

		var maxBuf, maxReadLines float64
		var maxRSS int64
		for i := 0; i < 20; i++ {
			m := rig.v.scrape()
			buf, capacity := m.sum("vigil_buffer_bytes", nil), m.sum("vigil_buffer_capacity_bytes", nil)
			if capacity != budget {
				t.Fatalf("vigil_buffer_capacity_bytes = %v, want %d", capacity, budget)
			}
			maxBuf = max(maxBuf, buf)
			maxReadLines = max(maxReadLines, m.sum("promtail_read_lines_total", map[string]string{"path": rig.file}))
			if rss, err := rssBytes(rig.v.pid()); err == nil {
				maxRSS = max(maxRSS, rss)
			}
			time.Sleep(150 * time.Millisecond)
		}
		maxRead := maxReadLines * (lineLen + 1)
		t.Logf("while down: file %d MiB, max vigil_buffer_bytes %.0f (capacity %d), read %.0f lines (%.0f bytes), RSS %d MiB at idle, max %d MiB",
			size>>20, maxBuf, budget, maxReadLines, maxRead, baseRSS>>20, maxRSS>>20)
		if maxBuf > budget {
			t.Errorf("vigil_buffer_bytes reached %.0f, above its capacity %d", maxBuf, budget)
		}
		if maxRead > float64(size/4) {
			t.Errorf("vigil read %.0f of %d bytes while nothing could be delivered: readers must wait", maxRead, size)
		}
		// Reading the file into memory would add at least its size.
		if maxRSS > baseRSS+int64(size*2/3) {
			t.Errorf("RSS grew from %d MiB to %d MiB while the receiver was down (file %d MiB): memory is not bounded", baseRSS>>20, maxRSS>>20, size>>20)
		}
		if n := rig.r.acceptedCount(); n != 0 {
			t.Fatalf("receiver accepted %d lines while down", n)
		}

		rig.r.setDown(nil)
		rig.r.waitLines(lines, 3*deliveryTimeout)
		rig.waitSettled()
		rig.r.checkExactlyOnce(lines)
		m := rig.v.scrape()
		if got := m.sum("promtail_dropped_entries_total", nil); got != 0 {
			t.Errorf("promtail_dropped_entries_total = %v, want 0: with max_retries 0 nothing is dropped", got)
		}
	})
}

// checkRetryAfter checks that a push answered 429 with Retry-After was not
// sent again before that many seconds. Only a lower bound is checked: a
// loaded machine can only make the wait longer.
func checkRetryAfter(t *testing.T, r *lokiReceiver) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, p := range r.pushes {
		if p.fault == nil || p.fault.status != http.StatusTooManyRequests || p.fault.retryAfter == "" || p.first == "" {
			continue
		}
		wait, err := time.ParseDuration(p.fault.retryAfter + "s")
		if err != nil {
			t.Fatalf("bad Retry-After in the script: %q", p.fault.retryAfter)
		}
		// The retry is the next request carrying the same first line.
		for _, q := range r.pushes[i+1:] {
			if q.first == p.first {
				if gap := q.at.Sub(p.at); gap < wait-100*time.Millisecond {
					t.Errorf("push retried %s after a 429 with Retry-After: %s", gap, p.fault.retryAfter)
				}
				break
			}
		}
	}
}
