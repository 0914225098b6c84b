package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/components"
	"github.com/vigilhq/vigil/pipeline"
)

// TestComposeConfig: the stack file is valid for Debian's docker-compose
// (v1), which interpolates .env.example's variables and checks the schema
// without pulling anything.
func TestComposeConfig(t *testing.T) {
	dc := tool(t, "docker-compose", "docker-compose")
	dir := path("compose")
	// The committed example, as docker-compose reads .env.
	env := []string{}
	for _, line := range strings.Split(string(readFile(t, filepath.Join(dir, ".env.example"))), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			env = append(env, line)
		}
	}
	runTool(t, dir, env, dc, "-f", "docker-compose.yml", "config", "-q")
	// And with no .env at all: every variable has a default.
	runTool(t, dir, nil, dc, "-f", "docker-compose.yml", "config", "-q")

	var c struct {
		Services map[string]struct {
			Image       string   `yaml:"image"`
			Restart     string   `yaml:"restart"`
			MemLimit    string   `yaml:"mem_limit"`
			NetworkMode string   `yaml:"network_mode"`
			Networks    []string `yaml:"networks"`
			Volumes     []string `yaml:"volumes"`
			Healthcheck *struct {
				Test    []string `yaml:"test"`
				Disable bool     `yaml:"disable"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
		Networks map[string]any `yaml:"networks"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(dir, "docker-compose.yml")), &c); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"prometheus", "loki", "grafana", "alertmanager", "vigil"} {
		svc, ok := c.Services[s]
		if !ok {
			t.Errorf("service %s missing", s)
			continue
		}
		if svc.Restart == "" || svc.MemLimit == "" || svc.Healthcheck == nil {
			t.Errorf("service %s: restart %q, mem_limit %q, healthcheck %v: all three are required", s, svc.Restart, svc.MemLimit, svc.Healthcheck != nil)
		}
		if s != "vigil" {
			if tag := svc.Image[strings.LastIndex(svc.Image, ":")+1:]; !strings.Contains(svc.Image, ":") || tag == "latest" {
				t.Errorf("service %s: image %q is not pinned", s, svc.Image)
			}
			if len(svc.Networks) != 1 || svc.Networks[0] != "monitoring" {
				t.Errorf("service %s: networks %v, want [monitoring]", s, svc.Networks)
			}
		}
	}
	if len(c.Networks) != 1 {
		t.Errorf("networks: %v, want one", c.Networks)
	}
	v := c.Services["vigil"]
	for _, want := range []string{"/proc:/host/proc:ro", "/sys:/host/sys:ro", "/var/log:/var/log:ro",
		"/var/lib/docker/containers:/var/lib/docker/containers:ro", "/var/run/docker.sock:/var/run/docker.sock:ro", "vigil-positions:/var/lib/vigil"} {
		found := false
		for _, m := range v.Volumes {
			found = found || m == want
		}
		if !found {
			t.Errorf("vigil: mount %s missing", want)
		}
	}
}

// TestPrometheusConfig: promtool check config on the real file, and on a
// copy whose rule_files point at this checkout, so the rules are loaded too.
func TestPrometheusConfig(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	runTool(t, path("compose", "prometheus"), nil, promtool, "check", "config", "prometheus.yml")

	cfg := promConfig(t)
	cfg["rule_files"] = []any{filepath.Join(path("compose", "prometheus", "rules"), "*.rules.yml")}
	p := writeYAML(t, t.TempDir(), "prometheus.yml", cfg)
	out := runTool(t, "", nil, promtool, "check", "config", p)
	if !strings.Contains(out, "rules found") {
		t.Errorf("promtool loaded no rules:\n%s", out)
	}
	jobs := map[string]bool{}
	for _, sc := range cfg["scrape_configs"].([]any) {
		jobs[sc.(map[string]any)["job_name"].(string)] = true
	}
	for _, j := range []string{"prometheus", "traefik", "rentguy", "psra", "wpcs", "ai-orchestrator", "vigil", "loki", "grafana", "alertmanager"} {
		if !jobs[j] {
			t.Errorf("scrape job %q missing", j)
		}
	}
}

