package loki

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/victorialogs"
	"github.com/vigilhq/vigil/pipeline"
)

// TestVictoriaLogs pushes through the sink into a real Loki-protocol
// server and reads the entries back.
func TestVictoriaLogs(t *testing.T) {
	vl := victorialogs.Start(t)
	base := vl.Base
	s := newTestSink(t, "url: "+vl.PushURL()+"\nexternal_labels: {host: vps1}\nbatchsize: 20000\n")

	now := time.Now().Add(-time.Minute).UnixNano()
	const n = 1000
	var batches []*tracked
	for b := range 10 {
		var entries []pipeline.Entry
		for i := range n / 10 {
			k := b*n/10 + i
			labels := ls("filename", fmt.Sprintf("/var/log/app%d.log", k%2), "job", "vigil-test")
			line := fmt.Sprintf("line %04d %s", k, strings.Repeat("x", 100))
			if k == 7 {
				line = "bad \xff utf8"
			}
			entries = append(entries, pipeline.Entry{Time: now + int64(k), Line: []byte(line), Labels: labels,
				Metadata: ls("trace_id", fmt.Sprint("t", k))})
		}
		tb := newTracked(entries...)
		batches = append(batches, tb)
		consume(s, tb)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i, tb := range batches {
		if tb.settled.Load() != 1 {
			t.Fatalf("batch %d not settled", i)
		}
	}
	if sent := value(s.metrics.SentEntries.WithLabelValues(strings.TrimPrefix(base, "http://"))); sent != n {
		t.Fatalf("sent %v entries, want %d", sent, n)
	}

	var rows []victorialogs.Row
	waitFor(t, "the entries to be queryable", func() bool {
		var err error
		rows, err = vl.Query(`_stream:{job="vigil-test"}`, 2*n)
		return err == nil && len(rows) >= n
	})
	if len(rows) != n {
		t.Fatalf("got %d rows, want %d", len(rows), n)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r["_msg"]] = true
		if r["host"] != "vps1" || r["job"] != "vigil-test" || !strings.HasPrefix(r["filename"], "/var/log/app") {
			t.Fatalf("labels lost: %v", r)
		}
		if !strings.HasPrefix(r["trace_id"], "t") {
			t.Fatalf("structured metadata lost: %v", r)
		}
	}
	if !seen["bad \ufffd utf8"] || !seen["line 0999 "+strings.Repeat("x", 100)] || len(seen) != n {
		t.Errorf("lines lost or mangled: %d distinct", len(seen))
	}
}
