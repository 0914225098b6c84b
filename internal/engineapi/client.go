// Package engineapi is vigil's Docker Engine API client: the few read-only
// calls the agent makes (container list and inspect, network list, the
// events stream, container logs), over a unix socket or TCP, decoding into
// the wire types of github.com/moby/moby/api.
//
// It replaces github.com/moby/moby/client, which linked OpenTelemetry,
// go-logr, distribution/reference and more into the binary for features
// vigil never uses: about 1.6 MB of the static binary, and so of its
// file-backed resident memory.
package engineapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
)

// API versions. The client asks for the Engine's own version, capped at
// MaxAPIVersion: the version of the wire types it decodes into
// (github.com/moby/moby/api v1.56). Engines older than MinAPIVersion
// (Docker 19.03) are refused rather than misread.
const (
	MaxAPIVersion = "1.56"
	MinAPIVersion = "1.40"
)

// ReadBufferSize is the HTTP transport's read buffer. The Engine writes
// every log message as its own HTTP chunk; with the default 4 KiB buffer a
// busy container costs a read system call per line, with 64 KiB one call
// takes what has arrived.
const ReadBufferSize = 64 << 10

const (
	// dialTimeout bounds connecting to the Engine, as the Docker CLI does.
	dialTimeout = 10 * time.Second
	// A long-lived client keeps few idle connections, and not for long:
	// the Engine holds a goroutine per connection (moby/moby#45539).
	maxIdleConns    = 6
	idleConnTimeout = 30 * time.Second
	// maxErrorBody bounds what is read of an error response: the Engine's
	// messages are one line, but a proxy in front of it may answer with a
	// page of HTML.
	maxErrorBody = 64 << 10
	// socketHost is the Host header of requests over a unix socket, which
	// has no host name: the one moby's client sends (a reserved .localhost
	// name that never resolves), so proxies in front of the socket see what
	// they always saw.
	socketHost = "api.moby.localhost"
	// maxUnixPath is the longest path a unix socket address holds.
	maxUnixPath = len(syscall.RawSockaddrUnix{}.Path)
)

// Host is a parsed Docker host address.
type Host struct {
	Scheme string // unix, tcp, http or https
	// Addr is the socket's path for unix, else host[:port]; without a
	// port, HTTP's default port of the scheme is used.
	Addr string
	// BasePath prefixes every request path, for an Engine behind a proxy
	// at a path ("tcp://proxy:8080/docker"); usually "".
	BasePath string
}

// ParseHost parses a Docker host address: unix:///path/to.sock,
// tcp://host:port (plain HTTP unless TLS is configured), http://host:port
// or https://host:port. Its errors start with `invalid docker host "s"`.
func ParseHost(s string) (Host, error) {
	bad := func(format string, args ...any) (Host, error) {
		return Host{}, fmt.Errorf("invalid docker host %q: %s", s, fmt.Sprintf(format, args...))
	}
	scheme, addr, ok := strings.Cut(s, "://")
	if !ok || addr == "" {
		return bad("not of the form unix:///path/to/docker.sock or tcp://host:port")
	}
	switch scheme {
	case "unix":
		if len(addr) > maxUnixPath {
			return bad("a unix socket path is at most %d bytes long", maxUnixPath)
		}
		return Host{Scheme: scheme, Addr: addr}, nil
	case "tcp", "http", "https":
		u, err := url.Parse(s)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // its text repeats s
			}
			return bad("%v", err)
		}
		if u.Host == "" {
			return bad("no host name")
		}
		return Host{Scheme: scheme, Addr: u.Host, BasePath: strings.TrimSuffix(u.Path, "/")}, nil
	}
	return bad("scheme %q is not one of unix, tcp, http, https", scheme)
}

// Options are a client's connection settings; the zero value connects to
// the host with a transport of the client's own.
type Options struct {
	// HTTPClient, when set, carries every request instead: for a remote
	// Engine with TLS, auth or a proxy. It must reach the host's address
	// itself (a plain net.Dialer does for tcp://, http:// and https://);
	// it cannot be used for a unix socket.
	HTTPClient *http.Client
	// TLS speaks HTTPS to a tcp:// host: set it when HTTPClient's transport
	// carries a TLS config. An https:// host always speaks HTTPS.
	TLS bool
	// UserAgent names the client to the Engine; "" is "vigil".
	UserAgent string
}