// TestRules: promtool check rules, promtool test rules for every group, and
// every alert of every group shown both firing and not firing by its tests,
// with for:, severity, summary and description set.
func TestRules(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	rulesDir, testsDir := path("compose", "prometheus", "rules"), path("compose", "prometheus", "tests")
	ruleFiles, _ := filepath.Glob(filepath.Join(rulesDir, "*.rules.yml"))
	if len(ruleFiles) != 4 {
		t.Fatalf("rule files: %v, want host, containers, pipeline and stack", ruleFiles)
	}
	runTool(t, rulesDir, nil, promtool, append([]string{"check", "rules"}, ruleFiles...)...)

	testFiles, _ := filepath.Glob(filepath.Join(testsDir, "*.test.yml"))
	out := runTool(t, testsDir, nil, promtool, append([]string{"test", "rules"}, testFiles...)...)
	t.Logf("promtool test rules:\n%s", out)

	// Which alerts each test file shows firing and not firing.
	type cover struct{ firing, quiet bool }
	covered := map[string]map[string]*cover{} // rule file -> alert -> cover
	for _, tf := range testFiles {
		var ut struct {
			RuleFiles []string `yaml:"rule_files"`
			Tests     []struct {
				AlertRuleTest []struct {
					Alertname string `yaml:"alertname"`
					ExpAlerts []any  `yaml:"exp_alerts"`
				} `yaml:"alert_rule_test"`
			} `yaml:"tests"`
		}
		if err := yaml.Unmarshal(readFile(t, tf), &ut); err != nil {
			t.Fatalf("%s: %v", tf, err)
		}
		for _, rf := range ut.RuleFiles {
			abs := filepath.Clean(filepath.Join(testsDir, rf))
			if covered[abs] == nil {
				covered[abs] = map[string]*cover{}
			}
			for _, tc := range ut.Tests {
				for _, a := range tc.AlertRuleTest {
					c := covered[abs][a.Alertname]
					if c == nil {
						c = &cover{}
						covered[abs][a.Alertname] = c
					}
					if len(a.ExpAlerts) > 0 {
						c.firing = true
					} else {
						c.quiet = true
					}
				}
			}
		}
	}
	for _, rf := range ruleFiles {
		if covered[rf] == nil {
			t.Errorf("%s: no *.test.yml loads it", filepath.Base(rf))
			continue
		}
		for _, r := range loadRules(t, rf) {
			if r.Alert == "" {
				continue
			}
			c := covered[rf][r.Alert]
			if c == nil || !c.firing || !c.quiet {
				t.Errorf("%s: alert %s is not shown both firing and not firing by the tests", filepath.Base(rf), r.Alert)
			}
			if r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical" {
				t.Errorf("%s: alert %s: severity %q", filepath.Base(rf), r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: alert %s: summary and description annotations are required", filepath.Base(rf), r.Alert)
			}
			if !r.hasFor {
				t.Errorf("%s: alert %s has no for: (write for: 0s where it fires at once)", filepath.Base(rf), r.Alert)
			}
		}
	}
}

type rule struct {
	Alert, Record, Expr string
	For                 string
	Labels, Annotations map[string]string
	hasFor              bool
	group, file         string
}

func loadRules(t *testing.T, file string) []rule {
	t.Helper()
	var rf struct {
		Groups []struct {
			Name  string           `yaml:"name"`
			Rules []map[string]any `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, file), &rf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []rule
	for _, g := range rf.Groups {
		for _, m := range g.Rules {
			b, _ := yaml.Marshal(m)
			var r struct {
				Alert       string            `yaml:"alert"`
				Record      string            `yaml:"record"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			}
			if err := yaml.Unmarshal(b, &r); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			_, hasFor := m["for"]
			out = append(out, rule{Alert: r.Alert, Record: r.Record, Expr: r.Expr, For: r.For, Labels: r.Labels,
				Annotations: r.Annotations, hasFor: hasFor, group: g.Name, file: filepath.Base(file)})
		}
	}
	return out
}

