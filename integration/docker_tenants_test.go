package integration

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/dockertest"
	"github.com/vigilhq/vigil/internal/victorialogs"
)

// TestDockerTenantsUnderLoad runs the real vigil with a docker source
// against a real VictoriaLogs: 20 containers over three tenants write
// 1,000 numbered lines per second each for 60 s (10 s with -short), and
// every line of every container must be stored exactly once, in order,
// under its own tenant and no other.
//
// VictoriaLogs stores a Loki push under the AccountID its X-Scope-OrgID
// names and accepts only numeric tenants, so the tenants are "1", "2" and
// "3" (container label tenant=1/2/3), and the default tenant is "9".
func TestDockerTenantsUnderLoad(t *testing.T) {
	const (
		containers = 20
		rate       = 1000 // lines per second per container
	)
	tenants := []string{"1", "2", "3"}
	const defaultTenant = "9"
	load := 60 * time.Second
	if testing.Short() {
		load = 10 * time.Second
	}
	lines := int(load.Seconds()) * rate

	dockertest.Need(t)
	vl := victorialogs.Start(t)
	bin := loadTestVigil(t)
	run := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	img := dockertest.Image(t, "github.com/vigilhq/vigil/sources/docker/testdata/loggen")

	// Containers are removed at the end, pass or fail, and before the
	// image.
	var names []string
	t.Cleanup(func() {
		if len(names) > 0 {
			_ = exec.Command("docker", append([]string{"rm", "-f"}, names...)...).Run()
		}
	})

	dir := t.TempDir()
	cfg := writeFile(t, dir, "vigil.yaml", fmt.Sprintf(`server:
  log_level: warn
positions:
  filename: %s
sources:
  containers:
    type: docker
    refresh_interval: 1s
    filters:
      - name: label
        values: [%s]
    tenant_label: tenant
    default_tenant: %q
    labels:
      job: loadtest
sinks:
  vl:
    type: loki
    url: %s
pipelines:
  docker:
    sources: [containers]
    sinks: [vl]
`, filepath.Join(dir, "positions.yaml"), yq("vigil.test="+run), defaultTenant, vl.PushURL()))
	v := spawnLoadVigil(t, bin, cfg)

	// The line prefix names the container and its tenant: "c07.t2".
	type spec struct {
		name, prefix, tenant string
		lines                int
		args                 []string
	}
	var specs []spec
	for i := range containers {
		tn := tenants[i%len(tenants)]
		p := fmt.Sprintf("c%02d.t%s", i, tn)
		specs = append(specs, spec{
			name: "vigiltest-tenants-" + run + "-" + p, prefix: p, tenant: tn, lines: lines,
			args: []string{"--label", "vigil.test=" + run, "--label", "tenant=" + tn},
		})
	}
	// One container without a tenant label goes to the default tenant;
	// one outside the filter must not be read at all.
	specs = append(specs,
		spec{name: "vigiltest-tenants-" + run + "-default", prefix: "cdf.t" + defaultTenant, tenant: defaultTenant, lines: 500,
			args: []string{"--label", "vigil.test=" + run}},
		spec{name: "vigiltest-tenants-" + run + "-outsider", prefix: "cout.tnone", lines: 500,
			args: []string{"--label", "vigil.test=other-" + run, "--label", "tenant=1"}},
	)
	for _, s := range specs {
		names = append(names, s.name)
	}
	started := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(specs))
	sem := make(chan struct{}, 4) // docker run is slow; a few at a time
	for _, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			args := append([]string{"run", "-d", "--name", s.name}, s.args...)
			args = append(args, img, "-n", strconv.Itoa(s.lines), "-rate", strconv.Itoa(rate), "-prefix", s.prefix, "-hold", "30m")
			if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
				errs <- fmt.Errorf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d containers started in %s; writing %d lines each at %d lines/s", len(specs), time.Since(started).Round(time.Millisecond), lines, rate)

	// Wait until every tenant holds its share.
	want := map[string]int{}
	for _, s := range specs {
		if s.tenant != "" {
			want[s.tenant] += s.lines
		}
	}
	views := map[string]*victorialogs.Tenant{}
	for _, tn := range append(slices.Clone(tenants), defaultTenant, "0") {
		view, err := vl.Tenant(tn)
		if err != nil {
			t.Fatal(err)
		}
		views[tn] = view
	}
	deadline := load + 3*time.Minute
	for _, tn := range append(slices.Clone(tenants), defaultTenant) {
		var got int
		var err error
		waitFor(t, deadline-time.Since(started), func() string {
			return fmt.Sprintf("tenant %s holds %d entries, want %d (err %v)", tn, got, want[tn], err)
		}, func() bool {
			if v.exited() {
				t.Fatalf("vigil exited: %v\n%s", v.err, tail(v.stderr.String(), 8<<10))
			}
			got, err = views[tn].Count("*")
			return err == nil && got >= want[tn]
		})
	}
	t.Logf("all %d lines stored %s after the first container started", sumValues(want), time.Since(started).Round(time.Millisecond))
	// A duplicate sent late would arrive now.
	time.Sleep(2 * time.Second)

	type entry struct {
		time int64
		seq  int
	}
	byPrefix := map[string]spec{}
	for _, s := range specs {
		byPrefix[s.prefix] = s
	}
	for _, tn := range append(slices.Clone(tenants), defaultTenant, "0") {
		got := map[string][]entry{}
		var bad []string
		fail := func(format string, args ...any) {
			if len(bad) < 10 {
				bad = append(bad, fmt.Sprintf(format, args...))
			}
		}
		total := 0
		err := views[tn].Each("* | fields _time, _msg, container", func(raw []byte) error {
			var row struct {
				Time      string `json:"_time"`
				Msg       string `json:"_msg"`
				Container string `json:"container"`
			}
			if err := json.Unmarshal(raw, &row); err != nil {
				return err
			}
			total++
			// "<prefix> run=<run> seq=<n>"
			f := strings.Fields(row.Msg)
			if len(f) != 3 || !strings.HasPrefix(f[2], "seq=") {
				fail("tenant %s: line %q is not loggen's", tn, row.Msg)
				return nil
			}
			s, ok := byPrefix[f[0]]
			if !ok {
				fail("tenant %s: line %q of no container of this test", tn, row.Msg)
				return nil
			}
			if s.tenant != tn {
				fail("tenant %s holds line %q of container %s, whose tenant is %q", tn, row.Msg, s.name, s.tenant)
			}
			if row.Container != s.name {
				fail("line %q carries container=%q, want %q", row.Msg, row.Container, s.name)
			}
			seq, err := strconv.Atoi(strings.TrimPrefix(f[2], "seq="))
			ts, terr := time.Parse(time.RFC3339Nano, row.Time)
			if err != nil || terr != nil {
				fail("line %q at %q: %v %v", row.Msg, row.Time, err, terr)
				return nil
			}
			got[f[0]] = append(got[f[0]], entry{ts.UnixNano(), seq})
			return nil
		})
		if err != nil {
			t.Fatalf("reading tenant %s back: %v", tn, err)
		}
		if want[tn] != total {
			fail("tenant %s holds %d entries, want %d", tn, total, want[tn])
		}
		// In order: sorted by the time each entry was stored with (the
		// Docker timestamp), a container's lines are seq 0, 1, 2, ...
		// with each exactly once. Equal times keep the seq order.
		for p, es := range got {
			slices.SortFunc(es, func(a, b entry) int {
				return cmp.Or(cmp.Compare(a.time, b.time), cmp.Compare(a.seq, b.seq))
			})
			s := byPrefix[p]
			for i, e := range es {
				if e.seq != i {
					what := fmt.Sprintf("seq=%d is missing", i)
					if e.seq < i {
						what = "it is stored twice or out of time order"
					}
					fail("container %s (tenant %s): entry %d in time order is seq=%d: %s", s.name, tn, i, e.seq, what)
					break
				}
			}
			if len(es) != s.lines {
				fail("container %s (tenant %s): %d lines stored, want %d", s.name, tn, len(es), s.lines)
			}
		}
		for _, s := range specs {
			if s.tenant == tn && len(got[s.prefix]) == 0 {
				fail("container %s: no line under its tenant %s", s.name, tn)
			}
		}
		for _, b := range bad {
			t.Error(b)
		}
		t.Logf("tenant %s: %d entries from %d containers checked", tn, total, len(got))
	}
	if t.Failed() {
		return
	}
	v.signal(syscall.SIGTERM)
	if code := v.wait(exitTimeout); code != 0 {
		t.Errorf("vigil exited with %d after SIGTERM", code)
	}
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

