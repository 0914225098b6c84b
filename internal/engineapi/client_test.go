package engineapi_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/vigilhq/vigil/internal/dockertest"
	"github.com/vigilhq/vigil/internal/engineapi"
)

// These tests talk to the machine's real Docker Engine, running
// containers of the docker source's FROM scratch log generator.

func TestMain(m *testing.M) {
	code := m.Run()
	dockertest.RemoveImages()
	os.Exit(code)
}

// engineHost is the Engine the docker command talks to: $DOCKER_HOST when
// it is a unix socket, else the default socket.
func engineHost() string {
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		return h
	}
	return "unix:///var/run/docker.sock"
}

func newClient(t *testing.T) *engineapi.Client {
	t.Helper()
	dockertest.Need(t)
	c, err := engineapi.New(engineHost(), engineapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func loggen(t *testing.T) string {
	t.Helper()
	return dockertest.Image(t, "github.com/vigilhq/vigil/sources/docker/testdata/loggen")
}

var seq atomic.Int64

// run starts a container of the log generator with args and returns its
// name and ID; it is removed when the test ends.
func run(t *testing.T, args ...string) (name, id string) {
	t.Helper()
	img := loggen(t)
	name = fmt.Sprintf("vigiltest-engineapi-%d-%d", os.Getpid(), seq.Add(1))
	t.Cleanup(func() { dockertest.Docker(t, "rm", "-f", name) })
	id = dockertest.Docker(t, append([]string{"run", "-d", "--label", "vigiltest.engineapi=" + name, "--name", name, img}, args...)...)
	return name, id
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// The client asks for the Engine's own API version (the one the docker
// command reports), capped at the newest it speaks.
func TestNegotiatesTheEnginesVersion(t *testing.T) {
	c := newClient(t)
	if v := c.APIVersion(); v != "" {
		t.Fatalf("version %q before any request", v)
	}
	server := dockertest.Docker(t, "version", "--format", "{{.Server.APIVersion}}")
	want := server
	if older(engineapi.MaxAPIVersion, server) {
		want = engineapi.MaxAPIVersion
	}
	if _, err := c.ContainerList(ctxFor(t, 30*time.Second), engineapi.ContainerListOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := c.APIVersion(); got != want {
		t.Fatalf("negotiated %q; the Engine speaks %s, the client at most %s", got, server, engineapi.MaxAPIVersion)
	}
	if got, err := c.Negotiate(ctxFor(t, 30*time.Second)); err != nil || got != want {
		t.Fatalf("Negotiate = %q, %v; want %q", got, err, want)
	}
}

func older(a, b string) bool {
	var amaj, amin, bmaj, bmin int
	fmt.Sscanf(a, "%d.%d", &amaj, &amin)
	fmt.Sscanf(b, "%d.%d", &bmaj, &bmin)
	return amaj < bmaj || amaj == bmaj && amin < bmin
}

// recordingProxy serves the real Engine's socket over TCP (TLS when tls),
// recording each request's method, path and query.
type recordingProxy struct {
	srv   *httptest.Server
	conns atomic.Int64 // connections the client opened
	mu    sync.Mutex
	reqs  []*url.URL
}

func newRecordingProxy(t *testing.T, tls bool) *recordingProxy {
	t.Helper()
	dockertest.Need(t)
	sock := strings.TrimPrefix(engineHost(), "unix://")
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "docker"})
	rp.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	rp.FlushInterval = -1 // event and log streams
	p := &recordingProxy{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.reqs = append(p.reqs, r.URL)
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})
	p.srv = httptest.NewUnstartedServer(h)
	p.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			p.conns.Add(1)
		}
	}
	if tls {
		p.srv.StartTLS()
	} else {
		p.srv.Start()
	}
	t.Cleanup(p.srv.Close)
	return p
}

func (p *recordingProxy) paths() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, u := range p.reqs {
		out = append(out, u.Path)
	}
	return out
}

