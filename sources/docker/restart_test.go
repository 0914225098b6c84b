package docker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// engineProxy serves the local Engine's API on a unix socket of its own,
// so a test can make the Engine vanish and come back (as a restart of the
// Engine does to its clients) without touching the real one: Stop closes
// the socket and cuts every open stream.
type engineProxy struct {
	path string
	mu   sync.Mutex
	srv  *http.Server
}

func newEngineProxy(t *testing.T) *engineProxy {
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		sock = strings.TrimPrefix(h, "unix://")
	}
	p := &engineProxy{path: filepath.Join(t.TempDir(), "engine.sock")}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "docker"})
	rp.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	rp.FlushInterval = -1
	p.srv = &http.Server{Handler: rp}
	t.Cleanup(p.stop)
	return p
}

func (p *engineProxy) start(t *testing.T) {
	t.Helper()
	os.Remove(p.path)
	l, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	srv := &http.Server{Handler: p.srv.Handler}
	p.srv = srv
	p.mu.Unlock()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("proxy: %v", err)
		}
	}()
}

func (p *engineProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.srv.Close() // cuts hijacked and streaming connections too
	os.Remove(p.path)
}

// The Engine goes away while containers write (its socket is gone, every
// stream is cut) and comes back: the source logs it, reconnects, and every
// line arrives exactly once, including those written during the outage.
func TestEngineRestartResumesExactly(t *testing.T) {
	img := loggenImage(t)
	p := newEngineProxy(t)
	p.start(t)
	out := &recorder{}
	h := startSource(t, "host: unix://"+p.path+"\nrefresh_interval: 1h\n", memPositions(t), out)
	name := uniqueName(t)
	docker(t, "run", "-d", "--name", name, img, "-n", "300", "-interval", "10ms", "-stderr")
	waitFor(t, 20*time.Second, "the first lines", func() bool { return len(out.lines(name, "")) >= 50 })
	p.stop()
	time.Sleep(1500 * time.Millisecond) // lines keep coming while the engine is away
	p.start(t)
	docker(t, "wait", name)
	waitFor(t, 30*time.Second, "every line", func() bool { return len(out.lines(name, "")) >= 300 })
	wantOut, wantErr := dockerLogs(t, name)
	equalLines(t, "stdout", out.lines(name, "stdout"), wantOut)
	equalLines(t, "stderr", out.lines(name, "stderr"), wantErr)
	waitFor(t, 10*time.Second, "the reconnect to be logged", func() bool {
		return strings.Contains(h.logs.String(), "connected to the docker engine again") ||
			strings.Contains(h.logs.String(), "reconnecting")
	})
}
