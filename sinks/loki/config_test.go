package loki

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

func decodeConfig(t *testing.T, text string) (Config, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	var c Config
	err := pipeline.Decoder{File: "test.yaml"}.Decode(doc.Content[0], &c)
	return c, err
}

func TestConfigDefaults(t *testing.T) {
	c, err := decodeConfig(t, "url: http://loki:3100/loki/api/v1/push\nbackoff_config: {max_retries: 3}\n")
	if err != nil {
		t.Fatal(err)
	}
	// Promtail's defaults; a partial backoff_config keeps the others.
	want := BackoffConfig{MinPeriod: 500 * time.Millisecond, MaxPeriod: 5 * time.Minute, MaxRetries: 3}
	if c.BatchWait != time.Second || c.BatchSize != 1<<20 || c.Timeout != 10*time.Second || c.BackoffConfig != want {
		t.Errorf("defaults: %+v", c)
	}
	if c.URL.Host != "loki:3100" || c.URL.Path != "/loki/api/v1/push" {
		t.Errorf("url = %v", c.URL)
	}
}

// TestConfigPromtailClient decodes a complete Promtail client block.
func TestConfigPromtailClient(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("p"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := decodeConfig(t, `
name: main
url: https://logs.example.com/loki/api/v1/push
tenant_id: rentguy
batchwait: 2s
batchsize: 524288
timeout: 1m
backoff_config:
  min_period: 1s
  max_period: 1m
  max_retries: 0
basic_auth:
  username: u
  password_file: `+pw+`
tls_config:
  server_name: logs.example.com
  insecure_skip_verify: false
proxy_url: http://proxy:3128
headers:
  CF-Access-Client-Id: abc
external_labels:
  host: vps1
drop_rate_limited_batches: true
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.TenantID != "rentguy" || c.BatchWait != 2*time.Second || c.BatchSize != 524288 || c.Timeout != time.Minute ||
		c.BackoffConfig.MaxRetries != 0 || c.HTTP.BasicAuth.PasswordFile != pw || c.HTTP.ProxyURL.Host != "proxy:3128" ||
		c.Headers["CF-Access-Client-Id"] != "abc" || c.ExternalLabels["host"] != "vps1" || !c.DropRateLimitedBatches ||
		c.HTTP.TLSConfig.ServerName != "logs.example.com" {
		t.Errorf("decoded %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, yaml, want string
	}{
		{"bad url", "url: \"http://[::1\"\n", `test.yaml:1:6: invalid URL "http://[::1"`},
		{"url scheme", "tenant_id: a\nurl: ftp://loki\n", "test.yaml:2:6: invalid URL \"ftp://loki\": scheme must be http or https"},
		{"url without host", "url: http:///push\n", "test.yaml:1:6: invalid URL"},
		{"missing url", "tenant_id: a\n", `test.yaml:1:1: missing required key "url"`},
		{"oauth2 unsupported", "url: http://l\noauth2:\n  client_id: x\n", `test.yaml:2:1: unknown key "oauth2"`},
		{"authorization of type Basic", "url: http://l\nauthorization: {type: Basic, credentials: x}\n", `test.yaml:2:23: authorization type Basic is not allowed`},
		{"unknown nested key", "url: http://l\nbackoff_config:\n  min_backoff: 1s\n", `test.yaml:3:3: unknown key "min_backoff"`},
		{"bad proxy url", "url: http://l\nproxy_url: \"::\"\n", "test.yaml:2:12: invalid URL"},
		{"bad duration", "url: http://l\nbatchwait: soon\n", "test.yaml:2:12: invalid duration"},
		{"zero batchsize", "url: http://l\nbatchsize: 0\n", "test.yaml:2:12: batchsize must be positive"},
		{"max below min", "url: http://l\nbackoff_config:\n  min_period: 1s\n  max_period: 100ms\n", "test.yaml:4:15: max_period"},
		{"negative retries", "url: http://l\nbackoff_config: {max_retries: -1}\n", "test.yaml:2:31: max_retries must not be negative"},
		{"two auth methods", "url: http://l\nbearer_token: t\nbasic_auth: {username: u}\n", "test.yaml:3:13: at most one of"},
		{"missing password file", "url: http://l\nbasic_auth: {username: u, password_file: " + filepath.Join(dir, "nope") + "}\n",
			"test.yaml:2:13: basic_auth password"},
		{"password and file", "url: http://l\nbasic_auth: {username: u, password: p, password_file: /x}\n", "both a value and a file"},
		{"missing token file", "url: http://l\nbearer_token_file: /does/not/exist\n", "test.yaml:2:20: bearer token"},
		{"missing ca file", "url: http://l\ntls_config:\n  ca_file: /does/not/exist\n", "test.yaml:3:3: ca_file"},
		{"cert without key", "url: http://l\ntls_config: {cert_file: /x}\n", "cert_file and key_file must be set together"},
		{"bad header name", "url: http://l\nheaders:\n  \"Bad Header\": x\n", `test.yaml:3:3: invalid HTTP header name "Bad Header"`},
		{"bad external label", "url: http://l\nexternal_labels:\n  0day: x\n", `test.yaml:3:3: invalid label name "0day"`},
		{"stream_lag_labels unsupported", "url: http://l\nstream_lag_labels: [filename]\n", `unknown key "stream_lag_labels"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeConfig(t, tt.yaml)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	found := false
	for _, name := range pipeline.SinkTypes() {
		found = found || name == "loki"
	}
	if !found {
		t.Fatal("sink type loki not registered")
	}
}
