package pipeline

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const promtailSample = `server:
  http_listen_port: 9080
  grpc_listen_port: 0
positions:
  filename: /tmp/positions.yaml
clients:
  - url: http://loki:3100/loki/api/v1/push
    tenant_id: ops
  - url: http://backup:3100/loki/api/v1/push
scrape_configs:
  - job_name: system
    static_configs:
      - targets: [localhost]
        labels:
          job: varlogs
          __path__: /var/log/*log
      - targets: [localhost]
        labels:
          job: skipped
          __path__: /var/log/skip/*.log
      - labels:
          job: apps
          team: core
          __path__: /srv/*/logs/*.log
          __path_exclude__: /srv/tmp/**
    relabel_configs:
      - source_labels: [job]
        regex: skipped
        action: drop
      - source_labels: [team]
        target_label: owner
      - regex: team
        action: labeldrop
`

// fileTargets decodes the translated file source for inspection.
type translatedTarget struct {
	Include []string          `yaml:"include"`
	Exclude []string          `yaml:"exclude"`
	Labels  map[string]string `yaml:"labels"`
}

func targetsOf(t *testing.T, c Component) []translatedTarget {
	t.Helper()
	var src struct {
		Targets    []translatedTarget `yaml:"targets"`
		SyncPeriod string             `yaml:"sync_period"`
	}
	if err := c.Node.Decode(&src); err != nil {
		t.Fatal(err)
	}
	return src.Targets
}

