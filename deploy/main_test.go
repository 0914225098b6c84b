package deploy

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/syncbuf"
)

var (
	// repoRoot is the module root; deployDir is repoRoot/deploy.
	repoRoot, deployDir string
	// vigilBin is the static vigil built by TestMain; empty under -short.
	vigilBin string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		fmt.Fprintf(os.Stderr, "deploy: not inside the vigil module (go env GOMOD: %q, %v)\n", out, err)
		return 1
	}
	repoRoot = filepath.Dir(strings.TrimSpace(string(out)))
	deployDir = filepath.Join(repoRoot, "deploy")
	if testing.Short() {
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "vigil-deploy-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// Static, as `make build` links it: the image test copies it into a
	// FROM scratch image.
	bin := filepath.Join(tmp, "bin", "vigil")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/vigil")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "deploy: building vigil: %v\n%s", err, out)
		return 1
	}
	vigilBin = bin
	return m.Run()
}

// missing fails under CI=true, where every tool must be installed, and
// skips elsewhere.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// tool finds a command in PATH or reports the Debian package that has it.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not found in PATH (install Debian's %s)", name, pkg)
	}
	return p
}

func needVigil(t *testing.T) {
	t.Helper()
	if testing.Short() || vigilBin == "" {
		t.Skip("starts processes: skipped with -short")
	}
}

// runTool runs a command and returns its combined output; a non-zero exit
// fails the test with that output.
func runTool(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func path(elem ...string) string { return filepath.Join(append([]string{deployDir}, elem...)...) }

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer collects output written from several goroutines.
type syncBuffer = syncbuf.Buffer

// proc is a started server process.
type proc struct {
	// kill stops it with SIGKILL rather than SIGTERM (vigil drains towards
	// a Loki that is not there for its whole graceful-shutdown timeout).
	kill   bool
	name   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

// start runs a server until the test ends, waiting for ready (a URL that
// must answer 200). Its output is logged when the test fails.
func start(t *testing.T, name, ready string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, lastKB(p.out.String()))
		}
	})
	t.Logf("%s: pid %d: %s %s", name, p.cmd.Process.Pid, bin, strings.Join(args, " "))
	if err := waitHTTP(ready, p.exited, 60*time.Second); err != nil {
		t.Fatalf("%s did not become ready at %s: %v\n%s", name, ready, err, lastKB(p.out.String()))
	}
	return p
}

// stop sends SIGTERM, then SIGKILL after 20s, and waits.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	if p.kill {
		_ = p.cmd.Process.Kill()
	} else {
		_ = p.cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func httpGet(u string) (int, []byte, error) {
	resp, err := httpClient.Get(u)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func waitHTTP(u string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("the process exited")
		default:
		}
		code, body, err := httpGet(u)
		if err == nil && code == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", code, bytes.TrimSpace(body))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %s: %s", timeout, last)
}

// eventually polls cond until it returns "" or the timeout passes; the last
// non-empty answer is the failure message.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, timeout, msg)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// execOut runs a command and returns its combined output.
func execOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// lastKB keeps a failure message readable when a process was chatty.
func lastKB(s string) string {
	if len(s) > 8<<10 {
		return "…" + s[len(s)-8<<10:]
	}
	return s
}
