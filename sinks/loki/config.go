package loki

import (
	"net/http"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/httpclient"
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
	Name string         `yaml:"name"`
	URL  httpclient.URL `yaml:"url"`
	// TenantID is the tenant of entries that carry none of their own.
	TenantID  string        `yaml:"tenant_id"`
	BatchWait time.Duration `yaml:"batchwait"`
	BatchSize int           `yaml:"batchsize"`
	Timeout   time.Duration `yaml:"timeout"`

	BackoffConfig BackoffConfig `yaml:"backoff_config"`

	// HTTP is Prometheus' client block: basic_auth, authorization,
	// bearer_token(_file), tls_config, proxy_url.
	HTTP httpclient.Config `yaml:",inline"`

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
	if err := c.HTTP.Validate(d, n); err != nil {
		return err
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

// newHTTPClient builds the transport. HTTP/2 stays off as in Promtail:
// pushes are large and one connection per tenant sender is what we want.
func (c *Config) newHTTPClient() (*http.Client, error) {
	tr, err := c.HTTP.Transport(false)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: tr}, nil
}