func TestPromtailTranslation(t *testing.T) {
	cfg, err := Load("promtail.yaml", []byte(promtailSample), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Format != "promtail" {
		t.Fatalf("format %q", cfg.Format)
	}
	if cfg.Server.ListenAddress() != ":9080" || cfg.Positions.Filename != "/tmp/positions.yaml" {
		t.Fatalf("server/positions not carried: %q %q", cfg.Server.ListenAddress(), cfg.Positions.Filename)
	}
	if len(cfg.Sinks) != 2 || cfg.Sinks[0].Type != "loki" || cfg.Sinks[1].Type != "loki" {
		t.Fatalf("sinks %+v", cfg.Sinks)
	}
	var client struct {
		URL      string `yaml:"url"`
		TenantID string `yaml:"tenant_id"`
	}
	if err := cfg.Sinks[0].Node.Decode(&client); err != nil || client.TenantID != "ops" {
		t.Fatalf("client block not passed through: %+v %v", client, err)
	}
	src, ok := cfg.Sources.Get("system")
	if !ok || src.Type != "file" {
		t.Fatalf("sources %+v", cfg.Sources)
	}
	targets := targetsOf(t, src)
	if len(targets) != 2 {
		t.Fatalf("want 2 targets (one dropped by relabeling), got %+v", targets)
	}
	if targets[0].Include[0] != "/var/log/*log" || targets[0].Labels["job"] != "varlogs" || len(targets[0].Labels) != 1 {
		t.Fatalf("first target %+v", targets[0])
	}
	second := targets[1]
	if second.Include[0] != "/srv/*/logs/*.log" || second.Exclude[0] != "/srv/tmp/**" {
		t.Fatalf("second target paths %+v", second)
	}
	if second.Labels["owner"] != "core" || second.Labels["job"] != "apps" || second.Labels["team"] != "" {
		t.Fatalf("relabeling not applied: %+v", second.Labels)
	}
	for k := range second.Labels {
		if strings.HasPrefix(k, "__") {
			t.Fatalf("internal label %q kept", k)
		}
	}
	if len(cfg.Pipelines) != 1 || len(cfg.Pipelines[0].Sinks) != 2 {
		t.Fatalf("every source must go to every client: %+v", cfg.Pipelines)
	}
	if len(cfg.Notes) == 0 {
		t.Fatal("grpc_listen_port accepted without a note")
	}
}

func TestPromtailSingleClientAndTargetConfig(t *testing.T) {
	cfg, err := Load("p.yaml", []byte(`client:
  url: http://loki:3100/loki/api/v1/push
target_config:
  sync_period: 3s
limits_config:
  max_line_size: 1024
  max_line_size_truncate: true
scrape_configs:
  - job_name: a
    static_configs:
      - labels: {__path__: /a/*.log}
`), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0].Name != "loki" {
		t.Fatalf("sinks %+v", cfg.Sinks)
	}
	src, _ := cfg.Sources.Get("a")
	var got struct {
		SyncPeriod  string    `yaml:"sync_period"`
		MaxLineSize int       `yaml:"max_line_size"`
		Targets     yaml.Node `yaml:"targets"`
	}
	if err := src.Node.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.SyncPeriod != "3s" || got.MaxLineSize != 1024 {
		t.Fatalf("target_config/limits_config not carried: %+v", got)
	}
}

func TestPromtailErrorsNameKeyAndPosition(t *testing.T) {
	base := "clients:\n  - url: http://l/loki/api/v1/push\n"
	cases := []struct{ name, src, want string }{
		{"unsupported scrape kind", base + "scrape_configs:\n  - job_name: d\n    kubernetes_sd_configs:\n      - role: pod\n",
			`p.yaml:5:5: Promtail key "kubernetes_sd_configs" in scrape_configs is not supported by vigil yet`},
		{"docker and static in one job", base + "scrape_configs:\n  - job_name: d\n    docker_sd_configs:\n      - host: unix:///var/run/docker.sock\n    static_configs:\n      - labels: {__path__: /x}\n",
			`p.yaml:8:7: job "d" has both static_configs and docker_sd_configs`},
		{"docker without host", base + "scrape_configs:\n  - job_name: d\n    docker_sd_configs:\n      - refresh_interval: 5s\n",
			`p.yaml:6:9: docker_sd_configs[0] of job "d" has no host`},
		{"malformed stage", base + "scrape_configs:\n  - job_name: d\n    pipeline_stages:\n      - json: {expressions: {a: b}}\n        labels: {}\n    static_configs:\n      - labels: {__path__: /x}\n",
			`p.yaml:6:9: each stage is a mapping with one key`},
		{"typo in scrape config", base + "scrape_configs:\n  - job_name: d\n    static_config:\n      - labels: {__path__: /x}\n",
			`p.yaml:5:5: unknown key "static_config" in scrape_configs[0] (did you mean "static_configs"?)`},
		{"bad relabel regex", base + "scrape_configs:\n  - job_name: d\n    relabel_configs:\n      - source_labels: [a]\n        regex: '(['\n    static_configs:\n      - labels: {__path__: /x}\n",
			`p.yaml:7:16: invalid regex "([" in relabel_configs`},
		{"unknown relabel key", base + "scrape_configs:\n  - job_name: d\n    relabel_configs:\n      - source_label: [a]\n",
			`p.yaml:6:9: unknown key "source_label" in relabel_configs (did you mean "source_labels"?)`},
		{"no __path__", base + "scrape_configs:\n  - job_name: d\n    static_configs:\n      - labels: {job: x}\n",
			`p.yaml:6:9: static_configs[0] of job "d" has no __path__ label`},
		{"unsupported top-level", base + "tracing:\n  enabled: true\n", `p.yaml:3:1: Promtail key "tracing" is not supported by vigil yet`},
		{"stdin", base + "target_config:\n  stdin: true\n", `p.yaml:4:10: target_config.stdin is not supported`},
		{"line size drop", base + "limits_config:\n  max_line_size: 100\n", `p.yaml:4:18: limits_config.max_line_size without max_line_size_truncate`},
		{"no clients", "scrape_configs:\n  - job_name: d\n    static_configs:\n      - labels: {__path__: /x}\n", `no clients`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load("p.yaml", []byte(c.src), LoadOptions{Format: "promtail"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant %q", err, c.want)
			}
		})
	}
}

func TestPromtailExpandEnvOnlyWithFlag(t *testing.T) {
	t.Setenv("VIGIL_T_LOKI", "http://from-env:3100/loki/api/v1/push")
	src := "clients:\n  - url: ${VIGIL_T_LOKI}\n"
	for _, expand := range []bool{false, true} {
		cfg, err := Load("p.yaml", []byte(src), LoadOptions{ExpandEnv: expand})
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			URL string `yaml:"url"`
		}
		if err := cfg.Sinks[0].Node.Decode(&c); err != nil {
			t.Fatal(err)
		}
		want := "${VIGIL_T_LOKI}"
		if expand {
			want = "http://from-env:3100/loki/api/v1/push"
		}
		if c.URL != want {
			t.Fatalf("expand=%v: url %q, want %q", expand, c.URL, want)
		}
	}
}

