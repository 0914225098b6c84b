package integration

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
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
// 1,000 numbered lines per second each for 60 s, and
// every line of every container must be stored exactly once, in order,
// under its own tenant and no other.
//
// VictoriaLogs stores a Loki push under the AccountID its X-Scope-OrgID
// names and accepts only numeric tenants, so the tenants are "1", "2" and
// "3" (container label tenant=1/2/3), and the default tenant is "9".
// The push timeout is long: a push that times out on a loaded machine after
// VictoriaLogs stored it is retried and stored twice, as at-least-once
// delivery allows, and this test is about vigil's own bookkeeping.
func TestDockerTenantsUnderLoad(t *testing.T) {
	const (
		containers = 20
		rate       = 1000 // lines per second per container
	)
	tenants := []string{"1", "2", "3"}
	const defaultTenant = "9"
	const load = 60 * time.Second
	lines := int(load.Seconds()) * rate

	vl, run, img, names := dockerLoadSetup(t)

	dir := t.TempDir()
	cfg := dockerConfig(t, dir, run, vl.PushURL(), fmt.Sprintf(`
    refresh_interval: 1s
    tenant_label: tenant
    default_tenant: %q
    labels:
      job: loadtest`, defaultTenant), `
    timeout: 2m`, "")
	v := startVigil(t, cfg)

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
		*names = append(*names, s.name)
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
		err := eachLoggenLine(views[tn], func(l loggenLine) {
			total++
			if l.prefix == "" {
				fail("tenant %s: line %q is not loggen's", tn, l.msg)
				return
			}
			s, ok := byPrefix[l.prefix]
			if !ok {
				fail("tenant %s: line %q of no container of this test", tn, l.msg)
				return
			}
			if s.tenant != tn {
				fail("tenant %s holds line %q of container %s, whose tenant is %q", tn, l.msg, s.name, s.tenant)
			}
			if l.container != s.name {
				fail("line %q carries container=%q, want %q", l.msg, l.container, s.name)
			}
			got[l.prefix] = append(got[l.prefix], entry{l.time, l.seq})
		})
		if err != nil {
			t.Fatalf("reading tenant %s back: %v", tn, err)
		}
		if want[tn] != total {
			fail("tenant %s holds %d entries, want %d", tn, total, want[tn])
		}
		for p, es := range got {
			s := byPrefix[p]
			if problem := exactlyOnceInOrder(es, s.lines); problem != "" {
				fail("container %s (tenant %s): %s", s.name, tn, problem)
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

// entry is one stored loggen line: its stored time and sequence number.
type entry struct {
	time int64
	seq  int
}

// loggenLine is a line of the test log generator read back from
// VictoriaLogs: "<prefix> run=<run> seq=<n>".
type loggenLine struct {
	prefix, msg, container string
	seq                    int
	time                   int64
}

// eachLoggenLine reads every entry of a tenant back; a line that is not
// loggen's comes with an empty prefix.
func eachLoggenLine(view *victorialogs.Tenant, fn func(loggenLine)) error {
	return view.Each("* | fields _time, _msg, container", func(raw []byte) error {
		var row struct {
			Time      string `json:"_time"`
			Msg       string `json:"_msg"`
			Container string `json:"container"`
		}
		if err := json.Unmarshal(raw, &row); err != nil {
			return err
		}
		l := loggenLine{msg: row.Msg, container: row.Container}
		if f := strings.Fields(row.Msg); len(f) == 3 && strings.HasPrefix(f[2], "seq=") {
			seq, err := strconv.Atoi(strings.TrimPrefix(f[2], "seq="))
			ts, terr := time.Parse(time.RFC3339Nano, row.Time)
			if err == nil && terr == nil {
				l.prefix, l.seq, l.time = f[0], seq, ts.UnixNano()
			}
		}
		fn(l)
		return nil
	})
}

// exactlyOnceInOrder checks one container's stored lines: sorted by the
// time each was stored with (the Docker timestamp), they are seq 0, 1, 2,
// ... n-1, each exactly once. Equal times keep the seq order. It returns
// what is wrong, or "".
func exactlyOnceInOrder(es []entry, n int) string {
	slices.SortFunc(es, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.time, b.time), cmp.Compare(a.seq, b.seq))
	})
	for i, e := range es {
		if e.seq != i {
			what := fmt.Sprintf("seq=%d is missing", i)
			if e.seq < i {
				what = "it is stored twice or out of time order"
			}
			return fmt.Sprintf("entry %d in time order is seq=%d: %s", i, e.seq, what)
		}
	}
	if len(es) != n {
		return fmt.Sprintf("%d lines stored, want %d", len(es), n)
	}
	return ""
}

// dockerLoadSetup starts what the docker load tests need: the Engine (or a
// skip), VictoriaLogs, a run id for labels and names, and the generator's
// image. The containers whose names the test adds to names are removed at
// the end, pass or fail, before the image.
func dockerLoadSetup(t *testing.T) (vl *victorialogs.Server, run, img string, names *[]string) {
	t.Helper()
	run, img, names = dockerSetup(t)
	return victorialogs.Start(t), run, img, names
}