// Over tcp:// the client dials the address; the first request pings the
// unversioned /_ping, the rest carry the negotiated version in their
// path, and filters travel as the Engine's JSON. One connection carries
// them all.
func TestTCPVersionedPathsAndFilters(t *testing.T) {
	p := newRecordingProxy(t, false)
	c, err := engineapi.New("tcp://"+p.srv.Listener.Addr().String(), engineapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxFor(t, 30*time.Second)
	f := engineapi.Filters{}.Add("label", "vigiltest.engineapi=none")
	res, err := c.ContainerList(ctx, engineapi.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 0 {
		t.Fatalf("a filter nothing matches listed %d containers", len(res))
	}
	if _, err := c.NetworkList(ctx); err != nil {
		t.Fatal(err)
	}
	v := c.APIVersion()
	want := []string{"/_ping", "/v" + v + "/containers/json", "/v" + v + "/networks"}
	if got := p.paths(); !slices.Equal(got, want) {
		t.Fatalf("paths %q, want %q", got, want)
	}
	if n := p.conns.Load(); n != 1 {
		t.Fatalf("%d connections for 3 requests", n)
	}
	q := p.reqs[1].Query()
	if q.Get("all") != "1" || q.Get("filters") != `{"label":{"vigiltest.engineapi=none":true}}` {
		t.Fatalf("list query %q", p.reqs[1].RawQuery)
	}
}

// A tcp:// host spoken to over TLS through the caller's HTTP client; an
// https:// host speaks TLS even with the default transport (which does not
// trust the test server's certificate).
func TestTLSOverTCP(t *testing.T) {
	p := newRecordingProxy(t, true)
	addr := p.srv.Listener.Addr().String()
	c, err := engineapi.New("tcp://"+addr, engineapi.Options{HTTPClient: p.srv.Client(), TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxFor(t, 30*time.Second)
	nets, err := c.NetworkList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(nets, func(n network.Summary) bool { return n.Name == "bridge" }) {
		t.Fatalf("no bridge network among %d", len(nets))
	}
	d, err := engineapi.New("https://"+addr, engineapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = d.NetworkList(ctx)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("https:// with the default transport: %v, want a certificate error", err)
	}
}

// A running container is listed and inspected; once it exited, only a
// list with All has it.
func TestListAndInspect(t *testing.T) {
	c := newClient(t)
	// Generous: the docker CLI calls in between are slow on a loaded
	// machine, and the deadline only guards against a hung Engine.
	ctx := ctxFor(t, 5*time.Minute)
	name, id := run(t, "-n", "1", "-hold", "1m")
	only := engineapi.Filters{}.Add("label", "vigiltest.engineapi="+name)
	res, err := c.ContainerList(ctx, engineapi.ContainerListOptions{Filters: only})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].ID != id || res[0].State != container.StateRunning {
		t.Fatalf("list of the running container: %+v", res)
	}
	for _, ref := range []string{id, name} {
		ins, err := c.ContainerInspect(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if ins.ID != id || ins.Name != "/"+name || ins.State == nil || !ins.State.Running || ins.Config == nil || ins.Config.Labels["vigiltest.engineapi"] != name {
			t.Fatalf("inspect %s: %+v", ref, ins)
		}
	}
	dockertest.Docker(t, "kill", name)
	dockertest.Docker(t, "wait", name)
	if res, err = c.ContainerList(ctx, engineapi.ContainerListOptions{Filters: only}); err != nil || len(res) != 0 {
		t.Fatalf("running containers after the kill: %+v, %v", res, err)
	}
	if res, err = c.ContainerList(ctx, engineapi.ContainerListOptions{All: true, Filters: only}); err != nil || len(res) != 1 || res[0].State != container.StateExited {
		t.Fatalf("all containers after the kill: %+v, %v", res, err)
	}
}

// A container the Engine does not know is ErrNotFound and a 404
// StatusError naming the Engine and the endpoint.
func TestInspectMissingIsNotFound(t *testing.T) {
	c := newClient(t)
	_, err := c.ContainerInspect(ctxFor(t, 30*time.Second), "vigiltest-no-such-container")
	if !errors.Is(err, engineapi.ErrNotFound) {
		t.Fatalf("err %v, want ErrNotFound", err)
	}
	var se *engineapi.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusNotFound || !strings.Contains(se.Message, "vigiltest-no-such-container") {
		t.Fatalf("err %#v", err)
	}
	for _, part := range []string{engineHost(), "GET /containers/vigiltest-no-such-container/json", "404"} {
		if !strings.Contains(err.Error(), part) {
			t.Fatalf("%q does not name %q", err, part)
		}
	}
	if _, err := c.ContainerInspect(context.Background(), " "); err == nil || errors.Is(err, engineapi.ErrNotFound) {
		t.Fatalf("an empty ID: %v", err)
	}
}

// The events stream sees a container start and die, and ends with the
// context's error once the context is cancelled.
func TestEventsSeeStartAndDie(t *testing.T) {
	c := newClient(t)
	loggen(t) // built before the stream opens
	ctx, cancel := context.WithCancel(ctxFor(t, 60*time.Second))
	defer cancel()
	stream, err := c.Events(ctx, engineapi.Filters{}.Add("type", "container"))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	_, id := run(t, "-n", "1")
	seen := map[string]bool{}
	for !seen["start"] || !seen["die"] {
		m, err := stream.Next()
		if err != nil {
			t.Fatalf("after %v: %v", seen, err)
		}
		if m.Actor.ID == id {
			seen[string(m.Action)] = true
		}
	}
	cancel()
	start := time.Now()
	for {
		_, err := stream.Next()
		if err == nil {
			continue // buffered before the cancel
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("after cancel: %v", err)
		}
		break
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("Next took long to return after cancel")
	}
}

// frame is one message of a multiplexed log stream.
type frame struct {
	stream byte
	ts     time.Time
	text   string
}

func readFrames(t *testing.T, r io.Reader) []frame {
	t.Helper()
	br := bufio.NewReader(r)
	var out []frame
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(br, hdr[:]); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, binary.BigEndian.Uint32(hdr[4:]))
		if _, err := io.ReadFull(br, msg); err != nil {
			t.Fatal(err)
		}
		ts, text, _ := strings.Cut(strings.TrimSuffix(string(msg), "\n"), " ")
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("message %q: %v", msg, err)
		}
		out = append(out, frame{stream: hdr[0], ts: tm, text: text})
	}
}

// Logs come as stdcopy frames with timestamps, per stream as asked, and
// from a time on with Since (inclusive); a follow ends when the container
// stops.
func TestContainerLogs(t *testing.T) {
	c := newClient(t)
	ctx := ctxFor(t, 60*time.Second)
	name, id := run(t, "-n", "6", "-stderr", "-interval", "5ms", "-prefix", "engineapi")
	dockertest.Docker(t, "wait", name)
	read := func(o engineapi.LogsOptions) []frame {
		t.Helper()
		o.Timestamps = true
		rc, err := c.ContainerLogs(ctx, id, o)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		return readFrames(t, rc)
	}
	all := read(engineapi.LogsOptions{Stdout: true, Stderr: true})
	if len(all) != 6 {
		t.Fatalf("%d messages, want 6: %+v", len(all), all)
	}
	// stdout and stderr reach the Engine through pipes of their own, so a
	// loaded machine can log an odd message before the even one before it:
	// every message must be there once, on its stream, in any order.
	seen := map[int]bool{}
	for i, f := range all {
		var seq int
		if _, err := fmt.Sscanf(f.text[strings.LastIndex(f.text, " ")+1:], "seq=%d", &seq); err != nil || seen[seq] || seq < 0 || seq > 5 {
			t.Fatalf("message %d: %+v", i, f)
		}
		seen[seq] = true
		wantStream := byte(1)
		if seq%2 == 1 {
			wantStream = 2
		}
		if f.stream != wantStream || !strings.HasPrefix(f.text, "engineapi ") {
			t.Fatalf("message %d: %+v", i, f)
		}
	}
	if got := read(engineapi.LogsOptions{Stderr: true}); len(got) != 3 || got[0].stream != 2 {
		t.Fatalf("stderr only: %+v", got)
	}
	since := read(engineapi.LogsOptions{Stdout: true, Stderr: true, Since: all[2].ts})
	if len(since) != 4 || !since[0].ts.Equal(all[2].ts) || since[0].text != all[2].text {
		t.Fatalf("since the third message: %+v", since)
	}
	if _, err := c.ContainerLogs(ctx, "vigiltest-no-such-container", engineapi.LogsOptions{Stdout: true}); !errors.Is(err, engineapi.ErrNotFound) {
		t.Fatalf("logs of a missing container: %v", err)
	}

	// Follow: the stream stays open while the container runs, and ends
	// with it.
	name, id = run(t, "-n", "2", "-hold", "2s")
	start := time.Now()
	rc, err := c.ContainerLogs(ctx, id, engineapi.LogsOptions{Stdout: true, Follow: true, Timestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got := readFrames(t, rc); len(got) != 2 {
		t.Fatalf("followed %d messages, want 2", len(got))
	}
	if time.Since(start) < time.Second {
		t.Fatalf("the follow of %s ended after %v, before the container stopped", name, time.Since(start))
	}
}

// Cancelling the context ends a followed log stream that waits for lines.
func TestLogsFollowEndsOnCancel(t *testing.T) {
	c := newClient(t)
	_, id := run(t, "-n", "1", "-hold", "1m")
	ctx, cancel := context.WithCancel(ctxFor(t, 60*time.Second))
	rc, err := c.ContainerLogs(ctx, id, engineapi.LogsOptions{Stdout: true, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, rc)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("read after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the followed stream did not end on cancel")
	}
}

// A socket that is not there: the error names the Engine and the request.
func TestMissingSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	c, err := engineapi.New("unix://"+sock, engineapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ContainerList(context.Background(), engineapi.ContainerListOptions{})
	if err == nil || !strings.Contains(err.Error(), "unix://"+sock) || !strings.Contains(err.Error(), "GET /_ping") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err %v", err)
	}
	if c.APIVersion() != "" {
		t.Fatal("a failed ping set a version")
	}
}
