package pipeline

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAgentReloadKeepsOldConfigOnErrorAndSwapsOnSuccess(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vigil.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`
sources: {rl_src: {type: test_chan}}
sinks: {rl_old: {type: test_hold}}
pipelines: {p: {sources: [rl_src], sinks: [rl_old]}}
`)
	a := NewAgent(quiet, func() (*Config, error) { return LoadFile(file, LoadOptions{}) })
	cfg, err := a.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(cfg); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(path string) (int, string) {
		resp, err := http.Post(srv.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/ready"); code != 200 {
		t.Fatalf("/ready %d", code)
	}
	if code, _ := get("/-/healthy"); code != 200 {
		t.Fatalf("/-/healthy %d", code)
	}
	oldSrc := testSources["rl_src"]

	// A broken config: the old graph keeps running and the reason is given.
	write("sources: {rl_src: {type: test_chan}}\nsinks: {rl_old: {type: test_hold, bogus: 1}}\npipelines: {p: {sources: [rl_src], sinks: [rl_old]}}\n")
	code, body := post("/-/reload")
	if code != http.StatusInternalServerError || !strings.Contains(body, `vigil.yaml:2:35: unknown key "bogus"`) {
		t.Fatalf("broken reload: %d %q", code, body)
	}
	emit(t, oldSrc, batchOf(nil, "still running"))
	if got := testSinks["rl_old"].snapshot(); len(got) != 1 || got[0] != "still running" {
		t.Fatalf("old graph not running after failed reload: %v", got)
	}
	testSinks["rl_old"].settleAll()
	if code, _ := get("/ready"); code != 200 {
		t.Fatal("not ready after a failed reload")
	}

	// A good config replaces it; the old sink is closed.
	write(`
sources: {rl_src: {type: test_chan}}
sinks: {rl_new: {type: test_hold}}
pipelines: {p: {sources: [rl_src], sinks: [rl_new]}}
`)
	if code, body := post("/-/reload"); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if !testSinks["rl_old"].closed {
		t.Fatal("old sink not closed after reload")
	}
	emit(t, testSources["rl_src"], batchOf(nil, "new graph"))
	if got := testSinks["rl_new"].snapshot(); len(got) != 1 {
		t.Fatalf("new graph did not receive: %v", got)
	}
	testSinks["rl_new"].settleAll()
	if code, _ := get("/-/reload"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /-/reload: %d", code)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{"promtail_config_reload_fail_total 1", "promtail_config_reload_success_total 1", "vigil_config_last_reload_successful 1", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
