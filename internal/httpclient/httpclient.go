// Package httpclient is the HTTP client part of Prometheus' and Promtail's
// configs (basic_auth, authorization, bearer tokens, tls_config,
// proxy_url), shared by every component that talks HTTP: the Loki sink
// and the Docker source.
package httpclient

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// Config is the client block, inlined into a component's config.
type Config struct {
	BasicAuth       *BasicAuth     `yaml:"basic_auth"`
	Authorization   *Authorization `yaml:"authorization"`
	BearerToken     string         `yaml:"bearer_token"`
	BearerTokenFile string         `yaml:"bearer_token_file"`
	TLSConfig       TLSConfig      `yaml:"tls_config"`
	ProxyURL        URL            `yaml:"proxy_url"`
	// FollowRedirects and EnableHTTP2 are Prometheus' keys; nil keeps the
	// component's default.
	FollowRedirects *bool `yaml:"follow_redirects"`
	EnableHTTP2     *bool `yaml:"enable_http2"`
}

// BasicAuth is Prometheus' basic_auth block, without the *_ref variants.
type BasicAuth struct {
	Username     string `yaml:"username"`
	UsernameFile string `yaml:"username_file"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// Authorization is Prometheus' authorization block: a header of the given
// type (Bearer by default) with credentials.
type Authorization struct {
	Type            string `yaml:"type"`
	Credentials     string `yaml:"credentials"`
	CredentialsFile string `yaml:"credentials_file"`
}

// TLSConfig is the file-based part of Prometheus' tls_config.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// URL is an http(s) URL that reports a bad value at its position.
type URL struct {
	*url.URL
}

// DecodeNode implements pipeline.NodeDecoder.
func (u *URL) DecodeNode(d pipeline.Decoder, n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return d.Errorf(n, "expected a URL")
	}
	p, err := url.Parse(n.Value)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return d.Errorf(n, "invalid URL %q: %v", n.Value, err)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return d.Errorf(n, "invalid URL %q: scheme must be http or https", n.Value)
	}
	if p.Host == "" {
		return d.Errorf(n, "invalid URL %q: no host", n.Value)
	}
	u.URL = p
	return nil
}

// Validate checks the block, with errors at their keys in n (the node the
// block was inlined into), and reads the secrets once so a missing file is
// a config error rather than a stream of failed requests later.
func (c *Config) Validate(d pipeline.Decoder, n *yaml.Node) error {
	at := func(path ...string) *yaml.Node { return pipeline.NodeAt(n, path...) }
	var set []string
	for _, k := range []struct {
		key string
		on  bool
	}{{"basic_auth", c.BasicAuth != nil}, {"authorization", c.Authorization != nil}, {"bearer_token", c.BearerToken != ""}, {"bearer_token_file", c.BearerTokenFile != ""}} {
		if k.on {
			set = append(set, k.key)
		}
	}
	if len(set) > 1 {
		// Point at the one that comes later in the file.
		sort.SliceStable(set, func(i, j int) bool { return line(at(set[i])) < line(at(set[j])) })
		return d.Errorf(at(set[1]), "at most one of basic_auth, authorization, bearer_token and bearer_token_file may be set (found %s and %s)", set[0], set[1])
	}
	if b := c.BasicAuth; b != nil {
		if _, err := pipeline.ReadSecret(b.Username, b.UsernameFile); err != nil {
			return d.Errorf(at("basic_auth"), "basic_auth username: %v", err)
		}
		if _, err := pipeline.ReadSecret(b.Password, b.PasswordFile); err != nil {
			return d.Errorf(at("basic_auth"), "basic_auth password: %v", err)
		}
	}
	if a := c.Authorization; a != nil {
		if a.Type == "" {
			a.Type = "Bearer"
		}
		if a.Type == "Basic" || a.Type == "basic" {
			return d.Errorf(at("authorization", "type"), "authorization type Basic is not allowed: use basic_auth")
		}
		if _, err := pipeline.ReadSecret(a.Credentials, a.CredentialsFile); err != nil {
			return d.Errorf(at("authorization"), "authorization credentials: %v", err)
		}
	}
	if _, err := pipeline.ReadSecret(c.BearerToken, c.BearerTokenFile); err != nil {
		return d.Errorf(at("bearer_token_file"), "bearer token: %v", err)
	}
	if _, err := c.TLSConfig.Build(); err != nil {
		return d.Errorf(at("tls_config"), "%v", err)
	}
	return nil
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// Build returns the client TLS config, or nil when nothing is configured.
func (t TLSConfig) Build() (*tls.Config, error) {
	if t == (TLSConfig{}) {
		return nil, nil
	}
	cfg := &tls.Config{
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // the user asked for it
		MinVersion:         tls.VersionTLS12,
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate found", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("cert_file and key_file must be set together")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		// Reload on each handshake (rare with keep-alive) so a rotated
		// certificate is picked up without a restart, as Prometheus does.
		var mu sync.Mutex
		last := &cert
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			mu.Lock()
			defer mu.Unlock()
			if c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err == nil {
				last = &c
			}
			return last, nil
		}
	}
	return cfg, nil
}

// Transport builds the client transport: TLS, proxy, and HTTP/2 only when
// enabled (http2 is the default when EnableHTTP2 is nil and http2 is true).
func (c *Config) Transport(http2 bool) (*http.Transport, error) {
	tlsCfg, err := c.TLSConfig.Build()
	if err != nil {
		return nil, err
	}
	if c.EnableHTTP2 != nil {
		http2 = *c.EnableHTTP2
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   100,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     http2,
	}
	if c.ProxyURL.URL != nil {
		tr.Proxy = http.ProxyURL(c.ProxyURL.URL)
	}
	return tr, nil
}

// Auth produces the Authorization header value for each request. Secrets
// in files are read again on each call so rotated credentials are used
// without a restart; a file that cannot be read keeps its last value.
type Auth struct {
	cfg  *Config
	warn func(file string, err error)

	mu   sync.Mutex
	last map[string]string
}

// NewAuth returns the header source for c; warn is told when a secret file
// cannot be read (the caller rate-limits it).
func NewAuth(c *Config, warn func(file string, err error)) *Auth {
	return &Auth{cfg: c, warn: warn, last: map[string]string{}}
}

func (a *Auth) secret(value, file string) string {
	if file == "" {
		return value
	}
	v, err := pipeline.ReadSecret("", file)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		if a.warn != nil {
			a.warn(file, err)
		}
		return a.last[file]
	}
	a.last[file] = v
	return v
}

// Header returns the Authorization header value, or "" for none.
func (a *Auth) Header() string {
	c := a.cfg
	switch {
	case c.BasicAuth != nil:
		cred := a.secret(c.BasicAuth.Username, c.BasicAuth.UsernameFile) + ":" + a.secret(c.BasicAuth.Password, c.BasicAuth.PasswordFile)
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(cred))
	case c.Authorization != nil:
		typ := c.Authorization.Type
		if typ == "" {
			typ = "Bearer"
		}
		return typ + " " + a.secret(c.Authorization.Credentials, c.Authorization.CredentialsFile)
	case c.BearerToken != "" || c.BearerTokenFile != "":
		return "Bearer " + a.secret(c.BearerToken, c.BearerTokenFile)
	}
	return ""
}

// RoundTripper sets the Authorization header on requests that carry none,
// for clients (such as the Docker client) that build their own requests.
func (a *Auth) RoundTripper(next http.RoundTripper) http.RoundTripper {
	return roundTripper{a: a, next: next}
}

type roundTripper struct {
	a    *Auth
	next http.RoundTripper
}

func (r roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") == "" {
		if h := r.a.Header(); h != "" {
			req = req.Clone(req.Context())
			req.Header.Set("Authorization", h)
		}
	}
	return r.next.RoundTrip(req)
}

// WarnFunc adapts a rate-limited logger to NewAuth's warn.
func WarnFunc(l *pipeline.RateLimitedLogger) func(string, error) {
	return func(file string, err error) {
		l.Warn("secret:"+file, "cannot read secret file; using its last value", "file", file, "err", err)
	}
}
