package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// promExpr is one PromQL expression found in a dashboard or a rule file.
type promExpr struct {
	where string // file, panel, refId
	expr  string
}

type dashboard struct {
	UID        string                    `json:"uid"`
	Title      string                    `json:"title"`
	Panels     []panel                   `json:"panels"`
	Templating struct{ List []variable } `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *datasourceRef  `json:"datasource"`
	Targets    []target        `json:"targets"`
	Panels     []panel         `json:"panels"`
	GridPos    *map[string]int `json:"gridPos"`
}

type target struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Datasource *datasourceRef `json:"datasource"`
}

type variable struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Query      any            `json:"query"`
	Datasource *datasourceRef `json:"datasource"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// provisionedDatasources reads the uid -> type map of the provisioning file.
func provisionedDatasources(t *testing.T) map[string]string {
	t.Helper()
	var p struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, URL string
			JSONData             map[string]any `yaml:"jsonData"`
			SecureJSONData       map[string]any `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(readFile(t, path("compose", "grafana", "provisioning", "datasources", "datasources.yaml")), &p); err != nil {
		t.Fatal(err)
	}
	if p.APIVersion != 1 {
		t.Errorf("datasources.yaml: apiVersion %d", p.APIVersion)
	}
	out := map[string]string{}
	for _, d := range p.Datasources {
		if d.UID == "" || d.Type == "" || d.URL == "" || d.Name == "" {
			t.Errorf("data source %+v: name, uid, type and url are required", d)
		}
		if _, dup := out[d.UID]; dup {
			t.Errorf("data source uid %q twice", d.UID)
		}
		out[d.UID] = d.Type
		// Loki is multi-tenant: every Loki data source names its tenant.
		if d.Type == "loki" && (d.JSONData["httpHeaderName1"] != "X-Scope-OrgID" || d.SecureJSONData["httpHeaderValue1"] == nil) {
			t.Errorf("data source %s: a Loki data source must send X-Scope-OrgID", d.Name)
		}
	}
	for _, want := range []string{"prometheus", "alertmanager", "loki-all"} {
		if out[want] == "" {
			t.Errorf("data source %q missing", want)
		}
	}
	return out
}

// dashboardExprs checks the dashboards' structure and returns their PromQL
// expressions (Grafana variables expanded).
func dashboardExprs(t *testing.T) []promExpr {
	t.Helper()
	ds := provisionedDatasources(t)
	files, _ := filepath.Glob(path("compose", "grafana", "dashboards", "*.json"))
	if len(files) != 4 {
		t.Fatalf("dashboards: %v, want host, containers, logs and pipeline", files)
	}
	var exprs []promExpr
	uids := map[string]string{}
	for _, f := range files {
		name := filepath.Base(f)
		var d dashboard
		dec := json.NewDecoder(strings.NewReader(string(readFile(t, f))))
		if err := dec.Decode(&d); err != nil {
			t.Errorf("%s: not valid JSON: %v", name, err)
			continue
		}
		var raw any
		if err := json.Unmarshal(readFile(t, f), &raw); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
			t.Errorf("%s: uid, title and panels are required", name)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %q also in %s", name, d.UID, other)
		}
		uids[d.UID] = name
		vars := map[string]variable{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v
		}
		// The type of a data source reference: provisioned uid, or a
		// datasource variable.
		dsType := func(r *datasourceRef) (string, error) {
			if r == nil {
				return "", fmt.Errorf("no data source")
			}
			if strings.HasPrefix(r.UID, "$") {
				v, ok := vars[strings.Trim(r.UID, "${}")]
				if !ok || v.Type != "datasource" || fmt.Sprint(v.Query) != r.Type {
					return "", fmt.Errorf("data source variable %s is not a %s datasource variable", r.UID, r.Type)
				}
				return r.Type, nil
			}
			if ds[r.UID] == "" {
				return "", fmt.Errorf("data source uid %q is not provisioned", r.UID)
			}
			if ds[r.UID] != r.Type {
				return "", fmt.Errorf("data source %q is a %s, not a %s", r.UID, ds[r.UID], r.Type)
			}
			return r.Type, nil
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			typ, err := dsType(v.Datasource)
			if err != nil {
				t.Errorf("%s: variable %s: %v", name, v.Name, err)
				continue
			}
			if typ == "prometheus" {
				if e := variableExpr(fmt.Sprint(v.Query)); e != "" {
					exprs = append(exprs, promExpr{fmt.Sprintf("%s variable %s", name, v.Name), expandGrafana(e)})
				}
			}
		}
		ids := map[int]bool{}
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				if ids[p.ID] || p.ID == 0 {
					t.Errorf("%s: panel %q: id %d missing or used twice", name, p.Title, p.ID)
				}
				ids[p.ID] = true
				if p.GridPos == nil {
					t.Errorf("%s: panel %q: no gridPos", name, p.Title)
				}
				walk(p.Panels)
				if p.Type == "row" {
					continue
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no query", name, p.Title)
				}
				for _, tg := range p.Targets {
					ref := tg.Datasource
					if ref == nil {
						ref = p.Datasource
					}
					typ, err := dsType(ref)
					if err != nil {
						t.Errorf("%s: panel %q %s: %v", name, p.Title, tg.RefID, err)
						continue
					}
					if tg.RefID == "" || strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("%s: panel %q: a target without refId or expr", name, p.Title)
					}
					if typ == "prometheus" {
						exprs = append(exprs, promExpr{fmt.Sprintf("%s panel %q %s", name, p.Title, tg.RefID), expandGrafana(tg.Expr)})
					}
				}
			}
		}
		walk(d.Panels)
	}
	return exprs
}

var labelValuesRe = regexp.MustCompile(`^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)
var queryResultRe = regexp.MustCompile(`^\s*query_result\((.*)\)\s*$`)

// variableExpr is the PromQL inside a Grafana query variable, "" when it
// has none (label_values(label), label_names()).
func variableExpr(q string) string {
	if m := labelValuesRe.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	if m := queryResultRe.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	return ""
}

// checkParse writes every expression as a recording rule and runs promtool
// check rules on them: Prometheus's own parser. A failure names the
// dashboard, panel and query.
func checkParse(t *testing.T, exprs []promExpr) {
	t.Helper()
	promtool := tool(t, "promtool", "prometheus")
	type rec struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rec
	for i, e := range exprs {
		rules = append(rules, rec{fmt.Sprintf("expr_%d", i), e.expr})
	}
	p := writeYAML(t, t.TempDir(), "exprs.rules.yml", map[string]any{"groups": []any{map[string]any{"name": "dashboards", "rules": rules}}})
	out, err := execOut(promtool, "check", "rules", p)
	if err == nil {
		return
	}
	re := regexp.MustCompile(`"expr_(\d+)": (.*)`)
	found := false
	for _, line := range strings.Split(out, "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			var i int
			fmt.Sscan(m[1], &i)
			t.Errorf("%s: %s\n\t%s", exprs[i].where, m[2], exprs[i].expr)
			found = true
		}
	}
	if !found {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

// TestDashboards: valid JSON with provisioned data sources, and every
// PromQL expression of the dashboards parses.
func TestDashboards(t *testing.T) {
	exprs := dashboardExprs(t)
	if len(exprs) < 40 {
		t.Fatalf("only %d PromQL expressions found in the dashboards", len(exprs))
	}
	checkParse(t, exprs)
	// The dashboard provider points where compose mounts the dashboards.
	var prov struct {
		Providers []struct {
			Options struct{ Path string } `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(readFile(t, path("compose", "grafana", "provisioning", "dashboards", "dashboards.yaml")), &prov); err != nil {
		t.Fatal(err)
	}
	if len(prov.Providers) != 1 || prov.Providers[0].Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("dashboard provider: %+v", prov.Providers)
	}
	if !strings.Contains(string(readFile(t, path("compose", "docker-compose.yml"))), "./grafana/dashboards:/var/lib/grafana/dashboards:ro") {
		t.Errorf("docker-compose.yml does not mount grafana/dashboards where the provider reads them")
	}
}

// TestMetricNamesExist: every metric name used by the dashboards and the
// alert rules is served by vigil (its /metrics with host metrics on, plus
// its self-metrics that appear only once something happens) or listed in
// testdata/stack-metrics.txt.
func TestMetricNamesExist(t *testing.T) {
	needVigil(t)
	known := vigilMetricNames(t)
	for _, line := range strings.Split(string(readFile(t, filepath.Join(deployDir, "testdata", "stack-metrics.txt"))), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			known[line] = "testdata/stack-metrics.txt"
		}
	}
	exprs := dashboardExprs(t)
	files, _ := filepath.Glob(path("compose", "prometheus", "rules", "*.rules.yml"))
	for _, f := range files {
		for _, r := range loadRules(t, f) {
			exprs = append(exprs, promExpr{fmt.Sprintf("%s alert %s", r.file, r.Alert), r.Expr})
		}
	}
	used := map[string][]string{}
	for _, e := range exprs {
		for _, n := range metricNames(e.expr) {
			used[n] = append(used[n], e.where)
		}
	}
	for _, n := range sortedKeys(used) {
		if known[n] == "" {
			t.Errorf("metric %s is neither served by vigil nor listed in testdata/stack-metrics.txt; used by %s", n, strings.Join(used[n], "; "))
		}
	}
	t.Logf("%d metric names used, all known", len(used))
}

// vigilMetricNames runs vigil on the stack's config and collects the names
// on its /metrics, plus the names of its self-metric families (a vector
// with no series yet is absent from /metrics).
func vigilMetricNames(t *testing.T) map[string]string {
	t.Helper()
	v := startVigil(t, "127.0.0.1:1")
	_, body, err := httpGet("http://" + v.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "#" && (f[1] == "HELP" || f[1] == "TYPE"):
			known[f[2]] = "vigil /metrics"
		case len(f) >= 2 && !strings.HasPrefix(line, "#"):
			name := f[0]
			if i := strings.IndexByte(name, '{'); i >= 0 {
				name = name[:i]
			}
			known[name] = "vigil /metrics"
		}
	}
	if known["node_cpu_seconds_total"] == "" || known["promtail_sent_entries_total"] == "" {
		t.Fatalf("vigil's /metrics lacks host or pipeline metrics:\n%.2000s", body)
	}
	// pipeline.NewMetrics registers every self-metric family: record them.
	rec := &recorder{}
	pipeline.NewMetrics(rec)
	ch := make(chan *prometheus.Desc, 256)
	for _, c := range rec.cs {
		c.Describe(ch)
	}
	close(ch)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				if known[m[1]+suffix] == "" {
					known[m[1]+suffix] = "pipeline.NewMetrics"
				}
			}
		}
	}
	if os.Getenv("DEPLOY_TEST_VERBOSE") != "" {
		names := sortedKeys(known)
		sort.Strings(names)
		t.Logf("known: %v", names)
	}
	return known
}

// recorder is a prometheus.Registerer that keeps what is registered.
type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error   { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) { r.cs = append(r.cs, cs...) }
func (r *recorder) Unregister(prometheus.Collector) bool    { return false }
