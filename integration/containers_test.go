package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/dockertest"
)

func dockerRun(t *testing.T, args ...string) string {
	t.Helper()
	return dockertest.Docker(t, args...)
}

// burnerImage is sources/containers' test workload in a FROM scratch image.
func burnerImage(t *testing.T) string {
	t.Helper()
	return dockertest.Image(t, "github.com/vigilhq/vigil/sources/containers/testdata/burner")
}

// promQuery evaluates an instant query on Prometheus's HTTP API.
func promQuery(base, expr string) ([]map[string]string, error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.Status, r.Error)
	}
	var out []map[string]string
	for _, s := range r.Data.Result {
		m := s.Metric
		if len(s.Value) == 2 {
			m["__value__"] = fmt.Sprint(s.Value[1])
		}
		out = append(out, m)
	}
	return out, nil
}

// TestContainersPrometheus has Debian's Prometheus scrape the real vigil
// every second while containers burn CPU, hold memory and send traffic,
// and evaluates the container dashboards' and alert rules' usual
// expressions. The rate windows are [15s] rather than [1m] so the test
// takes seconds, not minutes; with a 1s interval they hold 15 samples.
// It also checks vigil's RSS with host and container metrics on.
func TestContainersPrometheus(t *testing.T) {
	needVigil(t)
	dockertest.Need(t)
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		promBin = "/usr/bin/prometheus"
		if _, err := os.Stat(promBin); err != nil {
			missing(t, "prometheus not installed (Debian package prometheus): %v", err)
		}
	}
	img := burnerImage(t)
	prefix := fmt.Sprintf("vigiltest-int-%d-", os.Getpid())
	names := []string{prefix + "cpu", prefix + "srv", prefix + "cli", prefix + "idle"}
	t.Cleanup(func() { _ = exec.Command("docker", append([]string{"rm", "-f"}, names...)...).Run() })
	dockerRun(t, "run", "-d", "--name", names[0], "--label", "vigil.tenant=acme", img, "-cpu", "-mem", "48")
	dockerRun(t, "run", "-d", "--name", names[1], "--label", "vigil.tenant=globex", img, "-serve", ":9000")
	srvIP := dockerRun(t, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", names[1])
	dockerRun(t, "run", "-d", "--name", names[2], "--label", "vigil.tenant=globex", img, "-send", srvIP+":9000", "-sendmib", "1", "-sendloop")
	dockerRun(t, "run", "-d", "--name", names[3], img)

	cfg := writeFile(t, t.TempDir(), "vigil.yaml", `
sources:
  host:
    type: host
  containers:
    type: containers
    tenant_label: vigil.tenant
    default_tenant: infra
`)
	v := startVigil(t, cfg)

	promDir := t.TempDir()
	promAddr := freeAddr(t)
	promCfg := writeFile(t, promDir, "prometheus.yml", fmt.Sprintf(`
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: vigil
    static_configs:
      - targets: [%q]
`, v.addr))
	prom := exec.Command(promBin, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(promDir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	promOut := &syncBuffer{}
	prom.Stdout, prom.Stderr = promOut, promOut
	if err := prom.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	t.Cleanup(func() {
		_ = prom.Process.Kill()
		_ = prom.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", tail(promOut.String(), 4000))
		}
	})
	base := "http://" + promAddr
	waitFor(t, startTimeout, func() string { return "prometheus ready" }, func() bool {
		code, _, err := httpGet(base + "/-/ready")
		return err == nil && code == http.StatusOK
	})

	ours := func(rs []map[string]string) map[string]string {
		out := map[string]string{}
		for _, r := range rs {
			if strings.HasPrefix(r["name"], prefix) {
				out[r["name"]] = r["__value__"]
			}
		}
		return out
	}
	type check struct {
		expr string
		ok   func(rs []map[string]string) bool
	}
	checks := []check{
		{`rate(container_cpu_usage_seconds_total{name=~".+"}[15s])`, func(rs []map[string]string) bool {
			m := ours(rs)
			var cpu float64
			fmt.Sscan(m[names[0]], &cpu)
			return len(m) == len(names) && cpu > 0.05 // one busy thread, on a loaded machine
		}},
		{`container_memory_working_set_bytes{name=~".+"}`, func(rs []map[string]string) bool {
			m := ours(rs)
			var ws float64
			fmt.Sscan(m[names[0]], &ws)
			return len(m) == len(names) && ws >= 48<<20
		}},
		{`rate(container_network_receive_bytes_total[15s])`, func(rs []map[string]string) bool {
			var rx float64
			fmt.Sscan(ours(rs)[names[1]], &rx)
			return rx > 100<<10 // about 1 MiB/s
		}},
		{`time() - container_last_seen`, func(rs []map[string]string) bool {
			m := ours(rs)
			for _, v := range m {
				var age float64
				fmt.Sscan(v, &age)
				if age < -1 || age > 5 {
					return false
				}
			}
			return len(m) == len(names)
		}},
		{`sum by (tenant) (rate(container_cpu_usage_seconds_total[15s]))`, func(rs []map[string]string) bool {
			seen := map[string]bool{}
			for _, r := range rs {
				seen[r["tenant"]] = true
			}
			return seen["acme"] && seen["globex"] && seen["infra"]
		}},
	}
	results := map[string][]map[string]string{}
	waitFor(t, 90*time.Second, func() string {
		var b strings.Builder
		for _, c := range checks {
			fmt.Fprintf(&b, "\n%s -> %v", c.expr, results[c.expr])
		}
		return "every expression to return data for the test containers:" + b.String()
	}, func() bool {
		all := true
		for _, c := range checks {
			rs, err := promQuery(base, c.expr)
			if err != nil {
				t.Fatalf("%s: %v", c.expr, err)
			}
			results[c.expr] = rs
			all = all && c.ok(rs)
		}
		return all
	})
	for _, c := range checks {
		t.Logf("%s:", c.expr)
		for _, r := range results[c.expr] {
			if strings.HasPrefix(r["name"], prefix) || r["name"] == "" {
				t.Logf("  %v", r)
			}
		}
	}
	// The target is healthy: no scrape failed, none took long.
	if rs, err := promQuery(base, `max_over_time(scrape_duration_seconds{job="vigil"}[1m])`); err == nil && len(rs) == 1 {
		t.Logf("longest scrape of vigil (host and container metrics): %ss", rs[0]["__value__"])
	}
	rss, err := rssBytes(v.pid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("vigil RSS with host and container metrics, %d test containers: %.1f MiB", len(names), float64(rss)/(1<<20))
	if rss > 40<<20 {
		t.Errorf("vigil RSS %.1f MiB, over the 40 MB floor", float64(rss)/(1<<20))
	}

	// A stopped container's series go stale at once.
	dockerRun(t, "stop", "-t", "1", names[3])
	waitFor(t, 10*time.Second, func() string { return "the stopped container to leave instant queries" }, func() bool {
		rs, err := promQuery(base, fmt.Sprintf(`container_last_seen{name=%q}`, names[3]))
		return err == nil && len(rs) == 0
	})
}
