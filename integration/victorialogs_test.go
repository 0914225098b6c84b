package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// victoriaLogs is a real Loki-protocol server: VictoriaLogs, built by
// `make tools` into bin/victoria-logs.
type victoriaLogs struct {
	t      *testing.T
	base   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
}

// victoriaLogsBin finds the binary, or skips (fails under CI=true).
func victoriaLogsBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("VIGIL_VICTORIALOGS_BIN")
	from := "$VIGIL_VICTORIALOGS_BIN"
	if bin == "" {
		bin = filepath.Join(repoRoot, "bin", "victoria-logs")
		from = "bin/victoria-logs"
	}
	fi, err := os.Stat(bin)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		missing(t, "VictoriaLogs is missing: no executable at %s (%s). Build it with `make tools` in %s, or point VIGIL_VICTORIALOGS_BIN at a victoria-logs binary", bin, from, repoRoot)
	}
	return bin
}

// startVictoriaLogs starts an empty VictoriaLogs on a free loopback port
// and waits for /health.
func startVictoriaLogs(t *testing.T) *victoriaLogs {
	t.Helper()
	needVigil(t)
	bin := victoriaLogsBin(t)
	for attempt := 0; ; attempt++ {
		addr := freeAddr(t)
		v := &victoriaLogs{t: t, base: "http://" + addr, stderr: &syncBuffer{}, done: make(chan struct{})}
		v.cmd = exec.Command(bin,
			"-storageDataPath", t.TempDir(),
			"-httpListenAddr", addr,
			// Lines are stored as they are, not parsed as JSON into fields,
			// so what is queried back can be compared with what was written.
			"-loki.disableMessageParsing",
			"-retentionPeriod", "30d",
			// Every query flushes, and every flush logs at INFO.
			"-loggerLevel", "WARN",
		)
		v.cmd.Stdout = v.stderr
		v.cmd.Stderr = v.stderr
		if err := v.cmd.Start(); err != nil {
			t.Fatalf("starting VictoriaLogs: %v", err)
		}
		go func() {
			_ = v.cmd.Wait()
			close(v.done)
		}()
		t.Cleanup(func() {
			_ = v.cmd.Process.Kill()
			<-v.done
			if t.Failed() {
				t.Logf("VictoriaLogs output:\n%s", tail(v.stderr.String(), 8<<10))
			}
		})
		if v.waitHealthy() {
			return v
		}
		if attempt >= 3 || !strings.Contains(v.stderr.String(), "address already in use") {
			t.Fatalf("VictoriaLogs did not become healthy within %s:\n%s", startTimeout, tail(v.stderr.String(), 8<<10))
		}
	}
}

// waitHealthy waits for /health; false when the process exited or the
// deadline passed.
func (v *victoriaLogs) waitHealthy() bool {
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) && !v.exited() {
		if code, _, err := httpGet(v.base + "/health"); err == nil && code == http.StatusOK {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func (v *victoriaLogs) exited() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// pushURL is VictoriaLogs' Loki push endpoint.
func (v *victoriaLogs) pushURL() string { return v.base + "/insert/loki/api/v1/push" }

// vlRow is one log entry as LogsQL returns it: every field as a string
// (_msg, _time, _stream and one field per stream label).
type vlRow map[string]string

// query flushes what was ingested and runs a LogsQL query.
func (v *victoriaLogs) query(q string, limit int) ([]vlRow, error) {
	code, body, err := httpGet(v.base + "/internal/force_flush")
	if err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("force_flush: status %d %q: %v", code, body, err)
	}
	resp, err := httpClient.PostForm(v.base+"/select/logsql/query", url.Values{
		"query": {q},
		"limit": {strconv.Itoa(limit)},
	})
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		return nil, fmt.Errorf("query %q: status %d: %s", q, resp.StatusCode, b.String())
	}
	var rows []vlRow
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var row vlRow
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return nil, fmt.Errorf("query %q: bad JSON line %q: %w", q, sc.Text(), err)
		}
		rows = append(rows, row)
	}
	return rows, sc.Err()
}

// count is the number of stored entries matching a LogsQL filter.
func (v *victoriaLogs) count(filter string) (int, error) {
	rows, err := v.query(filter+" | stats count() as n", 1)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, fmt.Errorf("count query returned %d rows", len(rows))
	}
	return strconv.Atoi(rows[0]["n"])
}

// waitCount polls until at least n entries match filter, and returns the
// count.
func (v *victoriaLogs) waitCount(filter string, n int, timeout time.Duration) int {
	v.t.Helper()
	var got int
	var err error
	waitFor(v.t, timeout, func() string {
		return fmt.Sprintf("VictoriaLogs has %d entries matching %s, want %d (err %v)", got, filter, n, err)
	}, func() bool {
		got, err = v.count(filter)
		return err == nil && got >= n
	})
	return got
}

// msgCounts returns how many times each _msg matching filter is stored.
func (v *victoriaLogs) msgCounts(filter string, limit int) map[string]int {
	v.t.Helper()
	rows, err := v.query(filter+" | fields _msg", limit)
	if err != nil {
		v.t.Fatal(err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r["_msg"]]++
	}
	return out
}

// countUniq is the number of distinct lines matching a LogsQL filter.
func (v *victoriaLogs) countUniq(filter string) (int, error) {
	rows, err := v.query(filter+" | stats count_uniq(_msg) as n", 1)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, fmt.Errorf("count_uniq query returned %d rows", len(rows))
	}
	return strconv.Atoi(rows[0]["n"])
}