// Client talks to one Docker Engine. It is safe for concurrent use.
type Client struct {
	host    string // as configured, for errors
	h       Host
	scheme  string // of request URLs: http or https
	urlHost string
	hc      *http.Client
	ua      string

	// mu makes one caller negotiate while the others wait for its result.
	mu      sync.Mutex
	version string // negotiated; "" until a negotiation succeeds
}

// New returns a client of the Engine at host. Nothing is dialed until the
// first request, which negotiates the API version.
func New(host string, o Options) (*Client, error) {
	h, err := ParseHost(host)
	if err != nil {
		return nil, err
	}
	c := &Client{host: host, h: h, scheme: "http", urlHost: h.Addr, hc: o.HTTPClient, ua: o.UserAgent}
	if h.Scheme == "https" || o.TLS {
		c.scheme = "https"
	}
	if h.Scheme == "unix" {
		if o.HTTPClient != nil {
			return nil, fmt.Errorf("docker host %s: a unix socket is dialed by the client's own transport; TLS, auth and proxy settings do not apply", host)
		}
		c.urlHost = socketHost
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: newTransport(h), CheckRedirect: noRedirect}
	}
	if c.ua == "" {
		c.ua = "vigil"
	}
	return c, nil
}

// newTransport dials the Engine: its unix socket whatever the request's
// host, or its TCP address through the environment's proxy.
func newTransport(h Host) *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout}
	tr := &http.Transport{
		ReadBufferSize:  ReadBufferSize,
		MaxIdleConns:    maxIdleConns,
		IdleConnTimeout: idleConnTimeout,
	}
	if h.Scheme == "unix" {
		// Compression costs CPU on both ends of a local socket, for nothing.
		tr.DisableCompression = true
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", h.Addr)
		}
	} else {
		tr.Proxy = http.ProxyFromEnvironment
		tr.DialContext = d.DialContext
	}
	return tr
}

// noRedirect keeps a redirect as the answer instead of following it: the
// Engine redirects only malformed paths (an empty ID: "/containers//json"),
// and following one would turn it into a misleading 404. The redirect
// then fails as a StatusError.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Host is the Engine's address as configured.
func (c *Client) Host() string { return c.host }

// Close lets the idle connections go.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// ErrNotFound matches (with errors.Is) the error of a request for a
// container or network the Engine does not know (HTTP 404).
var ErrNotFound = errors.New("not found")

// StatusError is the Engine's answer to a request that failed: a status
// other than 2xx, with the Engine's message.
type StatusError struct {
	Host     string // the Engine, as configured
	Endpoint string // the method and unversioned path: "GET /containers/x/json"
	Status   int
	Message  string // the Engine's message, or the start of the body
}

func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "no message"
	}
	return fmt.Sprintf("docker engine %s: %s: %d %s: %s", e.Host, e.Endpoint, e.Status, http.StatusText(e.Status), msg)
}

// Is makes a 404 match ErrNotFound.
func (e *StatusError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// statusError reads the message of a failed response, then closes it.
func (c *Client) statusError(endpoint string, resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := strings.TrimSpace(string(body))
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &e) == nil && e.Message != "" {
			msg = strings.TrimSpace(e.Message)
		}
	}
	if resp.StatusCode/100 == 3 {
		msg = "redirected to " + resp.Header.Get("Location")
	}
	return &StatusError{Host: c.host, Endpoint: endpoint, Status: resp.StatusCode, Message: msg}
}

// requestError names the Engine and endpoint of a request that got no
// answer. A cancelled or expired context still matches with errors.Is.
func (c *Client) requestError(endpoint string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the request URL, which says nothing here
	}
	hint := ""
	switch {
	case errors.Is(err, os.ErrPermission):
		hint = " (vigil needs read and write access to the socket: run it as root or in the docker group)"
	case c.scheme == "http" && strings.Contains(err.Error(), "malformed HTTP response"):
		hint = " (does the Engine expect TLS? configure tls_config)"
	}
	return fmt.Errorf("docker engine %s: %s: %w%s", c.host, endpoint, err, hint)
}

// Negotiate asks the Engine for its API version (GET /_ping) and uses it,
// capped at MaxAPIVersion, for the requests that follow. Requests
// negotiate on their own the first time; call it again after the Engine
// restarted, as it may have been up- or downgraded.
func (c *Client) Negotiate(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.negotiate(ctx)
}

