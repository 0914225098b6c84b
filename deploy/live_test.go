package deploy

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type vigilProc struct {
	*proc
	addr string
}

// startVigil runs vigil on the stack's vigil.yaml (see vigilConfig) with
// its positions in a temporary directory, shipping to lokiAddr (a closed
// port is fine: entries wait in the buffer and the failures are counted).
func startVigil(t *testing.T, lokiAddr string) *vigilProc {
	t.Helper()
	dir := t.TempDir()
	cfg := vigilConfig(t, dir)
	addr := freeAddr(t)
	p := start(t, "vigil", "http://"+addr+"/ready", []string{
		"VIGIL_DATA_DIR=" + dir,
		"LOKI_URL=http://" + lokiAddr + "/loki/api/v1/push",
	}, vigilBin, "-config.file="+cfg, "-web.listen-address="+addr, "-log.level=warn")
	p.kill = true
	return &vigilProc{p, addr}
}

// downAlert is the alert that must reach Alertmanager when vigil stops, and
// liveFor the for: it gets in the test copy of its rule file. The real
// for: 2m would only make the test wait two minutes longer: the expression,
// labels, annotations and routing tested are the real ones.
const (
	downAlert = "HostDown"
	liveFor   = "5s"
)

// TestLive runs the deploy configs for real: Debian's Prometheus with
// prometheus.yml and every rule file, Debian's Alertmanager with
// alertmanager.yml, and vigil with vigil.yaml; only addresses, paths and
// intervals are moved for the test (see the comments below). Prometheus
// must scrape vigil and evaluate every rule without error; when vigil
// stops, HostDown must reach Alertmanager, routed to PagerDuty and e-mail.
func TestLive(t *testing.T) {
	needVigil(t)
	promBin := tool(t, "prometheus", "prometheus")
	amBin := tool(t, "prometheus-alertmanager", "prometheus-alertmanager")
	dir := t.TempDir()
	closed := freeAddr(t) // nothing listens there

	// Alertmanager: the real routes, receivers and inhibitions. The SMTP
	// server and PagerDuty's URL move to a closed local port and the secret
	// files to the temporary directory, so nothing leaves the machine.
	var am map[string]any
	if err := yaml.Unmarshal(readFile(t, path("compose", "alertmanager", "alertmanager.yml")), &am); err != nil {
		t.Fatal(err)
	}
	secret := writeFile(t, dir, "secret", "test-secret")
	global := am["global"].(map[string]any)
	global["smtp_smarthost"] = closed
	global["smtp_auth_password_file"] = secret
	global["pagerduty_url"] = "http://" + closed + "/"
	for _, r := range am["receivers"].([]any) {
		for _, kind := range []string{"pagerduty_configs", "slack_configs"} {
			cfgs, _ := r.(map[string]any)[kind].([]any)
			for _, c := range cfgs {
				c := c.(map[string]any)
				for k := range c {
					if strings.HasSuffix(k, "_file") {
						c[k] = secret
					}
				}
			}
		}
	}
	amCfg := writeYAML(t, dir, "alertmanager.yml", am)
	amAddr := freeAddr(t)
	start(t, "alertmanager", "http://"+amAddr+"/-/ready", nil, amBin,
		"--config.file="+amCfg, "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=", "--log.level=warn")

	v := startVigil(t, closed)

	// Prometheus: the real rule files (HostDown's for: shortened, see
	// liveFor), scraping the real jobs that exist here: vigil, Prometheus
	// itself and Alertmanager, at their test addresses, every second.
	rulesDir := filepath.Join(dir, "rules")
	ruleFiles, _ := filepath.Glob(path("compose", "prometheus", "rules", "*.rules.yml"))
	shortened := false
	for _, f := range ruleFiles {
		var doc yaml.Node
		if err := yaml.Unmarshal(readFile(t, f), &doc); err != nil {
			t.Fatal(err)
		}
		shortened = setFor(&doc, downAlert, liveFor) || shortened
		b, err := yaml.Marshal(&doc)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, rulesDir, filepath.Base(f), string(b))
	}
	if !shortened {
		t.Fatalf("alert %s not found in the rule files", downAlert)
	}
	promAddr := freeAddr(t)
	cfg := promConfig(t)
	cfg["global"] = map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s",
		"external_labels": cfg["global"].(map[string]any)["external_labels"]}
	cfg["rule_files"] = []any{filepath.Join(rulesDir, "*.rules.yml")}
	cfg["alerting"] = map[string]any{"alertmanagers": []any{map[string]any{"static_configs": []any{map[string]any{"targets": []any{amAddr}}}}}}
	targets := map[string]string{"vigil": v.addr, "prometheus": promAddr, "alertmanager": amAddr}
	var jobs []any
	for _, sc := range cfg["scrape_configs"].([]any) {
		sc := sc.(map[string]any)
		if addr, ok := targets[sc["job_name"].(string)]; ok {
			sc["static_configs"] = []any{map[string]any{"targets": []any{addr}}}
			jobs = append(jobs, sc)
		}
	}
	if len(jobs) != len(targets) {
		t.Fatalf("prometheus.yml: jobs %v not all found", targets)
	}
	cfg["scrape_configs"] = jobs
	promCfg := writeYAML(t, dir, "prometheus.yml", cfg)
	start(t, "prometheus", "http://"+promAddr+"/-/ready", nil, promBin,
		"--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "prom"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	prom := "http://" + promAddr

	// Prometheus scrapes vigil: up is 1 and vigil's own series are there.
	eventually(t, 60*time.Second, "Prometheus scraping vigil", func() string {
		for _, q := range []string{`up{job="vigil"} == 1`, `vigil_buffer_capacity_bytes{job="vigil"}`, `node_cpu_seconds_total{job="vigil"}`} {
			n, err := promCount(prom, q)
			if err != nil || n == 0 {
				return fmt.Sprintf("%s: %d series, %v", q, n, err)
			}
		}
		return ""
	})

	// Every rule of every group evaluates without error.
	eventually(t, 60*time.Second, "every rule evaluated without error", func() string {
		var r struct {
			Data struct {
				Groups []struct {
					Name  string
					Rules []struct {
						Name, Health, LastError string
						LastEvaluation          time.Time
					}
				}
			}
		}
		if err := promAPI(prom+"/api/v1/rules", &r); err != nil {
			return err.Error()
		}
		var bad []string
		n := 0
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				n++
				if rule.Health != "ok" || rule.LastEvaluation.IsZero() {
					bad = append(bad, fmt.Sprintf("%s/%s: health %q %s", g.Name, rule.Name, rule.Health, rule.LastError))
				}
			}
		}
		if len(r.Data.Groups) != 4 || n < 30 {
			return fmt.Sprintf("%d groups, %d rules loaded", len(r.Data.Groups), n)
		}
		return strings.Join(bad, "; ")
	})

	// Nothing fires yet that says vigil is down.
	if alerts := amAlerts(t, "http://"+amAddr, downAlert); len(alerts) != 0 {
		t.Fatalf("%s at Alertmanager before vigil stopped: %v", downAlert, alerts)
	}

	// Kill vigil (as a crash, or the host going away): HostDown reaches Alertmanager, routed as the users want.
	stopped := time.Now()
	v.stop()
	var got []amAlert
	eventually(t, 90*time.Second, downAlert+" at Alertmanager", func() string {
		got = amAlerts(t, "http://"+amAddr, downAlert)
		if len(got) == 0 {
			return "not yet"
		}
		return ""
	})
	a := got[0]
	t.Logf("%s reached Alertmanager %s after vigil stopped: %v, receivers %v", downAlert, time.Since(stopped).Round(time.Second), a.Labels, a.receivers())
	if a.Labels["job"] != "vigil" || a.Labels["severity"] != "critical" || a.Annotations["summary"] == "" {
		t.Errorf("%s: labels %v, annotations %v", downAlert, a.Labels, a.Annotations)
	}
	if r := strings.Join(a.receivers(), ","); r != "email,pagerduty" && r != "pagerduty,email" {
		t.Errorf("%s went to %q, want PagerDuty and e-mail", downAlert, r)
	}
}

