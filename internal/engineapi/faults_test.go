package engineapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vigilhq/vigil/internal/engineapi"
)

// These tests use a fake Engine for what the real one does not do on
// demand: internal errors, oversized or truncated answers, redirects and
// versions it does not speak.

func TestParseHost(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want engineapi.Host
	}{
		{"unix:///var/run/docker.sock", engineapi.Host{Scheme: "unix", Addr: "/var/run/docker.sock"}},
		{"unix://docker.sock", engineapi.Host{Scheme: "unix", Addr: "docker.sock"}},
		{"tcp://10.0.0.1:2375", engineapi.Host{Scheme: "tcp", Addr: "10.0.0.1:2375"}},
		{"tcp://[::1]:2376", engineapi.Host{Scheme: "tcp", Addr: "[::1]:2376"}},
		{"tcp://docker", engineapi.Host{Scheme: "tcp", Addr: "docker"}},
		{"tcp://proxy:8080/docker/", engineapi.Host{Scheme: "tcp", Addr: "proxy:8080", BasePath: "/docker"}},
		{"http://engine:2375", engineapi.Host{Scheme: "http", Addr: "engine:2375"}},
		{"https://engine.example:2376", engineapi.Host{Scheme: "https", Addr: "engine.example:2376"}},
	} {
		got, err := engineapi.ParseHost(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseHost(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, why string }{
		{"", "not of the form"},
		{"/var/run/docker.sock", "not of the form"},
		{"unix://", "not of the form"},
		{"tcp://", "not of the form"},
		{"ssh://user@docker", `scheme "ssh" is not one of unix, tcp, http, https`},
		{"npipe:////./pipe/docker_engine", `scheme "npipe"`},
		{"fd://", "not of the form"},
		{"tcp:///path", "no host name"},
		{"tcp://ho st:2375", "invalid character"},
		{"unix:///" + strings.Repeat("d", 200) + ".sock", "at most 108 bytes"},
	} {
		_, err := engineapi.ParseHost(tc.in)
		if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("invalid docker host %q: ", tc.in)) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("ParseHost(%q): %v; want an error saying %q", tc.in, err, tc.why)
		}
	}
	if _, err := engineapi.New("unix:///var/run/docker.sock", engineapi.Options{HTTPClient: http.DefaultClient}); err == nil {
		t.Error("a unix socket with a caller's HTTP client was accepted")
	}
}

// fakeEngine answers /_ping with version (none when "") and the rest with
// handle.
type fakeEngine struct {
	pings  atomic.Int64
	srv    *httptest.Server
	client *engineapi.Client
}

func newFakeEngine(t *testing.T, version string, handle http.HandlerFunc) *fakeEngine {
	t.Helper()
	f := &fakeEngine{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_ping" {
			f.pings.Add(1)
			if version != "" {
				w.Header().Set("Api-Version", version)
			}
			io.WriteString(w, "OK")
			return
		}
		handle(w, r)
	}))
	t.Cleanup(f.srv.Close)
	c, err := engineapi.New("tcp://"+f.srv.Listener.Addr().String(), engineapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	f.client = c
	return f
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"message\":%q}\n", msg)
}