// TestAlertmanagerConfig: amtool check-config, then the routing the users
// asked for, through amtool's own router: critical to PagerDuty and e-mail,
// everything else to e-mail.
func TestAlertmanagerConfig(t *testing.T) {
	amtool := tool(t, "amtool", "prometheus-alertmanager")
	cfg := path("compose", "alertmanager", "alertmanager.yml")
	runTool(t, "", nil, amtool, "check-config", cfg)
	for _, tc := range []struct {
		labels []string
		want   string
	}{
		{[]string{"alertname=HostDown", "severity=critical", "job=vigil"}, "pagerduty,email"},
		{[]string{"alertname=HostOutOfMemory", "severity=warning", "job=vigil"}, "email"},
		{[]string{"alertname=Unlabelled"}, "email"},
	} {
		// amtool prints the receivers on stdout, a warning on stderr.
		cmd := exec.Command(amtool, append([]string{"config", "routes", "test", "--config.file=" + cfg}, tc.labels...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("amtool config routes test %v: %v", tc.labels, err)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("%v routed to %q, want %q", tc.labels, got, tc.want)
		}
	}
	b := string(readFile(t, cfg))
	for _, secret := range []string{"smtp_auth_password_file:", "service_key_file:", "api_url_file:"} {
		if !strings.Contains(b, secret) {
			t.Errorf("alertmanager.yml: %s missing", secret)
		}
	}
	for _, literal := range []string{"${", "smtp_auth_password:", "service_key:", "api_url:"} {
		if strings.Contains(b, literal) {
			t.Errorf("alertmanager.yml holds %q: Alertmanager does not expand variables, secrets come from *_file keys", literal)
		}
	}
}

// TestVigilConfig: vigil validate accepts the stack's vigil.yaml. While the
// containers metrics source is not linked into vigil yet, a copy without it
// is validated and the test says so.
func TestVigilConfig(t *testing.T) {
	needVigil(t)
	cfg := vigilConfig(t, t.TempDir())
	out := runTool(t, "", nil, vigilBin, "validate", cfg)
	t.Log(strings.TrimSpace(out))
}

// vigilConfig writes the stack's vigil.yaml into dir, without the sources
// whose type this vigil does not know yet, and returns its path.
func vigilConfig(t *testing.T, dir string) string {
	t.Helper()
	components.Link()
	var doc yaml.Node
	if err := yaml.Unmarshal(readFile(t, path("compose", "vigil", "vigil.yaml")), &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	known := map[string]bool{}
	for _, s := range append(pipeline.SourceTypes(), pipeline.MetricsSourceTypes()...) {
		known[s] = true
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "sources" {
			continue
		}
		srcs := root.Content[i+1]
		var kept []*yaml.Node
		for j := 0; j+1 < len(srcs.Content); j += 2 {
			var s struct {
				Type string `yaml:"type"`
			}
			_ = srcs.Content[j+1].Decode(&s)
			if !known[s.Type] {
				t.Logf("NOTE: source %q (type %s) left out: this vigil has no %q source type yet", srcs.Content[j].Value, s.Type, s.Type)
				continue
			}
			kept = append(kept, srcs.Content[j], srcs.Content[j+1])
		}
		srcs.Content = kept
	}
	b, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, "vigil.yaml", string(b))
}

// TestSystemdUnit: systemd-analyze verify, with ExecStart pointing at a
// real binary, finds nothing to say; the hardening the runbook promises is
// there.
func TestSystemdUnit(t *testing.T) {
	needVigil(t)
	sa := tool(t, "systemd-analyze", "systemd")
	unit := string(readFile(t, path("systemd", "vigil.service")))
	for _, want := range []string{"ProtectSystem=strict", "StateDirectory=vigil", "SupplementaryGroups=adm docker",
		"Restart=on-failure", "DynamicUser=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=CAP_DAC_READ_SEARCH\n",
		"AmbientCapabilities=CAP_DAC_READ_SEARCH\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("vigil.service: %q missing", strings.TrimSpace(want))
		}
	}
	p := writeFile(t, t.TempDir(), "vigil.service", strings.ReplaceAll(unit, "/usr/local/bin/vigil", vigilBin))
	if out := strings.TrimSpace(runTool(t, "", nil, sa, "verify", p)); out != "" {
		t.Errorf("systemd-analyze verify:\n%s", out)
	}
}

