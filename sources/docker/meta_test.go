package docker

import (
	"context"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The __meta_docker_* labels of Prometheus's Docker discovery: network,
// ports and __address__, and the log stream Promtail adds, which relabel
// rules can keep or drop per stream. default_labels: [] adds neither
// container nor stream, as Promtail.
func TestDiscoveryLabelsAndPerStreamRelabel(t *testing.T) {
	img := loggenImage(t)
	netName := uniqueName(t)
	docker(t, "network", "create", "--label", "com.example.net=blue", netName)
	t.Cleanup(func() { _ = exec.Command("docker", "network", "rm", netName).Run() })
	out := &recorder{}
	startSource(t, `
refresh_interval: 1h
default_labels: []
port: 9999
relabel_configs:
  - source_labels: [__meta_docker_container_name]
    regex: '/(.*)'
    target_label: container
  - source_labels: [__meta_docker_container_log_stream]
    target_label: stream
  - source_labels: [__meta_docker_network_name]
    target_label: net
  - source_labels: [__meta_docker_network_label_com_example_net]
    target_label: net_label
  - source_labels: [__meta_docker_network_scope, __meta_docker_network_internal]
    target_label: net_kind
  - source_labels: [__meta_docker_port_private, __meta_docker_port_public_ip]
    target_label: port
  - source_labels: [__meta_docker_port_public]
    regex: '(.+)'
    target_label: has_public
    replacement: "yes"
  - source_labels: [__address__]
    target_label: addr
  - source_labels: [__meta_docker_container_network_mode]
    target_label: mode
  - source_labels: [__meta_docker_container_label_com_example_only, __meta_docker_container_log_stream]
    regex: 'stderr;stdout'
    action: drop
`, memPositions(t), out)

	withPort, noPort, hostNet := uniqueName(t), uniqueName(t), uniqueName(t)
	docker(t, "run", "-d", "--name", withPort, "--network", netName, "-p", "127.0.0.1::8080", "-p", "127.0.0.1::53/udp",
		img, "-n", "4", "-stderr", "-hold", "1m")
	docker(t, "run", "-d", "--name", noPort, "--network", netName, "--label", "com.example.only=stderr",
		img, "-n", "4", "-stderr", "-hold", "1m")
	docker(t, "run", "-d", "--name", hostNet, "--network", "host", img, "-n", "2", "-hold", "1m")
	waitFor(t, 20*time.Second, "all lines", func() bool {
		return len(out.lines(withPort, "")) == 4 && len(out.lines(noPort, "")) == 2 && len(out.lines(hostNet, "")) == 2
	})

	ip := docker(t, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+netName+"\").IPAddress}}", withPort)
	hostPort := docker(t, "inspect", "-f", `{{(index (index .NetworkSettings.Ports "8080/tcp") 0).HostPort}}`, withPort)
	for _, e := range out.entriesOf(withPort) {
		l := e.Labels
		if l.Get("net") != netName || l.Get("net_label") != "blue" || l.Get("net_kind") != "local;false" ||
			l.Get("port") != "8080;127.0.0.1" || l.Get("has_public") != "yes" || l.Get("addr") != ip+":8080" ||
			l.Get("mode") != netName {
			t.Fatalf("labels of the container with ports: %v (ip %s, host port %s)", l, ip, hostPort)
		}
		if s := l.Get("stream"); s != "stdout" && s != "stderr" {
			t.Fatalf("stream label %q", s)
		}
	}
	// Relabeling dropped the stdout stream of this container only.
	if got := out.lines(noPort, "stdout"); len(got) != 0 {
		t.Fatalf("stdout lines kept after a per-stream drop: %q", got)
	}
	noPortIP := docker(t, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+netName+"\").IPAddress}}", noPort)
	for _, e := range out.entriesOf(noPort) {
		if e.Labels.Get("addr") != noPortIP+":9999" || e.Labels.Get("port") != ";" || e.Labels.Get("stream") != "stderr" {
			t.Fatalf("labels of the container without ports: %v", e.Labels)
		}
	}
	for _, e := range out.entriesOf(hostNet) {
		if e.Labels.Get("addr") != "localhost" || e.Labels.Get("mode") != "host" || e.Labels.Get("net") != "host" {
			t.Fatalf("labels of the host-network container: %v", e.Labels)
		}
	}
}

// The source reaches an Engine at an https:// host with TLS verified
// against a CA file and bearer-token auth: here a TLS proxy in front of
// the local Engine's socket, which refuses requests without the token.
func TestTLSAndAuthHost(t *testing.T) {
	img := loggenImage(t)
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		sock = strings.TrimPrefix(h, "unix://")
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "docker"})
	proxy.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	proxy.FlushInterval = -1 // log and event streams
	var refused atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			refused.Add(1)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &recorder{}
	startSource(t, `
host: `+srv.URL+`
refresh_interval: 1h
tls_config:
  ca_file: `+ca+`
  server_name: example.com
authorization:
  credentials_file: `+token+`
`, memPositions(t), out)
	name := uniqueName(t)
	docker(t, "run", "-d", "--name", name, img, "-n", "6", "-stderr", "-hold", "1m")
	waitFor(t, 20*time.Second, "lines through TLS", func() bool { return len(out.lines(name, "")) == 6 })
	if refused.Load() != 0 {
		t.Fatalf("%d requests came without the token", refused.Load())
	}
}
