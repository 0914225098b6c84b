package loki

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pipeline"
)

// startVictoriaLogs runs the real Loki-protocol server that `make tools`
// builds into bin/. Without it the test skips, except in CI.
func startVictoriaLogs(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", "..", "bin", "victoria-logs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("VictoriaLogs missing (%v): run `make tools`", err)
		}
		t.Skipf("VictoriaLogs missing (%v): run `make tools`", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()

	cmd := exec.Command(bin, "-httpListenAddr="+addr, "-storageDataPath="+t.TempDir(), "-loggerLevel=ERROR")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	base := "http://" + addr
	waitFor(t, "VictoriaLogs to be healthy", func() bool {
		select {
		case <-exited:
			t.Fatalf("VictoriaLogs exited: %s", out.String())
		default:
		}
		resp, err := http.Get(base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return base
}

// TestVictoriaLogs pushes through the sink into a real Loki-protocol
// server and reads the entries back.
func TestVictoriaLogs(t *testing.T) {
	base := startVictoriaLogs(t)
	s := newTestSink(t, "url: "+base+"/insert/loki/api/v1/push\nexternal_labels: {host: vps1}\nbatchsize: 20000\n")

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

	resp, err := http.Get(base + "/internal/force_flush")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	var rows []map[string]string
	waitFor(t, "the entries to be queryable", func() bool {
		resp, err := http.PostForm(base+"/select/logsql/query", url.Values{"query": {`_stream:{job="vigil-test"}`}})
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		rows = rows[:0]
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var row map[string]string
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatalf("bad row %q: %v", sc.Text(), err)
			}
			rows = append(rows, row)
		}
		return len(rows) >= n
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
