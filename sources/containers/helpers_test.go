package containers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var (
	imageOnce sync.Once
	imageName string
	imageErr  error
	nameSeq   atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if imageName != "" {
		_ = exec.Command("docker", "rmi", "-f", imageName).Run()
	}
	os.Exit(code)
}

// needDocker skips without a reachable engine, except on CI, where a
// missing engine is a failure.
func needDocker(tb testing.TB) {
	tb.Helper()
	cli, err := client.New(client.WithHost(DefaultHost))
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = cli.Ping(ctx, client.PingOptions{})
		cancel()
		cli.Close()
	}
	if err == nil {
		_, err = exec.LookPath("docker")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("docker engine not reachable on CI: %v", err)
		}
		tb.Skipf("docker engine (%s) or docker CLI not reachable, skipping: %v", DefaultHost, err)
	}
}

// burnerImage builds the FROM scratch image of testdata/burner once. Its
// health check is the burner itself, so containers become healthy.
func burnerImage(tb testing.TB) string {
	tb.Helper()
	needDocker(tb)
	imageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-burner")
		if err != nil {
			imageErr = err
			return
		}
		defer os.RemoveAll(dir)
		build := exec.Command("go", "build", "-o", filepath.Join(dir, "burner"), "./testdata/burner")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			imageErr = fmt.Errorf("building burner: %v\n%s", err, out)
			return
		}
		df := "FROM scratch\nCOPY burner /burner\n" +
			"HEALTHCHECK --interval=1s --timeout=5s CMD [\"/burner\", \"-health\"]\n" +
			"ENTRYPOINT [\"/burner\"]\n"
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
			imageErr = err
			return
		}
		name := fmt.Sprintf("vigiltest-burner:%d", os.Getpid())
		if out, err := exec.Command("docker", "build", "-q", "-t", name, dir).CombinedOutput(); err != nil {
			imageErr = fmt.Errorf("docker build: %v\n%s", err, out)
			return
		}
		imageName = name
	})
	if imageErr != nil {
		tb.Fatal(imageErr)
	}
	return imageName
}

func dockerCLI(tb testing.TB, args ...string) string {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// uniqueName returns a container name with the test prefix; the container
// is removed when the test ends.
func uniqueName(tb testing.TB) string {
	name := fmt.Sprintf("vigiltest-ctr-%d-%d", os.Getpid(), nameSeq.Add(1))
	tb.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
	return name
}

// scrape is one gathered exposition, by metric name.
type scrape map[string]*dto.MetricFamily

func gather(tb testing.TB, c prometheus.Collector) scrape {
	tb.Helper()
	reg := prometheus.NewRegistry() // as vigil serves it: the series are not described
	if err := reg.Register(c); err != nil {
		tb.Fatal(err)
	}
	defer reg.Unregister(c)
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	out := scrape{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func matches(m *dto.Metric, match map[string]string) bool {
	ls := labelsOf(m)
	for k, v := range match {
		if ls[k] != v {
			return false
		}
	}
	return true
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// sum adds the values of name's series that match.
func (s scrape) sum(name string, match map[string]string) (float64, int) {
	var v float64
	n := 0
	if mf := s[name]; mf != nil {
		for _, m := range mf.Metric {
			if matches(m, match) {
				v += value(m)
				n++
			}
		}
	}
	return v, n
}

func (s scrape) series(name string, match map[string]string) []*dto.Metric {
	var out []*dto.Metric
	if mf := s[name]; mf != nil {
		for _, m := range mf.Metric {
			if matches(m, match) {
				out = append(out, m)
			}
		}
	}
	return out
}

func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