var (
	shortVigilOnce sync.Once
	shortVigilBin  string
	shortVigilErr  error
)

// loadTestVigil is the vigil binary TestMain built, or under -short (where
// TestMain builds none, but the load test still runs for 10 s) one built
// here.
func loadTestVigil(t *testing.T) string {
	t.Helper()
	if vigilBin != "" {
		return vigilBin
	}
	shortVigilOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-loadtest-")
		if err != nil {
			shortVigilErr = err
			return
		}
		bin := filepath.Join(dir, "vigil")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/vigil")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			shortVigilErr = fmt.Errorf("building vigil: %v\n%s", err, out)
			return
		}
		shortVigilBin = bin
	})
	if shortVigilErr != nil {
		t.Fatal(shortVigilErr)
	}
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(shortVigilBin)) })
	return shortVigilBin
}

// spawnLoadVigil starts bin like launchVigil does, without the -short
// skip, and waits until it is ready.
func spawnLoadVigil(t *testing.T, bin, cfg string) *vigilProc {
	t.Helper()
	for attempt := 0; ; attempt++ {
		addr := freeAddr(t)
		v := &vigilProc{
			t: t, name: fmt.Sprintf("vigil#%d", instances.Add(1)), addr: addr,
			stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{}),
		}
		v.cmd = exec.Command(bin, "-config.file", cfg, "-web.listen-address", addr)
		v.cmd.Stdout, v.cmd.Stderr = v.stdout, v.stderr
		v.cmd.Env = append(os.Environ(), "LOKI_URL=", "VIGIL_DATA_DIR="+t.TempDir())
		if err := v.cmd.Start(); err != nil {
			t.Fatalf("starting vigil: %v", err)
		}
		go func() {
			v.err = v.cmd.Wait()
			v.state = v.cmd.ProcessState
			close(v.done)
		}()
		t.Cleanup(func() {
			if !v.exited() {
				_ = v.cmd.Process.Kill()
				<-v.done
			}
			if t.Failed() {
				t.Logf("%s stderr:\n%s", v.name, tail(v.stderr.String(), 32<<10))
			}
		})
		err := v.waitReady(startTimeout)
		if err == nil {
			return v
		}
		if attempt >= 3 || !strings.Contains(v.stderr.String(), "address already in use") {
			t.Fatalf("%s did not become ready: %v", v.name, err)
		}
	}
}