// dockerSetup needs vigil and the Engine, and returns a run id, the
// loggen image and the list of container names removed at the end.
func dockerSetup(t *testing.T) (run, img string, names *[]string) {
	t.Helper()
	needVigil(t)
	dockertest.Need(t)
	run = fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	img = dockertest.Image(t, "github.com/vigilhq/vigil/sources/docker/testdata/loggen")
	names = new([]string)
	t.Cleanup(func() {
		if len(*names) > 0 {
			_ = exec.Command("docker", append([]string{"rm", "-f"}, *names...)...).Run()
		}
	})
	return run, img, names
}

// dockerConfig writes a config in dir with a docker source following the
// containers labelled vigil.test=run into one loki sink at url. source and
// sink are more keys of the source and the sink, top more top-level
// blocks; each starts with a newline.
func dockerConfig(t *testing.T, dir, run, url, source, sink, top string) string {
	t.Helper()
	return writeFile(t, dir, "vigil.yaml", fmt.Sprintf(`server:
  log_level: warn
positions:
  filename: %s
  sync_period: 1s%s
sources:
  containers:
    type: docker
    filters:
      - name: label
        values: [%s]%s
sinks:
  loki:
    type: loki
    url: %s%s
pipelines:
  docker:
    sources: [containers]
    sinks: [loki]
`, filepath.Join(dir, "positions.yaml"), top, yq("vigil.test="+run), source, url, sink))
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestDockerVigilRestarts restarts the real vigil mid-stream (SIGTERM and
// start again at once), then stops it for 30 s while the
// containers keep writing, and starts it again: every line of every
// container is stored exactly once, in order.
func TestDockerVigilRestarts(t *testing.T) {
	const (
		containers = 3
		rate       = 200
	)
	const pause = 30 * time.Second
	lines := int((10*time.Second + pause + 10*time.Second).Seconds()) * rate

	vl, run, img, names := dockerLoadSetup(t)
	dir := t.TempDir()
	cfg := dockerConfig(t, dir, run, vl.PushURL(), `
    default_tenant: "1"`, "", "")

	v := startVigil(t, cfg)
	for i := range containers {
		name := fmt.Sprintf("vigiltest-restarts-%s-%d", run, i)
		*names = append(*names, name)
		dockertest.Docker(t, "run", "-d", "--name", name, "--label", "vigil.test="+run, img,
			"-n", strconv.Itoa(lines), "-rate", strconv.Itoa(rate), "-prefix", fmt.Sprintf("r%d", i), "-hold", "30m")
	}
	stop := func() {
		t.Helper()
		v.signal(syscall.SIGTERM)
		if code := v.wait(exitTimeout); code != 0 {
			t.Fatalf("vigil exited with %d after SIGTERM", code)
		}
	}
	time.Sleep(5 * time.Second)
	stop()
	v = startVigil(t, cfg) // a restart mid-stream
	time.Sleep(5 * time.Second)
	stop()
	t.Logf("vigil stopped for %s while the containers write", pause)
	time.Sleep(pause)
	v = startVigil(t, cfg)

	view, err := vl.Tenant("1")
	if err != nil {
		t.Fatal(err)
	}
	want := containers * lines
	var got int
	waitFor(t, time.Duration(lines/rate)*time.Second+2*time.Minute, func() string {
		return fmt.Sprintf("%d entries stored, want %d (err %v)", got, want, err)
	}, func() bool {
		got, err = view.Count("*")
		return err == nil && got >= want
	})
	time.Sleep(2 * time.Second) // a late duplicate would arrive now
	stored := map[string][]entry{}
	if err := eachLoggenLine(view, func(l loggenLine) {
		if l.prefix == "" {
			t.Errorf("line %q is not loggen's", l.msg)
			return
		}
		stored[l.prefix] = append(stored[l.prefix], entry{l.time, l.seq})
	}); err != nil {
		t.Fatal(err)
	}
	for i := range containers {
		p := fmt.Sprintf("r%d", i)
		if problem := exactlyOnceInOrder(stored[p], lines); problem != "" {
			t.Errorf("container %s: %s", (*names)[i], problem)
		}
	}
	stop()
}

// The users' Promtail config for Docker (examples/promtail-docker.yaml)
// runs unchanged on the real binary: compose containers are labelled
// container, stream, service and tenant by its relabel rules, and pushed
// under their project's tenant, with no label of vigil's own added.
func TestPromtailDockerExample(t *testing.T) {
	vl, run, img, names := dockerLoadSetup(t)
	raw, err := os.ReadFile(filepath.Join(repoRoot, "examples", "promtail-docker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := strings.NewReplacer(
		"http://127.0.0.1:3100/loki/api/v1/push", vl.PushURL(),
		"/var/lib/vigil/positions.yaml", filepath.Join(dir, "positions.yaml"),
	).Replace(string(raw))
	if cfg == string(raw) {
		t.Fatal("the example's URL or positions path changed; update this test")
	}
	v := startVigil(t, writeFile(t, dir, "promtail.yaml", cfg))

	// VictoriaLogs takes numeric tenants only: the compose project is "7".
	name := "vigiltest-promtail-" + run
	*names = append(*names, name)
	dockertest.Docker(t, "run", "-d", "--name", name, "--label", "com.docker.compose.project=7",
		"--label", "com.docker.compose.service=web", img, "-n", "40", "-stderr", "-prefix", "p"+run, "-hold", "30m")
	view, err := vl.Tenant("7")
	if err != nil {
		t.Fatal(err)
	}
	var got int
	waitFor(t, deliveryTimeout, func() string { return fmt.Sprintf("tenant 7 holds %d lines, want 40 (err %v)", got, err) }, func() bool {
		got, err = view.Count(`container:=` + strconv.Quote(name))
		return err == nil && got >= 40
	})
	streams := map[string]int{}
	if err := view.Each(`container:=`+strconv.Quote(name)+` | fields _stream, stream`, func(raw []byte) error {
		var row struct {
			Stream string `json:"_stream"`
			S      string `json:"stream"`
		}
		if err := json.Unmarshal(raw, &row); err != nil {
			return err
		}
		streams[row.S]++
		want := fmt.Sprintf(`{container=%q,service="web",stream=%q,tenant="7"}`, name, row.S)
		if row.Stream != want {
			t.Errorf("stream labels %s, want %s", row.Stream, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if streams["stdout"] != 20 || streams["stderr"] != 20 {
		t.Errorf("lines per stream %v, want 20 stdout and 20 stderr", streams)
	}
	v.signal(syscall.SIGTERM)
	v.wait(exitTimeout)
}

// One tenant's Loki pushes fail for good (429 on every push, retried
// forever), while it writes far more than vigil's whole buffer: the other
// tenant's lines all arrive meanwhile, and none crosses tenants.
func TestDockerFailingTenantIsolated(t *testing.T) {
	const lines = 20000 // about 5 MB each, with 1 MiB of buffer
	run, img, names := dockerSetup(t)
	r := newLokiReceiver(t)
	r.setTenantDown("1", &fault{kind: faultStatus, status: http.StatusTooManyRequests, body: "tenant 1 is over its rate limit"})
	dir := t.TempDir()
	cfg := dockerConfig(t, dir, run, r.pushURL(), `
    tenant_label: tenant`, `
    batchwait: 100ms
    backoff_config: {min_period: 50ms, max_period: 200ms, max_retries: 0}`, `
buffer:
  max_bytes: 1MiB`)
	v := startVigil(t, cfg)
	for _, tn := range []string{"1", "2"} {
		name := "vigiltest-failing-" + run + "-t" + tn
		*names = append(*names, name)
		dockertest.Docker(t, "run", "-d", "--name", name, "--label", "vigil.test="+run, "--label", "tenant="+tn, img,
			"-n", strconv.Itoa(lines), "-size", "250", "-prefix", "t"+tn, "-hold", "30m")
	}
	count := func() (ok, bad int, faulted1 int) {
		accepted, faulted, _ := r.snapshot()
		for _, e := range accepted {
			switch {
			case e.Tenant == "2" && strings.HasPrefix(e.Line, "t2 "):
				ok++
			default:
				bad++
			}
		}
		for _, f := range faulted {
			for _, e := range f.entries {
				if e.Tenant == "1" && strings.HasPrefix(e.Line, "t1 ") {
					faulted1++
				} else {
					bad++
				}
			}
		}
		return
	}
	var ok, bad, faulted1 int
	waitFor(t, 2*time.Minute, func() string {
		return fmt.Sprintf("tenant 2: %d of %d lines accepted while tenant 1's pushes fail (%d lines refused)", ok, lines, faulted1)
	}, func() bool {
		ok, bad, faulted1 = count()
		return ok >= lines
	})
	if bad != 0 {
		t.Errorf("%d lines pushed under the wrong tenant or accepted for the failing one", bad)
	}
	if faulted1 == 0 {
		t.Error("tenant 1 was never pushed: the test did not test anything")
	}
	// Tenant 1 holds what it could take of its share, at most half of the
	// 1 MiB buffer (a docker batch, up to 256 KiB of lines and their
	// labels, waits when it would not fit). The gauge says so.
	v.waitMetric("vigil_buffer_tenant_bytes", map[string]string{"tenant": "1"}, "tenant 1 to hold its share of the buffer", 30*time.Second,
		func(x float64) bool { return x > 0 && x <= 0.5*(1<<20) })
	v.signal(syscall.SIGKILL)
	v.wait(exitTimeout)
}