func TestPromtailStagesBecomeTheirPipelinesProcessors(t *testing.T) {
	cfg, err := Load("p.yaml", []byte(`clients:
  - url: http://l/loki/api/v1/push
scrape_configs:
  - job_name: plain
    static_configs:
      - labels: {__path__: /plain/*.log}
  - job_name: app
    pipeline_stages:
      - json:
          expressions: {level: level}
      - labels:
          level:
      - docker:
    static_configs:
      - labels: {__path__: /app/*.log}
`), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Pipelines) != 2 {
		t.Fatalf("want a pipeline for the plain job and one for the staged job, got %+v", cfg.Pipelines)
	}
	staged := cfg.Pipelines[1]
	if staged.Sources[0].Name != "app" || len(staged.Sinks) != 1 || len(staged.Processors) != 3 {
		t.Fatalf("staged pipeline %+v", staged)
	}
	var types []string
	for _, r := range staged.Processors {
		c, ok := cfg.Processors.Get(r.Name)
		if !ok {
			t.Fatalf("processor %q missing", r.Name)
		}
		types = append(types, c.Type)
		if c.Node == nil || c.Node.Kind != yaml.MappingNode {
			t.Fatalf("stage %q has no mapping node", c.Name)
		}
	}
	if strings.Join(types, ",") != "json,labels,docker" {
		t.Fatalf("stage types %v", types)
	}
	if cfg.Pipelines[0].Sources[0].Name != "plain" {
		t.Fatalf("plain job not in the stage-less pipeline: %+v", cfg.Pipelines[0])
	}
}

// docker_sd_configs become docker sources that take the block unchanged,
// with the job's relabel_configs and no default labels; a job with two
// blocks gets two sources feeding the job's pipeline.
func TestPromtailDockerSDConfigs(t *testing.T) {
	cfg, err := Load("p.yaml", []byte(`clients:
  - url: http://l/loki/api/v1/push
scrape_configs:
  - job_name: docker
    docker_sd_configs:
      - host: unix:///var/run/docker.sock
        refresh_interval: 5s
        filters: [{name: label, values: [logging=on]}]
      - host: tcp://10.0.0.2:2376
        tls_config: {ca_file: /etc/docker/ca.pem}
        host_networking_host: 10.0.0.2
    relabel_configs:
      - source_labels: ['__meta_docker_container_name']
        regex: '/(.*)'
        target_label: 'container'
    pipeline_stages:
      - tenant: {label: container}
`), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sources) != 2 || cfg.Sources[0].Name != "docker/0" || cfg.Sources[1].Name != "docker/1" ||
		cfg.Sources[0].Type != "docker" || cfg.Sources[1].Type != "docker" {
		t.Fatalf("sources %+v", cfg.Sources)
	}
	for _, s := range cfg.Sources {
		out, err := yaml.Marshal(s.Node)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"default_labels: []", "relabel_configs:", "target_label: 'container'"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("source %s lacks %q:\n%s", s.Name, want, out)
			}
		}
	}
	if n, _ := yaml.Marshal(cfg.Sources[1].Node); !strings.Contains(string(n), "host_networking_host: 10.0.0.2") || !strings.Contains(string(n), "ca_file: /etc/docker/ca.pem") {
		t.Errorf("second block not carried over:\n%s", n)
	}
	if len(cfg.Pipelines) != 1 || len(cfg.Pipelines[0].Sources) != 2 || len(cfg.Pipelines[0].Processors) != 1 {
		t.Fatalf("pipelines %+v", cfg.Pipelines)
	}
}
