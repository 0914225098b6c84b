package integration

// Dashboard 1860 and the node-mixin alerts in a real Prometheus that scrapes
// node_exporter (job "node") and vigil (job "vigil"); see host_test.go for
// the exporters and VIGIL_HOST_STANDIN.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/fixtures"
)

type promServer struct {
	t      *testing.T
	base   string
	stderr *syncBuffer
}

// startPrometheus runs Debian's prometheus scraping each job's target every
// second, with ruleFile loaded.
func startPrometheus(t *testing.T, targets map[string]string, ruleFile string) *promServer {
	t.Helper()
	bin := hostBinary(t, "", "prometheus", "prometheus")
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n")
	if ruleFile != "" {
		fmt.Fprintf(&b, "rule_files:\n  - %s\n", yq(ruleFile))
	}
	b.WriteString("scrape_configs:\n")
	for _, job := range sortedKeys(targets) {
		fmt.Fprintf(&b, "  - job_name: %s\n    static_configs:\n      - targets: [%s]\n", yq(job), yq(targets[job]))
	}
	cfg := writeFile(t, dir, "prometheus.yml", b.String())
	for attempt := 0; ; attempt++ {
		addr := freeAddr(t)
		p := &promServer{t: t, base: "http://" + addr, stderr: &syncBuffer{}}
		cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
			"--web.listen-address="+addr, "--log.level=warn")
		cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting prometheus: %v", err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-done
			if t.Failed() {
				t.Logf("prometheus output:\n%s", tail(p.stderr.String(), 8<<10))
			}
		})
		t.Logf("prometheus: started pid %d on %s with\n%s", cmd.Process.Pid, addr, b.String())
		err := waitHTTP(p.base+"/-/ready", done, startTimeout)
		if err == nil {
			return p
		}
		_ = cmd.Process.Kill()
		if attempt < 3 && strings.Contains(p.stderr.String(), "address already in use") {
			continue
		}
		t.Fatalf("prometheus did not become ready: %v\n%s", err, tail(p.stderr.String(), 8<<10))
	}
}

type promResult struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string            `json:"resultType"`
		Result     json.RawMessage   `json:"result"`
		Groups     []json.RawMessage `json:"groups"`
	} `json:"data"`
}

// promSample is one element of a vector result.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query evaluates expr now. It returns the vector's samples (a scalar or
// string is one sample without labels, unless it is NaN) or an error.
func (p *promServer) query(expr string) ([]promSample, error) {
	resp, err := httpClient.PostForm(p.base+"/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r promResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %q: status %d: %w", expr, resp.StatusCode, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	switch r.Data.ResultType {
	case "vector":
		var out []promSample
		err := json.Unmarshal(r.Data.Result, &out)
		return out, err
	case "matrix":
		var out []struct {
			Metric map[string]string `json:"metric"`
		}
		if err := json.Unmarshal(r.Data.Result, &out); err != nil {
			return nil, err
		}
		res := make([]promSample, len(out))
		for i := range out {
			res[i].Metric = out[i].Metric
		}
		return res, nil
	case "scalar", "string":
		var v [2]any
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return nil, err
		}
		if s, _ := v[1].(string); s == "NaN" {
			return nil, nil
		}
		return []promSample{{Value: v}}, nil
	}
	return nil, fmt.Errorf("unknown result type %q", r.Data.ResultType)
}