// An Engine's error: its JSON message, its status, the Engine and the
// endpoint, and ErrNotFound for a 404 only.
func TestEngineErrors(t *testing.T) {
	f := newFakeEngine(t, "1.41", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.41/containers/json":
			jsonError(w, 500, "  boom: the daemon is unwell\n")
		case "/v1.41/networks":
			// A proxy's page: plain text, and far too long to keep.
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, strings.Repeat("not here ", 1<<17))
		case "/v1.41/containers/moved/json":
			http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
		case "/elsewhere":
			t.Error("a redirect was followed")
		case "/v1.41/containers/empty/json":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, "{}")
		case "/v1.41/containers/garbled/json":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"Id": "garbled", "State": {`)
		}
	})
	c := f.client
	ctx := context.Background()
	_, err := c.ContainerList(ctx, engineapi.ContainerListOptions{})
	var se *engineapi.StatusError
	if !errors.As(err, &se) || se.Status != 500 || se.Message != "boom: the daemon is unwell" || errors.Is(err, engineapi.ErrNotFound) {
		t.Fatalf("500: %#v", err)
	}
	want := fmt.Sprintf("docker engine %s: GET /containers/json: 500 Internal Server Error: boom: the daemon is unwell", c.Host())
	if err.Error() != want {
		t.Fatalf("500: %q\nwant %q", err, want)
	}

	_, err = c.NetworkList(ctx)
	if !errors.Is(err, engineapi.ErrNotFound) || !errors.As(err, &se) || len(se.Message) > 64<<10 || !strings.HasPrefix(se.Message, "not here not here") {
		t.Fatalf("long plain-text 404: %.200v", err)
	}

	_, err = c.ContainerInspect(ctx, "moved")
	if !errors.As(err, &se) || se.Status != http.StatusMovedPermanently || !strings.Contains(se.Message, "/elsewhere") {
		t.Fatalf("redirect: %v", err)
	}

	_, err = c.ContainerInspect(ctx, "empty")
	if !errors.As(err, &se) || se.Status != http.StatusConflict || !strings.Contains(err.Error(), "409 Conflict: {}") {
		t.Fatalf("JSON error without a message: %v", err)
	}

	_, err = c.ContainerInspect(ctx, "garbled")
	if err == nil || !strings.Contains(err.Error(), "GET /containers/garbled/json: decoding the answer") || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated answer: %v", err)
	}
	if n := f.pings.Load(); n != 1 {
		t.Fatalf("%d pings; the version is negotiated once", n)
	}
}

// The events stream: an Engine that ends it cleanly is io.EOF, one that
// cuts it inside an event is not.
func TestEventsStreamEnds(t *testing.T) {
	event := `{"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"web"}},"scope":"local","time":1,"timeNano":1000000001}` + "\n"
	for _, tc := range []struct {
		name, body string
		eof        bool
	}{
		{"closed", event, true},
		{"truncated", event + `{"Type":"container","Act`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeEngine(t, "1.41", func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1.41/events" || r.URL.Query().Get("filters") != `{"type":{"container":true}}` {
					t.Errorf("request %s", r.URL)
				}
				w.Header().Set("Content-Type", "application/json")
				w.(http.Flusher).Flush()
				io.WriteString(w, tc.body)
			})
			stream, err := f.client.Events(context.Background(), engineapi.Filters{}.Add("type", "container"))
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			m, err := stream.Next()
			if err != nil || m.Actor.ID != "abc" || m.Action != "start" || m.TimeNano != 1000000001 {
				t.Fatalf("first event %+v, %v", m, err)
			}
			_, err = stream.Next()
			if err == nil || errors.Is(err, io.EOF) != tc.eof || !strings.Contains(err.Error(), "GET /events") {
				t.Fatalf("end of stream: %v (io.EOF %v, want %v)", err, errors.Is(err, io.EOF), tc.eof)
			}
		})
	}
}

// The version in use is the Engine's, capped at the client's newest; an
// Engine too old is refused, and so is one whose answer has no sense.
func TestVersionNegotiation(t *testing.T) {
	for _, tc := range []struct {
		engine, want, err string
	}{
		{"1.41", "1.41", ""},
		{"1.40", "1.40", ""},
		{"1.99", engineapi.MaxAPIVersion, ""},
		{"2.0", engineapi.MaxAPIVersion, ""},
		{"", engineapi.MaxAPIVersion, ""}, // a proxy dropped the header
		{"1.39", "", "API version 1.39 is older than 1.40"},
		{"v1.41", "", `the API version "v1.41" is not of the form major.minor`},
	} {
		var path string
		f := newFakeEngine(t, tc.engine, func(w http.ResponseWriter, r *http.Request) {
			path = r.URL.Path
			io.WriteString(w, "[]")
		})
		_, err := f.client.NetworkList(context.Background())
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || f.client.APIVersion() != "" {
				t.Errorf("Engine %q: %v, version %q; want an error saying %q", tc.engine, err, f.client.APIVersion(), tc.err)
			}
			continue
		}
		if err != nil || f.client.APIVersion() != tc.want || path != "/v"+tc.want+"/networks" {
			t.Errorf("Engine %q: %v, version %q, path %q; want %s", tc.engine, err, f.client.APIVersion(), path, tc.want)
		}
	}
}

// A ping that fails with the Engine's version still negotiates it (the
// Engine sets the header on every answer); one without is an error.
func TestPingErrors(t *testing.T) {
	var withVersion atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_ping" {
			if withVersion.Load() {
				w.Header().Set("Api-Version", "1.43")
			}
			jsonError(w, 500, "unhealthy")
			return
		}
		io.WriteString(w, "[]")
	}))
	defer srv.Close()
	c, err := engineapi.New("tcp://"+srv.Listener.Addr().String(), engineapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.NetworkList(context.Background())
	var se *engineapi.StatusError
	if !errors.As(err, &se) || se.Endpoint != "GET /_ping" || se.Message != "unhealthy" {
		t.Fatalf("failed ping: %v", err)
	}
	withVersion.Store(true)
	if _, err := c.NetworkList(context.Background()); err != nil || c.APIVersion() != "1.43" {
		t.Fatalf("failed ping with a version: %v, %q", err, c.APIVersion())
	}
}

// Concurrent first requests wait for one negotiation.
func TestNegotiatesOnce(t *testing.T) {
	f := newFakeEngine(t, "1.41", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "[]") })
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := f.client.NetworkList(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := f.pings.Load(); n != 1 {
		t.Fatalf("%d pings", n)
	}
}