// TestImage: docker build of deploy/docker/Dockerfile with a static vigil,
// FROM scratch (no registry), then the image runs `vigil version` and
// validates the stack's config.
func TestImage(t *testing.T) {
	needVigil(t)
	docker := tool(t, "docker", "docker.io")
	if out, err := execOut(docker, "version", "--format", "{{.Server.Version}}"); err != nil {
		missing(t, "docker: no Docker Engine to talk to: %v\n%s", err, out)
	}
	ctx := t.TempDir()
	if err := os.MkdirAll(filepath.Join(ctx, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(vigilBin, filepath.Join(ctx, "bin", "vigil")); err != nil {
		writeFile(t, ctx, "bin/vigil", string(readFile(t, vigilBin)))
		_ = os.Chmod(filepath.Join(ctx, "bin", "vigil"), 0o755)
	}
	tag := fmt.Sprintf("vigil-deploy-test:%d", os.Getpid())
	// The classic builder: BuildKit needs the buildx plugin, which the
	// test machines may lack; the Dockerfile works with both.
	runTool(t, "", []string{"DOCKER_BUILDKIT=0"}, docker, "build", "-q", "-f", path("docker", "Dockerfile"), "-t", tag, ctx)
	t.Cleanup(func() { _, _ = execOut(docker, "rmi", "-f", tag) })
	if out := runTool(t, "", nil, docker, "run", "--rm", "--network=none", tag, "version"); !strings.HasPrefix(out, "vigil ") {
		t.Errorf("vigil version in the image: %q", out)
	}
	cfg := vigilConfig(t, t.TempDir())
	runTool(t, "", nil, docker, "run", "--rm", "--network=none", "-v", cfg+":/etc/vigil/vigil.yaml:ro", tag, "validate", "/etc/vigil/vigil.yaml")
}

// lokiKeys are the keys loki.yaml may use: each was looked up in Loki 3's
// configuration reference (docs/sources/shared/configuration.md of
// grafana/loki, the 3.x line: the top-level block and the server, common,
// period_config/schema_config, storage_config.tsdb_shipper, compactor,
// limits_config, querier, query_range/cache_config, runtime_config and
// analytics blocks). A key not listed here fails the test: look it up there
// first, then add it.
var lokiKeys = setOf(
	"auth_enabled",
	"server", "server.http_listen_port", "server.grpc_listen_port", "server.log_level",
	"common", "common.instance_addr", "common.path_prefix", "common.replication_factor",
	"common.ring", "common.ring.kvstore", "common.ring.kvstore.store",
	"common.storage", "common.storage.filesystem", "common.storage.filesystem.chunks_directory", "common.storage.filesystem.rules_directory",
	"schema_config", "schema_config.configs", "schema_config.configs[].from", "schema_config.configs[].store",
	"schema_config.configs[].object_store", "schema_config.configs[].schema", "schema_config.configs[].index",
	"schema_config.configs[].index.prefix", "schema_config.configs[].index.period",
	"storage_config", "storage_config.tsdb_shipper", "storage_config.tsdb_shipper.active_index_directory", "storage_config.tsdb_shipper.cache_location",
	"compactor", "compactor.working_directory", "compactor.compaction_interval", "compactor.retention_enabled",
	"compactor.retention_delete_delay", "compactor.retention_delete_worker_count", "compactor.delete_request_store",
	"limits_config", "limits_config.retention_period", "limits_config.ingestion_rate_mb", "limits_config.ingestion_burst_size_mb",
	"limits_config.per_stream_rate_limit", "limits_config.per_stream_rate_limit_burst", "limits_config.max_global_streams_per_user",
	"limits_config.max_line_size", "limits_config.reject_old_samples", "limits_config.reject_old_samples_max_age",
	"limits_config.allow_structured_metadata", "limits_config.volume_enabled", "limits_config.max_query_series",
	"limits_config.max_query_parallelism", "limits_config.max_entries_limit_per_query", "limits_config.max_query_lookback",
	"querier", "querier.max_concurrent", "querier.multi_tenant_queries_enabled",
	"query_range", "query_range.cache_results", "query_range.results_cache", "query_range.results_cache.cache",
	"query_range.results_cache.cache.embedded_cache", "query_range.results_cache.cache.embedded_cache.enabled",
	"query_range.results_cache.cache.embedded_cache.max_size_mb",
	"runtime_config", "runtime_config.file", "runtime_config.period",
	"analytics", "analytics.reporting_enabled",
)

// lokiRemoved are the users' draft keys that Loki 3 removed.
var lokiRemoved = []string{"ingester.max_transfer_retries", "storage_config.boltdb_shipper.shared_store",
	"compactor.shared_store", "limits_config.enforce_metric_name", "chunk_store_config.max_look_back_period"}

// TestLokiConfig checks loki.yaml without a Loki binary: every key is one
// of lokiKeys, none of the removed ones is there, the store is tsdb with
// schema v13 on the filesystem, retention is on in the compactor, and the
// stack is multi-tenant as the Grafana data sources assume.
func TestLokiConfig(t *testing.T) {
	var doc map[string]any
	if err := yaml.Unmarshal(readFile(t, path("compose", "loki", "loki.yaml")), &doc); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	walkKeys(doc, "", keys)
	for k := range keys {
		if !lokiKeys[k] {
			t.Errorf("loki.yaml: %s is not among the keys checked against Loki 3's reference (lokiKeys)", k)
		}
	}
	for _, k := range lokiRemoved {
		if keys[k] {
			t.Errorf("loki.yaml: %s was removed in Loki 3", k)
		}
	}
	periods := doc["schema_config"].(map[string]any)["configs"].([]any)
	last := periods[len(periods)-1].(map[string]any)
	if last["store"] != "tsdb" || last["schema"] != "v13" || last["object_store"] != "filesystem" {
		t.Errorf("schema_config: last period %v, want tsdb, v13, filesystem", last)
	}
	comp := doc["compactor"].(map[string]any)
	if comp["retention_enabled"] != true || comp["delete_request_store"] != "filesystem" {
		t.Errorf("compactor: %v: retention must be on, with a delete_request_store", comp)
	}
	if !strings.Contains(fmt.Sprint(doc["limits_config"].(map[string]any)["retention_period"]), "720h") {
		t.Errorf("limits_config.retention_period: want 30 days (720h) by default")
	}
	if doc["auth_enabled"] != true {
		t.Errorf("auth_enabled: the stack is multi-tenant")
	}
	var over struct {
		Overrides map[string]map[string]any `yaml:"overrides"`
	}
	if err := yaml.Unmarshal(readFile(t, path("compose", "loki", "overrides.yaml")), &over); err != nil {
		t.Fatal(err)
	}
	for tenant, limits := range over.Overrides {
		for k := range limits {
			if !lokiKeys["limits_config."+k] {
				t.Errorf("overrides.yaml: %s.%s is not a checked limits_config key", tenant, k)
			}
		}
	}
}

func walkKeys(v any, prefix string, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = true
			walkKeys(c, p, out)
		}
	case []any:
		for _, c := range v {
			walkKeys(c, prefix+"[]", out)
		}
	}
}

func setOf(s ...string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, v := range s {
		m[v] = true
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func promConfig(t *testing.T) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal(readFile(t, path("compose", "prometheus", "prometheus.yml")), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func writeYAML(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, string(b))
}
