package loki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// Promtail's client defaults (clients/pkg/promtail/client/config.go).
const (
	defaultBatchWait  = time.Second
	defaultBatchSize  = 1 << 20
	defaultTimeout    = 10 * time.Second
	defaultMinBackoff = 500 * time.Millisecond
	defaultMaxBackoff = 5 * time.Minute
	defaultMaxRetries = 10
)

// Config is Promtail's client config (one entry of `clients:`), so a
// Promtail config translates by passing each client node through unchanged.
// Promtail keys that vigil does not implement are deliberately absent: the
// strict decoder then rejects them with their position instead of
// silently ignoring, say, an oauth2 block.
type Config struct {
	// Name only labels this client in vigil's logs; Promtail used it for
	// the WAL directory and the stream-lag metric.
	Name string `yaml:"name"`
	URL  URL    `yaml:"url"`
	// TenantID is the tenant of entries that carry none of their own.
	TenantID  string        `yaml:"tenant_id"`
	BatchWait time.Duration `yaml:"batchwait"`
	BatchSize int           `yaml:"batchsize"`
	Timeout   time.Duration `yaml:"timeout"`

	BackoffConfig BackoffConfig `yaml:"backoff_config"`

	BasicAuth       *BasicAuth `yaml:"basic_auth"`
	BearerToken     string     `yaml:"bearer_token"`
	BearerTokenFile string     `yaml:"bearer_token_file"`
	TLSConfig       TLSConfig  `yaml:"tls_config"`
	ProxyURL        URL        `yaml:"proxy_url"`

	Headers        map[string]string `yaml:"headers"`
	ExternalLabels map[string]string `yaml:"external_labels"`

	// DropRateLimitedBatches drops a batch on its first 429 instead of
	// retrying it, so a throttled tenant sheds load rather than queueing.
	DropRateLimitedBatches bool `yaml:"drop_rate_limited_batches"`
}

// BackoffConfig is Promtail's (dskit's) retry schedule.
type BackoffConfig struct {
	MinPeriod time.Duration `yaml:"min_period"`
	MaxPeriod time.Duration `yaml:"max_period"`
	// MaxRetries is how many times a failed push is retried before its
	// entries are dropped. 0 retries forever: nothing is ever dropped for
	// being undeliverable, and once the pipeline's byte budget is full the
	// sources stop reading until Loki accepts again.
	MaxRetries int `yaml:"max_retries"`
}

// BasicAuth is Prometheus' basic_auth block, without the *_ref and
// username_file variants.
type BasicAuth struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// TLSConfig is the file-based subset of Prometheus' tls_config.
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
		return d.Errorf(n, "invalid URL %q: %v", n.Value, unwrapURLError(err))
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

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// DecodeNode implements pipeline.NodeDecoder: Promtail's defaults first,
// then the strict decode, then validation errors at the offending node.
func (c *Config) DecodeNode(d pipeline.Decoder, n *yaml.Node) error {
	*c = Config{
		BatchWait: defaultBatchWait,
		BatchSize: defaultBatchSize,
		Timeout:   defaultTimeout,
		BackoffConfig: BackoffConfig{
			MinPeriod:  defaultMinBackoff,
			MaxPeriod:  defaultMaxBackoff,
			MaxRetries: defaultMaxRetries,
		},
	}
	type plain Config // drops DecodeNode so the decoder does not recurse
	if err := d.Decode(n, (*plain)(c)); err != nil {
		return err
	}
	at := func(path ...string) *yaml.Node { return pipeline.NodeAt(n, path...) }
	switch {
	case c.URL.URL == nil:
		return d.Errorf(n, "missing required key \"url\"")
	case c.BatchSize <= 0:
		return d.Errorf(at("batchsize"), "batchsize must be positive, got %d", c.BatchSize)
	case c.BatchWait < 0:
		return d.Errorf(at("batchwait"), "batchwait must not be negative")
	case c.Timeout < 0:
		return d.Errorf(at("timeout"), "timeout must not be negative")
	case c.BackoffConfig.MinPeriod <= 0:
		return d.Errorf(at("backoff_config", "min_period"), "min_period must be positive")
	case c.BackoffConfig.MaxPeriod < c.BackoffConfig.MinPeriod:
		return d.Errorf(at("backoff_config", "max_period"), "max_period (%s) is shorter than min_period (%s)",
			c.BackoffConfig.MaxPeriod, c.BackoffConfig.MinPeriod)
	case c.BackoffConfig.MaxRetries < 0:
		return d.Errorf(at("backoff_config", "max_retries"), "max_retries must not be negative (0 retries forever)")
	}
	if c.BasicAuth != nil && (c.BearerToken != "" || c.BearerTokenFile != "") {
		return d.Errorf(at("basic_auth"), "at most one of basic_auth, bearer_token and bearer_token_file may be set")
	}
	if c.BearerToken != "" && c.BearerTokenFile != "" {
		return d.Errorf(at("bearer_token_file"), "at most one of bearer_token and bearer_token_file may be set")
	}
	// Read the secrets now so a missing file is a config error with a
	// position, not a stream of failed pushes later.
	if c.BasicAuth != nil {
		if _, err := pipeline.ReadSecret(c.BasicAuth.Password, c.BasicAuth.PasswordFile); err != nil {
			return d.Errorf(at("basic_auth"), "basic_auth password: %v", err)
		}
	}
	if _, err := pipeline.ReadSecret(c.BearerToken, c.BearerTokenFile); err != nil {
		return d.Errorf(at("bearer_token_file"), "bearer token: %v", err)
	}
	if _, err := c.TLSConfig.build(); err != nil {
		return d.Errorf(at("tls_config"), "%v", err)
	}
	for k, v := range c.Headers {
		if !validHeaderName(k) {
			return d.Errorf(keyNode(at("headers"), k), "invalid HTTP header name %q", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return d.Errorf(at("headers", k), "invalid value for HTTP header %q", k)
		}
	}
	for k := range c.ExternalLabels {
		if !validLabelName(k) {
			return d.Errorf(keyNode(at("external_labels"), k), "invalid label name %q", k)
		}
	}
	return nil
}

// keyNode returns the key node named key in mapping n, or n.
func keyNode(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i]
			}
		}
	}
	return n
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// validLabelName is Prometheus' legacy label name rule, which Loki's push
// parser requires.
func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// build returns the client TLS config, or nil when nothing is configured.
func (t TLSConfig) build() (*tls.Config, error) {
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

// newHTTPClient builds the transport. HTTP/2 stays off as in Promtail:
// pushes are large and one connection per tenant sender is what we want.
func (c *Config) newHTTPClient() (*http.Client, error) {
	tlsCfg, err := c.TLSConfig.build()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   100, // one sender per tenant, each keeps its connection
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
	}
	if c.ProxyURL.URL != nil {
		tr.Proxy = http.ProxyURL(c.ProxyURL.URL)
	}
	return &http.Client{Transport: tr}, nil
}