// waitScrapes waits until every job has n samples of up == 1.
func (p *promServer) waitScrapes(jobs []string, n int) {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, job := range jobs {
		for {
			res, err := p.query(fmt.Sprintf(`sum_over_time(up{job=%q}[1m])`, job))
			if err == nil && len(res) == 1 {
				if f, _ := strconv.ParseFloat(fmt.Sprint(res[0].Value[1]), 64); f >= float64(n) {
					break
				}
			}
			if time.Now().After(deadline) {
				tg, _ := httpClient.Get(p.base + "/api/v1/targets")
				var body []byte
				if tg != nil {
					body, _ = io.ReadAll(tg.Body)
					tg.Body.Close()
				}
				p.t.Fatalf("prometheus: job %s has not had %d successful scrapes within a minute (last %v, %v); targets: %s", job, n, res, err, tail(string(body), 4000))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// promtoolCheckExprs checks that every expression parses, as recording
// rules under promtool check rules; on failure each one is checked alone to
// name the culprits.
func promtoolCheckExprs(t *testing.T, exprs []string) []string {
	t.Helper()
	promtool := hostBinary(t, "", "prometheus", "promtool")
	write := func(es []string) string {
		type rule struct {
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		}
		var rules []rule
		for i, e := range es {
			rules = append(rules, rule{Record: fmt.Sprintf("dashboard_expr_%d", i), Expr: e})
		}
		b, err := yaml.Marshal(map[string]any{"groups": []map[string]any{{"name": "dashboard", "rules": rules}}})
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.CreateTemp(t.TempDir(), "exprs-*.yaml")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		return f.Name()
	}
	if out, err := exec.Command(promtool, "check", "rules", write(exprs)).CombinedOutput(); err == nil {
		return nil
	} else {
		t.Logf("promtool check rules on all %d expressions: %v\n%s", len(exprs), err, tail(string(out), 4000))
	}
	var bad []string
	for _, e := range exprs {
		if out, err := exec.Command(promtool, "check", "rules", write([]string{e})).CombinedOutput(); err != nil {
			bad = append(bad, fmt.Sprintf("%s\n    promtool: %s", e, strings.TrimSpace(string(out))))
		}
	}
	return bad
}

// dashboardExprs returns every targets[].expr of the dashboard's panels,
// rows' panels included, in order, without duplicates.
func dashboardExprs(t *testing.T, path string) (exprs []string, titles map[string]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		missing(t, "dashboard fixture: %v", err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	titles = map[string]string{}
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("%s: panel: %v", path, err)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					continue
				}
				if _, seen := titles[tg.Expr]; !seen {
					titles[tg.Expr] = p.Title
					exprs = append(exprs, tg.Expr)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return exprs, titles
}

var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)`)

// fillTemplate replaces Grafana's variables ($x, ${x}, ${x:fmt}, [[x]]).
// Unknown variables are returned so the test can name them.
func fillTemplate(expr string, vars map[string]string) (string, []string) {
	var unknown []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sm := grafanaVar.FindStringSubmatch(m)
		name := sm[1] + sm[2] + sm[3]
		if v, ok := vars[name]; ok {
			return v
		}
		unknown = append(unknown, m)
		return m
	})
	return out, unknown
}

// alertProbes are, per alert of testdata/node-alerts.yaml, its expression
// without the threshold comparisons: the parts that select data. Each must
// return data for vigil whenever it does for node_exporter.
var alertProbes = map[string]struct {
	probes []string
	na     string // why the alert does not apply to vigil, if it does not
}{
	"NodeFilesystemSpaceFillingUp": {probes: []string{
		`node_filesystem_avail_bytes{fstype!="",mountpoint!=""} / node_filesystem_size_bytes{fstype!="",mountpoint!=""} * 100`,
		`predict_linear(node_filesystem_avail_bytes{fstype!="",mountpoint!=""}[6h], 24*60*60)`,
		`node_filesystem_readonly{fstype!="",mountpoint!=""}`,
	}},
	"NodeFilesystemAlmostOutOfSpace": {probes: []string{
		`node_filesystem_avail_bytes{fstype!="",mountpoint!=""} / node_filesystem_size_bytes{fstype!="",mountpoint!=""} * 100`,
		`node_filesystem_readonly{fstype!="",mountpoint!=""}`,
	}},
	"NodeFilesystemFilesFillingUp": {probes: []string{
		`node_filesystem_files_free{fstype!="",mountpoint!=""} / node_filesystem_files{fstype!="",mountpoint!=""} * 100`,
		`predict_linear(node_filesystem_files_free{fstype!="",mountpoint!=""}[6h], 24*60*60)`,
	}},
	"NodeFilesystemAlmostOutOfFiles": {probes: []string{
		`node_filesystem_files_free{fstype!="",mountpoint!=""} / node_filesystem_files{fstype!="",mountpoint!=""} * 100`,
	}},
	"NodeNetworkReceiveErrs":             {probes: []string{`rate(node_network_receive_errs_total[2m]) / rate(node_network_receive_packets_total[2m])`}},
	"NodeNetworkTransmitErrs":            {probes: []string{`rate(node_network_transmit_errs_total[2m]) / rate(node_network_transmit_packets_total[2m])`}},
	"NodeHighNumberConntrackEntriesUsed": {probes: []string{`node_nf_conntrack_entries / node_nf_conntrack_entries_limit`}},
	"NodeTextFileCollectorScrapeError":   {probes: []string{`node_textfile_scrape_error`}},
	"NodeClockSkewDetected":              {probes: []string{`node_timex_offset_seconds`, `deriv(node_timex_offset_seconds[5m])`}},
	"NodeClockNotSynchronising":          {probes: []string{`min_over_time(node_timex_sync_status[5m])`, `node_timex_maxerror_seconds`}},
	"NodeRAIDDegraded": {probes: []string{
		`node_md_disks_required{device=~"(/dev/)?(mmcblk.p.+|nvme.+|rbd.+|sd.+|vd.+|xvd.+|dm-.+|md.+|dasd.+)"} - ignoring (state) (node_md_disks{state="active",device=~"(/dev/)?(mmcblk.p.+|nvme.+|rbd.+|sd.+|vd.+|xvd.+|dm-.+|md.+|dasd.+)"})`,
	}},
	"NodeRAIDDiskFailure":        {probes: []string{`node_md_disks{state="failed",device=~"(/dev/)?(mmcblk.p.+|nvme.+|rbd.+|sd.+|vd.+|xvd.+|dm-.+|md.+|dasd.+)"}`}},
	"NodeFileDescriptorLimit":    {probes: []string{`node_filefd_allocated * 100 / node_filefd_maximum`}},
	"NodeCPUHighUsage":           {probes: []string{`sum without(mode) (avg without (cpu) (rate(node_cpu_seconds_total{mode!~"idle|iowait"}[2m]))) * 100`}},
	"NodeSystemSaturation":       {probes: []string{`node_load1 / count without (cpu, mode) (node_cpu_seconds_total{mode="idle"})`}},
	"NodeMemoryMajorPagesFaults": {probes: []string{`rate(node_vmstat_pgmajfault[5m])`}},
	"NodeMemoryHighUtilization":  {probes: []string{`100 - (node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100)`}},
	"NodeDiskIOSaturation": {probes: []string{
		`rate(node_disk_io_time_weighted_seconds_total{device=~"(/dev/)?(mmcblk.p.+|nvme.+|rbd.+|sd.+|vd.+|xvd.+|dm-.+|md.+|dasd.+)"}[5m])`,
	}},
	"NodeOutOfMemoryKills":     {probes: []string{`increase(node_vmstat_oom_kill[30m])`}},
	"NodeSystemdServiceFailed": {na: "needs the systemd collector (D-Bus), off by default upstream; this test runs node_exporter with --no-collector.systemd"},
}

// alertRulesFile is the node-mixin rules file the test checks and loads.
func alertRulesFile() string {
	return filepath.Join(repoRoot, "integration", "testdata", "node-alerts.yaml")
}

// alertNames lists the alerts of the rules file.
func alertNames(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	seen := map[string]bool{}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !seen[r.Alert] {
				seen[r.Alert] = true
				out = append(out, r.Alert)
			}
		}
	}
	return out
}

// TestHostAlertRules checks the node-mixin rules file with promtool and that
// the test has probes for exactly its alerts.
func TestHostAlertRules(t *testing.T) {
	promtool := hostBinary(t, "", "prometheus", "promtool")
	file := alertRulesFile()
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", file, err, out)
	}
	names := alertNames(t, file)
	for _, n := range names {
		if _, ok := alertProbes[n]; !ok {
			t.Errorf("alert %s of %s has no entry in alertProbes", n, file)
		}
	}
	for n := range alertProbes {
		found := false
		for _, m := range names {
			found = found || m == n
		}
		if !found {
			t.Errorf("alertProbes has %s, which %s lacks", n, file)
		}
	}
}

// jobsWithData runs expr and returns the set of job labels in the result.
func (p *promServer) jobsWithData(expr string) (map[string]bool, error) {
	res, err := p.query(expr)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, s := range res {
		out[s.Metric["job"]] = true
	}
	return out, nil
}

// TestHostPrometheus scrapes node_exporter (job "node") and vigil (job
// "vigil") with a real Prometheus every second, then checks that every
// query of dashboard 1860 and every node-mixin alert's data-selecting part
// that returns data for node_exporter also does for vigil.
func TestHostPrometheus(t *testing.T) {
	needVigil(t)
	nodeExporterBin(t)
	hostBinary(t, "", "prometheus", "prometheus")
	hostBinary(t, "", "prometheus", "promtool")
	dashboard := fixtures.Path(t, filepath.Join("grafana", "node-exporter-full-1860.json"))
	exprs, titles := dashboardExprs(t, dashboard)
	textDir := hostTextDir(t)

	// node_exporter as its users run it: Debian's defaults brought back to
	// upstream's (lo counted, systemd off).
	ne := startNodeExporter(t, "node_exporter", append(nodeExporterArgs(textDir), "--no-collector.systemd")...)
	v := startHostVigil(t, textDir)
	rules := alertRulesFile()
	prom := startPrometheus(t, map[string]string{"node": ne.addr, "vigil": v.addr}, rules)
	prom.waitScrapes([]string{"node", "vigil"}, 8)

	t.Run("Dashboard1860", func(t *testing.T) {
		// The dashboard's variables: job, then nodename from
		// node_uname_info, then instance (named "node").
		nodename := func(job string) string {
			res, err := prom.query(fmt.Sprintf(`node_uname_info{job=%q}`, job))
			if err != nil || len(res) == 0 {
				return ""
			}
			return res[0].Metric["nodename"]
		}
		vars := func(job, instance string) map[string]string {
			return map[string]string{
				"job": job, "node": instance, "instance": instance, "nodename": nodename(job),
				"ds_prometheus": "prometheus",
				// Grafana: max($__interval + scrape interval, 4 * scrape interval).
				"__rate_interval": "4s", "__interval": "1s", "__interval_ms": "1000",
				"__range": "1m", "__range_s": "60", "__range_ms": "60000",
			}
		}
		neVars, vVars := vars("node", ne.addr), vars("vigil", v.addr)
		if neVars["nodename"] == "" {
			t.Fatal(`node_uname_info{job="node"} has no nodename: node_exporter side broken`)
		}
		// The variable queries themselves: without them Grafana shows
		// nothing at all.
		for _, q := range []string{
			`node_uname_info{job="vigil"}`,
			fmt.Sprintf(`node_uname_info{job="vigil", nodename=%q}`, vVars["nodename"]),
		} {
			if res, err := prom.query(q); err != nil || len(res) == 0 {
				t.Errorf("template variable query %s returns nothing (%v): the whole dashboard would be empty for vigil", q, err)
			}
		}

		var filled []string
		type pair struct{ raw, ne, vigil string }
		var pairs []pair
		for _, e := range exprs {
			a, u1 := fillTemplate(e, neVars)
			b, u2 := fillTemplate(e, vVars)
			if len(u1)+len(u2) > 0 {
				t.Errorf("expression uses unknown template variables %v: %s", append(u1, u2...), e)
				continue
			}
			filled = append(filled, a)
			pairs = append(pairs, pair{e, a, b})
		}
		if bad := promtoolCheckExprs(t, filled); len(bad) > 0 {
			t.Errorf("%d dashboard expressions do not parse:\n  %s", len(bad), strings.Join(bad, "\n  "))
		}

		var failing []pair
		withData := 0
		for _, p := range pairs {
			a, err := prom.query(p.ne)
			if err != nil {
				t.Errorf("query failed for node_exporter: %s: %v", p.ne, err)
				continue
			}
			if len(a) == 0 {
				continue
			}
			withData++
			if b, err := prom.query(p.vigil); err != nil || len(b) == 0 {
				failing = append(failing, p)
			}
		}
		// Rates and comparisons may miss a scrape: ask again before
		// calling an expression empty.
		for retry := 0; retry < 3 && len(failing) > 0; retry++ {
			time.Sleep(1500 * time.Millisecond)
			var still []pair
			for _, p := range failing {
				if b, err := prom.query(p.vigil); err != nil || len(b) == 0 {
					still = append(still, p)
				}
			}
			failing = still
		}
		t.Logf("dashboard 1860: %d distinct expressions, %d return data for node_exporter, %d of those none for %s", len(pairs), withData, len(failing), v.name)
		if withData < len(pairs)/2 {
			t.Errorf("only %d of %d expressions return data for node_exporter: the setup itself is broken", withData, len(pairs))
		}
		if len(failing) > 0 {
			var b strings.Builder
			for _, p := range failing {
				_, err := prom.query(p.vigil)
				fmt.Fprintf(&b, "\n  [%s] %s", titles[p.raw], strings.Join(strings.Fields(p.vigil), " "))
				if err != nil {
					fmt.Fprintf(&b, "\n      error: %v", err)
				}
			}
			t.Errorf("%d dashboard 1860 expressions return data for node_exporter but none for %s:%s", len(failing), v.name, b.String())
		}
	})

	t.Run("Alerts", func(t *testing.T) {
		var names []string
		for n := range alertProbes {
			names = append(names, n)
		}
		sort.Strings(names)
		var failing, vacuous []string
		for _, n := range names {
			ap := alertProbes[n]
			if ap.na != "" {
				t.Logf("alert %s: not applicable: %s", n, ap.na)
				continue
			}
			for _, probe := range ap.probes {
				var jobs map[string]bool
				var err error
				for try := 0; try < 3; try++ {
					jobs, err = prom.jobsWithData(probe)
					if err != nil || !jobs["node"] || jobs["vigil"] {
						break
					}
					time.Sleep(1500 * time.Millisecond)
				}
				switch {
				case err != nil:
					failing = append(failing, fmt.Sprintf("%s: %s: %v", n, probe, err))
				case !jobs["node"]:
					vacuous = append(vacuous, n+": "+probe)
				case !jobs["vigil"]:
					failing = append(failing, fmt.Sprintf("%s: %s", n, probe))
				}
			}
		}
		if len(vacuous) > 0 {
			t.Logf("no data for node_exporter either on this host (nothing to compare):\n  %s", strings.Join(vacuous, "\n  "))
		}
		if len(failing) > 0 {
			t.Errorf("%d alert expressions return data for node_exporter but none for %s:\n  %s", len(failing), v.name, strings.Join(failing, "\n  "))
		}

		// Prometheus evaluates the rules file itself: every rule healthy.
		resp, err := httpClient.Get(prom.base + "/api/v1/rules")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Groups []struct {
					Name  string `json:"name"`
					Rules []struct {
						Name      string `json:"name"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				n++
				if rule.Health != "ok" {
					t.Errorf("rule %s/%s: health %q: %s", g.Name, rule.Name, rule.Health, rule.LastError)
				}
			}
		}
		if n == 0 {
			t.Errorf("prometheus loaded no rules from %s", rules)
		}
	})
}

func TestHostFillTemplate(t *testing.T) {
	vars := map[string]string{"job": "vigil", "node": "127.0.0.1:9100", "__rate_interval": "4s"}
	for _, c := range []struct{ in, want, unknown string }{
		{`rate(x{instance="$node",job="$job"}[$__rate_interval])`, `rate(x{instance="127.0.0.1:9100",job="vigil"}[4s])`, ""},
		{`x{job="${job}",i="${node:raw}"}`, `x{job="vigil",i="127.0.0.1:9100"}`, ""},
		{`x{job="[[job]]"}`, `x{job="vigil"}`, ""},
		{`x{a="$other"}`, `x{a="$other"}`, "$other"},
	} {
		got, unknown := fillTemplate(c.in, vars)
		if got != c.want || strings.Join(unknown, ",") != c.unknown {
			t.Errorf("fillTemplate(%q) = %q, unknown %v; want %q, unknown %q", c.in, got, unknown, c.want, c.unknown)
		}
	}
}
