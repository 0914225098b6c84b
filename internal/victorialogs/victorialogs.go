// Package victorialogs runs VictoriaLogs, a real Loki-protocol server, for
// vigil's tests: it finds the binary `make tools` builds, starts it on a
// free loopback port and queries it with LogsQL.
package victorialogs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// StartTimeout bounds how long the server may take to become healthy.
const StartTimeout = 30 * time.Second

// Server is a running VictoriaLogs.
type Server struct {
	Base string // http://127.0.0.1:port

	cmd    *exec.Cmd
	output *lockedBuffer
	done   chan struct{}
}

// Row is one entry as LogsQL returns it: every field as a string (_msg,
// _time, _stream and one field per stream label or metadata key).
type Row map[string]string

// Binary finds victoria-logs: $VIGIL_VICTORIALOGS_BIN, else bin/ at the
// module root. When it is missing the test is skipped, or fails when
// CI=true, where nothing may skip.
func Binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("VIGIL_VICTORIALOGS_BIN")
	if bin == "" {
		root, err := moduleRoot()
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(root, "bin", "victoria-logs")
	}
	fi, err := os.Stat(bin)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		msg := fmt.Sprintf("VictoriaLogs is missing: no executable at %s. Build it with `make tools`, or point VIGIL_VICTORIALOGS_BIN at a victoria-logs binary", bin)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start runs an empty VictoriaLogs for the test and stops it at cleanup.
// Lines are stored as they are, not parsed into fields, so what is queried
// back can be compared with what was written.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		s := &Server{Base: "http://" + addr, output: &lockedBuffer{}, done: make(chan struct{})}
		s.cmd = exec.Command(bin,
			"-storageDataPath", t.TempDir(),
			"-httpListenAddr", addr,
			"-loki.disableMessageParsing",
			"-retentionPeriod", "30d",
			"-loggerLevel", "WARN", // every query flushes, and every flush logs at INFO
		)
		s.cmd.Stdout, s.cmd.Stderr = s.output, s.output
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("starting VictoriaLogs: %v", err)
		}
		go func() {
			_ = s.cmd.Wait()
			close(s.done)
		}()
		t.Cleanup(func() {
			_ = s.cmd.Process.Kill()
			<-s.done
			if t.Failed() {
				t.Logf("VictoriaLogs output:\n%s", s.Output())
			}
		})
		if s.waitHealthy() {
			return s
		}
		// Another process may have taken the port between close and start.
		if attempt >= 3 || !strings.Contains(s.Output(), "address already in use") {
			t.Fatalf("VictoriaLogs did not become healthy within %s:\n%s", StartTimeout, s.Output())
		}
	}
}

// Output is the tail of what the server printed.
func (s *Server) Output() string {
	out := s.output.String()
	if len(out) > 8<<10 {
		out = "..." + out[len(out)-8<<10:]
	}
	return out
}

func (s *Server) waitHealthy() bool {
	deadline := time.Now().Add(StartTimeout)
	for time.Now().Before(deadline) && !s.Exited() {
		if resp, err := http.Get(s.Base + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// Exited says whether the server process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// PushURL is the Loki push endpoint.
func (s *Server) PushURL() string { return s.Base + "/insert/loki/api/v1/push" }

var client = &http.Client{Timeout: 30 * time.Second}

// Query flushes what was ingested and runs a LogsQL query.
func (s *Server) Query(q string, limit int) ([]Row, error) {
	resp, err := client.Get(s.Base + "/internal/force_flush")
	if err != nil {
		return nil, fmt.Errorf("force_flush: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("force_flush: status %d", resp.StatusCode)
	}
	resp, err = client.PostForm(s.Base+"/select/logsql/query", url.Values{"query": {q}, "limit": {strconv.Itoa(limit)}})
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		return nil, fmt.Errorf("query %q: status %d: %s", q, resp.StatusCode, b.String())
	}
	var rows []Row
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var row Row
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return nil, fmt.Errorf("query %q: bad JSON line %q: %w", q, sc.Text(), err)
		}
		rows = append(rows, row)
	}
	return rows, sc.Err()
}

// Count is the number of stored entries matching a LogsQL filter.
func (s *Server) Count(filter string) (int, error) { return s.stat(filter, "count()") }

// CountUniq is the number of distinct lines matching a LogsQL filter.
func (s *Server) CountUniq(filter string) (int, error) { return s.stat(filter, "count_uniq(_msg)") }

func (s *Server) stat(filter, fn string) (int, error) {
	rows, err := s.Query(filter+" | stats "+fn+" as n", 1)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, fmt.Errorf("%s query returned %d rows", fn, len(rows))
	}
	return strconv.Atoi(rows[0]["n"])
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