// setFor sets the for: of the named alert in a rule file; false when the
// file does not have it.
func setFor(doc *yaml.Node, alert, dur string) bool {
	found := false
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			isAlert := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == "alert" && n.Content[i+1].Value == alert {
					isAlert = true
				}
			}
			if isAlert {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == "for" {
						n.Content[i+1].Value = dur
						found = true
					}
				}
				return
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(doc)
	return found
}

func promAPI(u string, v any) error {
	code, body, err := httpGet(u)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("%s: %d %s", u, code, body)
	}
	return json.Unmarshal(body, v)
}

func promCount(base, query string) (int, error) {
	var r struct {
		Data struct {
			Result []json.RawMessage
		}
	}
	err := promAPI(base+"/api/v1/query?query="+url.QueryEscape(query), &r)
	return len(r.Data.Result), err
}

type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Receivers   []struct {
		Name string `json:"name"`
	} `json:"receivers"`
}

func (a amAlert) receivers() []string {
	var out []string
	for _, r := range a.Receivers {
		out = append(out, r.Name)
	}
	return out
}

func amAlerts(t *testing.T, base, name string) []amAlert {
	t.Helper()
	var alerts []amAlert
	if err := promAPI(base+"/api/v2/alerts?filter="+url.QueryEscape(`alertname="`+name+`"`), &alerts); err != nil {
		t.Logf("alertmanager: %v", err)
		return nil
	}
	return alerts
}