// APIVersion is the API version in use; "" before a negotiation succeeded.
func (c *Client) APIVersion() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// negotiate pings the Engine; callers hold c.mu.
func (c *Client) negotiate(ctx context.Context) (string, error) {
	const endpoint = "GET /_ping"
	u := url.URL{Scheme: c.scheme, Host: c.urlHost, Path: c.h.BasePath + "/_ping"}
	resp, err := c.do(ctx, u.String(), "")
	if err != nil {
		return "", c.requestError(endpoint, err)
	}
	// The Engine sets its version on every answer, even an error.
	server := resp.Header.Get("Api-Version")
	if resp.StatusCode != http.StatusOK && server == "" {
		return "", c.statusError(endpoint, resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	v := MaxAPIVersion
	if server != "" {
		if _, _, ok := parseVersion(server); !ok {
			return "", fmt.Errorf("docker engine %s: %s: the API version %q is not of the form major.minor", c.host, endpoint, server)
		}
		if versionLess(server, MinAPIVersion) {
			return "", fmt.Errorf("docker engine %s: API version %s is older than %s, the oldest vigil speaks (Docker 19.03)", c.host, server, MinAPIVersion)
		}
		if versionLess(server, v) {
			v = server
		}
	}
	// Without a version header (a proxy dropped it) the newest is used:
	// an older Engine then says which it speaks.
	c.version = v
	return v, nil
}

// parseVersion parses "major.minor".
func parseVersion(v string) (major, minor int, ok bool) {
	a, b, found := strings.Cut(v, ".")
	if !found {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(a)
	minor, err2 := strconv.Atoi(b)
	return major, minor, err1 == nil && err2 == nil && major >= 0 && minor >= 0
}

// versionLess compares two valid "major.minor" versions.
func versionLess(a, b string) bool {
	amaj, amin, _ := parseVersion(a)
	bmaj, bmin, _ := parseVersion(b)
	return amaj < bmaj || amaj == bmaj && amin < bmin
}

// get sends GET /v<version><path>, negotiating the version first if none
// is, and returns the response of a 2xx answer; any other answer is a
// StatusError. The caller closes the body.
func (c *Client) get(ctx context.Context, path string, query url.Values, accept string) (*http.Response, error) {
	endpoint := "GET " + path
	c.mu.Lock()
	v := c.version
	var err error
	if v == "" {
		v, err = c.negotiate(ctx)
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: c.scheme, Host: c.urlHost, Path: c.h.BasePath + "/v" + v + path, RawQuery: query.Encode()}
	resp, err := c.do(ctx, u.String(), accept)
	if err != nil {
		return nil, c.requestError(endpoint, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, c.statusError(endpoint, resp)
	}
	return resp, nil
}

func (c *Client) do(ctx context.Context, u, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", c.ua)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return c.hc.Do(req)
}

// getJSON decodes the answer of a GET into v.
func (c *Client) getJSON(ctx context.Context, path string, query url.Values, v any) error {
	resp, err := c.get(ctx, path, query, "")
	if err != nil {
		return err
	}
	defer func() {
		// Read to the end (a newline follows the JSON), so the connection
		// is reused: a new one costs a TLS handshake over TCP.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
	}()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("docker engine %s: GET %s: decoding the answer: %w", c.host, path, err)
	}
	return nil
}

// Filters are an API call's filters: name to the set of values, such as
// {"label": {"app=web": true}}. The Engine takes them JSON-encoded in this
// form.
type Filters map[string]map[string]bool

// Add adds values to the filter name, and returns f.
func (f Filters) Add(name string, values ...string) Filters {
	if f[name] == nil {
		f[name] = make(map[string]bool, len(values))
	}
	for _, v := range values {
		f[name][v] = true
	}
	return f
}

// Clone returns a deep copy of f.
func (f Filters) Clone() Filters {
	out := make(Filters, len(f))
	for name, values := range f {
		out.Add(name)
		for v := range values {
			out[name][v] = true
		}
	}
	return out
}

func (f Filters) encode(q url.Values) {
	if len(f) == 0 {
		return
	}
	b, err := json.Marshal(f)
	if err != nil {
		panic(err) // maps of strings always encode
	}
	q.Set("filters", string(b))
}

// ContainerListOptions select the containers ContainerList returns.
type ContainerListOptions struct {
	All     bool // stopped containers too, not only running ones
	Filters Filters
}

// ContainerList lists containers (GET /containers/json).
func (c *Client) ContainerList(ctx context.Context, o ContainerListOptions) ([]container.Summary, error) {
	q := url.Values{}
	if o.All {
		q.Set("all", "1")
	}
	o.Filters.encode(q)
	var out []container.Summary
	err := c.getJSON(ctx, "/containers/json", q, &out)
	return out, err
}

// ContainerInspect returns a container's details (GET
// /containers/{id}/json). An unknown id's error matches ErrNotFound.
func (c *Client) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	var out container.InspectResponse
	p, err := objectPath("/containers/", id, "/json")
	if err != nil {
		return out, err
	}
	err = c.getJSON(ctx, p, nil, &out)
	return out, err
}

// NetworkList lists the networks (GET /networks).
func (c *Client) NetworkList(ctx context.Context) ([]network.Summary, error) {
	var out []network.Summary
	err := c.getJSON(ctx, "/networks", nil, &out)
	return out, err
}

// objectPath puts a container's ID or name into a path. An empty one
// would address another endpoint, and a slash a path the Engine redirects.
func objectPath(prefix, id, suffix string) (string, error) {
	id = strings.TrimSpace(id)
	if id == "" || strings.ContainsAny(id, "/?#") {
		return "", fmt.Errorf("invalid container name or ID %q", id)
	}
	return prefix + id + suffix, nil
}

// LogsOptions select what ContainerLogs streams.
type LogsOptions struct {
	Stdout, Stderr bool
	// Follow keeps the stream open for new messages until the container
	// stops.
	Follow bool
	// Timestamps starts every message with its RFC3339Nano time and a space.
	Timestamps bool
	// Since skips messages written before it (the Engine includes those
	// written at it); zero: from the first.
	Since time.Time
}

// ContainerLogs opens a container's log stream (GET /containers/{id}/logs)
// and returns its raw body: stdcopy frames (an 8-byte header per message),
// or the bare text for a container with a TTY. Cancelling ctx or closing
// the body ends the stream.
func (c *Client) ContainerLogs(ctx context.Context, id string, o LogsOptions) (io.ReadCloser, error) {
	p, err := objectPath("/containers/", id, "/logs")
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	for _, f := range []struct {
		name string
		on   bool
	}{{"stdout", o.Stdout}, {"stderr", o.Stderr}, {"follow", o.Follow}, {"timestamps", o.Timestamps}} {
		if f.on {
			q.Set(f.name, "1")
		}
	}
	if !o.Since.IsZero() {
		q.Set("since", fmt.Sprintf("%d.%09d", o.Since.Unix(), o.Since.Nanosecond()))
	}
	resp, err := c.get(ctx, p, q, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// EventStream is the Engine's events stream, decoded one message at a time.
type EventStream struct {
	ctx  context.Context
	host string
	body io.ReadCloser
	dec  *json.Decoder
}

// Events subscribes to the Engine's events (GET /events). It returns once
// the Engine answered, so every event after that moment is in the stream.
// The stream ends when ctx ends, on Close, or when the Engine closes it.
func (c *Client) Events(ctx context.Context, filters Filters) (*EventStream, error) {
	q := url.Values{}
	filters.encode(q)
	// One JSON object per line (older Engines send concatenated objects,
	// which decode the same). Newer Engines also offer JSON text sequences
	// (RFC 7464), which a plain JSON decoder cannot read: not asked for.
	resp, err := c.get(ctx, "/events", q, "application/x-ndjson, application/json;q=0.9")
	if err != nil {
		return nil, err
	}
	return &EventStream{ctx: ctx, host: c.host, body: resp.Body, dec: json.NewDecoder(resp.Body)}, nil
}

// Next blocks until the next event. Its error is ctx's once ctx ended;
// one that matches io.EOF when the Engine ended the stream (it stopped or
// restarted); any other error when the connection broke or the stream
// could not be decoded. After an error the stream is done.
func (s *EventStream) Next() (events.Message, error) {
	var m events.Message
	err := s.dec.Decode(&m)
	switch {
	case err == nil:
		return m, nil
	case s.ctx.Err() != nil:
		return m, s.ctx.Err()
	case err == io.EOF:
		return m, fmt.Errorf("docker engine %s: GET /events: the Engine ended the stream: %w", s.host, io.EOF)
	}
	return m, fmt.Errorf("docker engine %s: GET /events: %w", s.host, err)
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }
