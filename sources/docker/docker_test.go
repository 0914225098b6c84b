package docker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/dockertest"
	"github.com/vigilhq/vigil/pipeline"
)

// Lines arrive with their stream, the metadata-derived labels after
// relabeling, no __ labels, and the tenant from a container label or the
// default tenant.
func TestLabelsStreamsAndTenant(t *testing.T) {
	img := loggenImage(t)
	out := &recorder{}
	h := startSource(t, `
refresh_interval: 1h
labels: {job: docker}
tenant_label: com.example.tenant
default_tenant: shared
relabel_configs:
  - source_labels: [__meta_docker_container_label_com_example_skip]
    regex: "yes"
    action: drop
  - source_labels: [__meta_docker_container_label_com_example_team]
    target_label: team
`, memPositions(t), out)
	a, b, c := uniqueName(t), uniqueName(t), uniqueName(t)
	// Started first: its start event is handled before the others'.
	docker(t, "run", "-d", "--name", c, "--label", "com.example.skip=yes", img, "-n", "5", "-hold", "1m")
	docker(t, "run", "-d", "--name", a, "--label", "com.example.tenant=acme", "--label", "com.example.team=core",
		img, "-n", "20", "-stderr", "-prefix", "a", "-hold", "1m")
	docker(t, "run", "-d", "--name", b, img, "-n", "5", "-prefix", "b", "-hold", "1m")
	waitFor(t, 20*time.Second, "all lines", func() bool {
		return len(out.lines(a, "")) == 20 && len(out.lines(b, "")) == 5
	})
	wantOut, wantErr := dockerLogs(t, a)
	equalLines(t, "stdout", out.lines(a, "stdout"), wantOut)
	equalLines(t, "stderr", out.lines(a, "stderr"), wantErr)
	if len(wantOut) != 10 || len(wantErr) != 10 {
		t.Fatalf("docker logs: %d stdout, %d stderr lines, want 10 each", len(wantOut), len(wantErr))
	}
	for _, e := range out.entriesOf(a) {
		if e.Tenant != "acme" {
			t.Fatalf("tenant %q, want acme", e.Tenant)
		}
		for _, l := range e.Labels {
			if strings.HasPrefix(l.Name, "__") {
				t.Fatalf("internal label left: %v", e.Labels)
			}
		}
		if e.Labels.Get("job") != "docker" || e.Labels.Get("team") != "core" || e.Labels.Get("container") != a {
			t.Fatalf("labels %v", e.Labels)
		}
		if e.Time == 0 || time.Since(time.Unix(0, e.Time)) > time.Hour {
			t.Fatalf("entry time %d not taken from the docker timestamp", e.Time)
		}
	}
	for _, e := range out.entriesOf(b) {
		if e.Tenant != "shared" || e.Labels.Get("team") != "" || e.Labels.Get("stream") != "stdout" {
			t.Fatalf("container without labels: tenant %q labels %v", e.Tenant, e.Labels)
		}
	}
	if got := out.lines(c, ""); len(got) != 0 {
		t.Fatalf("read %d lines of a container relabeling drops", len(got))
	}
	h.stop()
}

// A TTY container's raw stream is read as stdout, without the CR, and a
// split long line is joined.
func TestTTY(t *testing.T) {
	img := loggenImage(t)
	out := &recorder{}
	startSource(t, "refresh_interval: 1h\n", memPositions(t), out)
	a := uniqueName(t)
	docker(t, "run", "-d", "-t", "--name", a, img, "-n", "6", "-stderr", "-prefix", "tty", "-hold", "1m")
	b := uniqueName(t)
	docker(t, "run", "-d", "-t", "--name", b, img, "-n", "3", "-size", "40000", "-prefix", "ttylong", "-hold", "1m")
	waitFor(t, 20*time.Second, "tty lines", func() bool {
		return len(out.lines(a, "stdout")) == 6 && len(out.lines(b, "stdout")) == 3
	})
	want, _ := dockerLogs(t, a)
	equalLines(t, "tty", out.lines(a, "stdout"), want)
	for _, l := range out.lines(b, "stdout") {
		if len(l) != 40000 || !strings.HasPrefix(l, "ttylong run=") || strings.Contains(l, "Z ") {
			t.Fatalf("long tty line not joined: len %d, %.80q", len(l), l)
		}
	}
}

// A container that starts and exits between two refreshes is still read
// completely: the event stream starts its follower.
func TestShortLivedContainer(t *testing.T) {
	img := loggenImage(t)
	out := &recorder{}
	startSource(t, "refresh_interval: 1h\n", memPositions(t), out)
	a := uniqueName(t)
	docker(t, "run", "--name", a, img, "-n", "500", "-stderr", "-prefix", "short")
	waitFor(t, 20*time.Second, "short-lived lines", func() bool { return len(out.lines(a, "")) >= 500 })
	wantOut, wantErr := dockerLogs(t, a)
	equalLines(t, "stdout", out.lines(a, "stdout"), wantOut)
	equalLines(t, "stderr", out.lines(a, "stderr"), wantErr)
}

// Restarting the source resumes from the checkpoint: lines written while it
// was stopped are read, nothing is read twice. Unsettled batches do not
// move the checkpoint.
func TestCheckpointResumeAcrossSourceRestart(t *testing.T) {
	img := loggenImage(t)
	pos := memPositions(t)
	a := uniqueName(t)
	id := docker(t, "run", "-d", "--name", a, img, "-n", "0", "-interval", "5ms", "-stderr", "-prefix", "resume")

	// First run holds its batches: the checkpoint must not move.
	out1 := &recorder{hold: true}
	h1 := startSource(t, "refresh_interval: 1h\n", pos, out1)
	waitFor(t, 20*time.Second, "first lines", func() bool { return len(out1.lines(a, "")) >= 50 })
	if v, ok := pos.Get(cursorKey(id)); ok {
		t.Fatalf("checkpoint moved before settlement: %s", v)
	}
	out1.release()
	// Emit further batches, settled at once now.
	n := len(out1.lines(a, ""))
	waitFor(t, 20*time.Second, "more lines", func() bool { return len(out1.lines(a, "")) >= n+50 })
	h1.stop()
	if _, ok := pos.Get(cursorKey(id)); !ok {
		t.Fatal("no checkpoint after settlement")
	}
	if err := pos.Save(); err != nil {
		t.Fatal(err)
	}

	// The container keeps writing while no source runs.
	before, _ := dockerLogs(t, a)
	waitFor(t, 20*time.Second, "lines written while stopped", func() bool {
		o, _ := dockerLogs(t, a)
		return len(o) >= len(before)+100
	})

	out2 := &recorder{}
	startSource(t, "refresh_interval: 1h\n", pos, out2)
	waitFor(t, 20*time.Second, "resumed lines", func() bool { return len(out2.lines(a, "")) >= 100 })
	docker(t, "stop", "-t", "5", a)
	wantOut, wantErr := dockerLogs(t, a)
	waitFor(t, 20*time.Second, "every line", func() bool {
		return len(out1.lines(a, ""))+len(out2.lines(a, "")) >= len(wantOut)+len(wantErr)
	})
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
	equalLines(t, "stdout", append(out1.lines(a, "stdout"), out2.lines(a, "stdout")...), wantOut)
	equalLines(t, "stderr", append(out1.lines(a, "stderr"), out2.lines(a, "stderr")...), wantErr)
}

// docker stop followed by docker start (and docker restart) resumes
// exactly: the second run's lines follow the first's, none repeated.
func TestStopStartResumesExactly(t *testing.T) {
	img := loggenImage(t)
	pos := memPositions(t)
	out := &recorder{}
	startSource(t, "refresh_interval: 1h\n", pos, out)
	a := uniqueName(t)
	docker(t, "run", "-d", "--name", a, img, "-n", "0", "-interval", "5ms", "-prefix", "ss")
	waitFor(t, 20*time.Second, "first run", func() bool { return len(out.lines(a, "")) >= 50 })
	docker(t, "stop", "-t", "5", a)
	docker(t, "start", a)
	n := len(out.lines(a, ""))
	waitFor(t, 20*time.Second, "second run", func() bool { return len(out.lines(a, "")) >= n+50 })
	docker(t, "restart", "-t", "5", a)
	n = len(out.lines(a, ""))
	waitFor(t, 20*time.Second, "third run", func() bool { return len(out.lines(a, "")) >= n+50 })
	docker(t, "stop", "-t", "5", a)
	want, _ := dockerLogs(t, a)
	waitFor(t, 20*time.Second, "every line", func() bool { return len(out.lines(a, "")) >= len(want) })
	time.Sleep(200 * time.Millisecond)
	got := out.lines(a, "")
	equalLines(t, "stop/start", got, want)
	runs := map[string]bool{}
	for _, l := range got {
		runs[strings.Fields(l)[1]] = true
	}
	if len(runs) != 3 {
		t.Fatalf("saw %d runs of the container, want 3", len(runs))
	}
}

// Docker splits lines over 16 KiB; they arrive joined.
func TestLongLinesJoined(t *testing.T) {
	img := loggenImage(t)
	out := &recorder{}
	startSource(t, "refresh_interval: 1h\n", memPositions(t), out)
	a := uniqueName(t)
	docker(t, "run", "--name", a, img, "-n", "4", "-stderr", "-size", "40000", "-prefix", "long")
	waitFor(t, 20*time.Second, "long lines", func() bool { return len(out.lines(a, "")) >= 4 })
	time.Sleep(100 * time.Millisecond)
	got := out.lines(a, "")
	if len(got) != 4 {
		ls := []string{}
		for _, e := range out.entriesOf(a) {
			ls = append(ls, fmt.Sprintf("%s:%d:%d", e.Labels.Get("stream"), len(e.Line), e.Time))
		}
		t.Fatalf("got %d lines, want 4: %v", len(got), ls)
	}
	wantOut, wantErr := dockerLogs(t, a)
	equalLines(t, "stdout", out.lines(a, "stdout"), wantOut)
	equalLines(t, "stderr", out.lines(a, "stderr"), wantErr)
	for _, l := range got {
		if len(l) != 40000 {
			t.Fatalf("line of %d bytes, want 40000", len(l))
		}
	}
}

// A container whose log driver the API cannot read is skipped with one
// warning, however often it is seen.
func TestUnreadableLogDriverSkipped(t *testing.T) {
	img := loggenImage(t)
	out := &recorder{}
	h := startSource(t, "refresh_interval: 100ms\n", memPositions(t), out)
	a := uniqueName(t)
	docker(t, "run", "-d", "--log-driver", "none", "--name", a, img, "-n", "5", "-hold", "1m")
	b := uniqueName(t)
	docker(t, "run", "-d", "--name", b, img, "-n", "5", "-hold", "1m")
	waitFor(t, 20*time.Second, "the readable container", func() bool { return len(out.lines(b, "")) == 5 })
	r := h.src.refreshes.Load()
	waitFor(t, 20*time.Second, "more refreshes", func() bool { return h.src.refreshes.Load() >= r+3 })
	if n := strings.Count(h.logs.String(), "log driver cannot be read"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, h.logs.String())
	}
	if !strings.Contains(h.logs.String(), "log_driver=none") || !strings.Contains(h.logs.String(), a) {
		t.Fatalf("warning does not name the container and driver:\n%s", h.logs.String())
	}
	if got := out.lines(a, ""); len(got) != 0 {
		t.Fatalf("read %d lines from a container with log driver none", len(got))
	}
}

// Lines a container wrote after the source stopped are read on the next
// start even when the container exited meanwhile: its cursor marks it.
func TestExitedWhileStoppedIsReadOnStart(t *testing.T) {
	img := loggenImage(t)
	pos := memPositions(t)
	a := uniqueName(t)
	out1 := &recorder{}
	h1 := startSource(t, "refresh_interval: 1h\n", pos, out1)
	docker(t, "run", "-d", "--name", a, img, "-n", "300", "-interval", "5ms", "-stderr", "-prefix", "exit")
	waitFor(t, 20*time.Second, "first lines", func() bool { return len(out1.lines(a, "")) >= 20 })
	h1.stop()
	docker(t, "wait", a)
	wantOut, wantErr := dockerLogs(t, a)
	if len(out1.lines(a, "")) >= len(wantOut)+len(wantErr) {
		t.Skip("the container finished before the source stopped; nothing left to test")
	}
	out2 := &recorder{}
	startSource(t, "refresh_interval: 1h\n", pos, out2)
	waitFor(t, 20*time.Second, "the rest", func() bool {
		return len(out1.lines(a, ""))+len(out2.lines(a, "")) >= len(wantOut)+len(wantErr)
	})
	time.Sleep(200 * time.Millisecond)
	equalLines(t, "stdout", append(out1.lines(a, "stdout"), out2.lines(a, "stdout")...), wantOut)
	equalLines(t, "stderr", append(out1.lines(a, "stderr"), out2.lines(a, "stderr")...), wantErr)
}

// A rename relabels the following lines; a removal forgets the cursor.
func TestRenameAndDestroy(t *testing.T) {
	img := loggenImage(t)
	pos := memPositions(t)
	out := &recorder{}
	startSource(t, "refresh_interval: 1h\n", pos, out)
	a, b := uniqueName(t), uniqueName(t)
	id := docker(t, "run", "-d", "--name", a, img, "-n", "0", "-interval", "10ms", "-prefix", "ren")
	waitFor(t, 20*time.Second, "lines under the first name", func() bool { return len(out.lines(a, "")) >= 10 })
	docker(t, "rename", a, b)
	waitFor(t, 20*time.Second, "lines under the new name", func() bool { return len(out.lines(b, "")) >= 10 })
	waitFor(t, 20*time.Second, "a cursor", func() bool { _, ok := pos.Get(cursorKey(id)); return ok })
	docker(t, "rm", "-f", b)
	waitFor(t, 20*time.Second, "the cursor to be removed", func() bool { _, ok := pos.Get(cursorKey(id)); return !ok })
	// The two names together hold the container's log once, in order.
	var got []string
	out.mu.Lock()
	defer out.mu.Unlock()
	for _, e := range out.entries {
		if n := e.Labels.Get("container"); n == a || n == b {
			got = append(got, string(e.Line))
		}
	}
	for i, l := range got {
		if want := fmt.Sprintf("seq=%d", i); strings.Fields(l)[2] != want {
			t.Fatalf("line %d is %q, want %s", i, l, want)
		}
	}
}

// An engine that cannot be reached is reported and retried; Run still
// stops cleanly.
func TestEngineUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "missing.sock")
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("host: unix://"+sock+"\n"), &doc); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	s, err := New(pipeline.Env{Name: "d", Decoder: pipeline.Decoder{File: "t.yaml"},
		Logger: slog.New(slog.NewTextHandler(logs, nil))}, doc.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, &recorder{}) }()
	waitFor(t, 20*time.Second, "a warning", func() bool { return strings.Contains(logs.String(), "docker engine unreachable") })
	if !strings.Contains(logs.String(), sock) {
		t.Fatalf("the warning does not name the socket:\n%s", logs.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
}

// The local log driver is read like json-file, and list filters limit
// the containers followed, events included.
func TestLocalDriverAndFilters(t *testing.T) {
	img := loggenImage(t)
	out := &recorder{}
	h := startSource(t, `
refresh_interval: 100ms
filters:
  - name: label
    values: [vigiltest.follow=yes]
`, memPositions(t), out)
	a, b := uniqueName(t), uniqueName(t)
	docker(t, "run", "-d", "--log-driver", "local", "--label", "vigiltest.follow=yes", "--name", a, img, "-n", "10", "-stderr", "-hold", "1m")
	docker(t, "run", "-d", "--name", b, img, "-n", "10", "-hold", "1m")
	waitFor(t, 20*time.Second, "the local-driver container", func() bool { return len(out.lines(a, "")) == 10 })
	r := h.src.refreshes.Load()
	waitFor(t, 20*time.Second, "more refreshes", func() bool { return h.src.refreshes.Load() >= r+3 })
	wantOut, wantErr := dockerLogs(t, a)
	equalLines(t, "stdout", out.lines(a, "stdout"), wantOut)
	equalLines(t, "stderr", out.lines(a, "stderr"), wantErr)
	if got := out.lines(b, ""); len(got) != 0 {
		t.Fatalf("read %d lines from a container the filter excludes", len(got))
	}
}

// Busy containers that exit are read to their last line: Docker 20.10 may
// end a follow early as a container stops, which the follower detects by
// reading again until nothing new comes.
func TestFastWritersReadCompletely(t *testing.T) {
	img := loggenImage(t)
	out := &recorder{}
	startSource(t, "refresh_interval: 1h\n", memPositions(t), out)
	const n = 4
	names := make([]string, n)
	for i := range names {
		names[i] = uniqueName(t)
		docker(t, "run", "-d", "--name", names[i], img, "-n", "40000", "-size", "100", "-prefix", "fast")
	}
	for _, name := range names {
		docker(t, "wait", name)
	}
	for _, name := range names {
		want, _ := dockerLogs(t, name)
		waitFor(t, 30*time.Second, "every line of "+name, func() bool { return len(out.lines(name, "")) >= len(want) })
		equalLines(t, name, out.lines(name, ""), want)
	}
}

// The lifecycle tests again, with every log read through the Engine API
// (read_log_files: false), the way a remote Engine's logs are read.
func TestThroughEngineAPI(t *testing.T) {
	needDocker(t)
	throughAPI = true
	defer func() { throughAPI = false }()
	for name, test := range map[string]func(*testing.T){
		"LabelsStreamsAndTenant":              TestLabelsStreamsAndTenant,
		"TTY":                                 TestTTY,
		"ShortLivedContainer":                 TestShortLivedContainer,
		"CheckpointResumeAcrossSourceRestart": TestCheckpointResumeAcrossSourceRestart,
		"StopStartResumesExactly":             TestStopStartResumesExactly,
		"LongLinesJoined":                     TestLongLinesJoined,
		"ExitedWhileStoppedIsReadOnStart":     TestExitedWhileStoppedIsReadOnStart,
		"RenameAndDestroy":                    TestRenameAndDestroy,
		"FastWritersReadCompletely":           TestFastWritersReadCompletely,
		"EngineRestartResumesExactly":         TestEngineRestartResumesExactly,
	} {
		t.Run(name, test)
	}
}

// A local Engine's json-file logs are read from disk: the follower holds
// the container's log file open, and follows it through the Engine's own
// rotation (max-size, max-file, compress) without a loss or a repeat.
func TestReadsLogFileThroughRotation(t *testing.T) {
	img := loggenImage(t)
	out := &recorder{}
	h := startSource(t, "refresh_interval: 1h\n", memPositions(t), out)
	a := uniqueName(t)
	defer func() {
		if t.Failed() {
			got := out.lines(a, "")
			t.Logf("%d lines; logs:\n%s", len(got), h.logs.String())
			for i, l := range got {
				if !strings.HasSuffix(l, fmt.Sprintf(" seq=%d", i)) {
					t.Logf("line %d: %q", i, l)
					break
				}
			}
		}
	}()
	id := docker(t, "run", "-d", "--name", a, "--log-opt", "max-size=100k", "--log-opt", "max-file=50",
		"--log-opt", "compress=true", img, "-n", "20000", "-prefix", "rot", "-hold", "1m")
	logPath := docker(t, "inspect", "-f", "{{.LogPath}}", a)
	waitFor(t, 20*time.Second, "first lines", func() bool { return len(out.lines(a, "")) > 0 })
	if !holdsOpen(t, logPath) {
		t.Errorf("vigil holds no generation of %s open: the log is not read from disk", logPath)
	}
	waitFor(t, 60*time.Second, "every line", func() bool { return len(out.lines(a, "")) >= 20000 })
	docker(t, "stop", "-t", "1", a)
	rotated, _ := filepath.Glob(logPath + ".*")
	if len(rotated) < 5 {
		t.Errorf("the Engine rotated the log %d times, want several: %v", len(rotated), rotated)
	}
	got := out.lines(a, "")
	if len(got) != 20000 {
		t.Fatalf("got %d lines, want 20000 (container %s)", len(got), id)
	}
	for i, l := range got {
		if !strings.HasSuffix(l, fmt.Sprintf(" seq=%d", i)) {
			t.Fatalf("line %d: %q", i, l)
		}
	}
}

// holdsOpen reports whether this process has path, or a rotated
// generation of it, open.
func holdsOpen(t *testing.T, path string) bool {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, path) {
			return true
		}
	}
	return false
}

// containers_path finds the logs where vigil sees the Engine's containers
// directory; where no log is found there, the API reads it.
func TestContainersPath(t *testing.T) {
	img := loggenImage(t)
	mounted := filepath.Join(t.TempDir(), "containers")
	if err := os.Symlink("/var/lib/docker/containers", mounted); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path     string
		fromFile bool
	}{{mounted, true}, {"/nonexistent/containers", false}} {
		out := &recorder{}
		h := startSource(t, "refresh_interval: 1h\ncontainers_path: "+tc.path+"\n", memPositions(t), out)
		a := uniqueName(t)
		docker(t, "run", "-d", "--name", a, img, "-n", "5", "-hold", "1m")
		waitFor(t, 20*time.Second, "lines", func() bool { return len(out.lines(a, "")) == 5 })
		logPath := docker(t, "inspect", "-f", "{{.LogPath}}", a)
		if got := holdsOpen(t, logPath); got != tc.fromFile {
			t.Errorf("containers_path %s: log file open %v, want %v", tc.path, got, tc.fromFile)
		}
		if warned := strings.Contains(h.logs.String(), "cannot open a container's log file"); warned == tc.fromFile {
			t.Errorf("containers_path %s: warned %v about the log file; logs:\n%s", tc.path, warned, h.logs.String())
		}
		h.stop()
	}
}

// unprivilegedEnv names the container an unprivileged re-run of the test
// binary follows (see TestUnreadableLogFiles).
const unprivilegedEnv = "VIGIL_DOCKER_TEST_UNPRIVILEGED"

// unprivilegedChild follows one container until it has 5 lines, and prints
// the lines and the source's log.
func unprivilegedChild(name string) int {
	var doc yaml.Node
	_ = yaml.Unmarshal([]byte("refresh_interval: 1h\nfilters: [{name: name, values: ["+name+"]}]\n"), &doc)
	logs := &syncBuffer{}
	pos, _ := pipeline.OpenPositions("", false)
	src, err := New(pipeline.Env{Name: "docker_test", Decoder: pipeline.Decoder{File: "test.yaml"}, Positions: pos,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Metrics: pipeline.NewTestMetrics()}, doc.Content[0])
	if err != nil {
		fmt.Println(err)
		return 1
	}
	out := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	for deadline := time.Now().Add(20 * time.Second); len(out.lines(name, "")) < 5 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	fmt.Printf("lines: %q\n%s", out.lines(name, ""), logs.String())
	return 0
}

// vigil as a user without access to the Engine's containers directory
// (but in the docker group): one warning, and every log read through the
// API, completely.
func TestUnreadableLogFiles(t *testing.T) {
	img := loggenImage(t)
	gid, err := dockerGroup()
	if err != nil {
		dockertest.Missing(t, "no docker group to run an unprivileged follower with: %v", err)
	}
	// The test binary, where the unprivileged user can run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "vigil-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "docker.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a := uniqueName(t)
	docker(t, "run", "-d", "--name", a, img, "-n", "5", "-prefix", "np", "-hold", "1m")
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), unprivilegedEnv+"="+a)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{gid}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unprivileged follower: %v\n%s", err, out)
	}
	want, _ := dockerLogs(t, a)
	if !strings.Contains(string(out), fmt.Sprintf("lines: %q", want)) {
		t.Errorf("the unprivileged follower did not read %q; it said:\n%s", want, out)
	}
	if n := strings.Count(string(out), "cannot read the containers' log files"); n != 1 {
		t.Errorf("%d warnings about unreadable log files, want 1; it said:\n%s", n, out)
	}
}

// dockerGroup is the group id that owns the Engine's socket.
func dockerGroup() (uint32, error) {
	fi, err := os.Stat("/var/run/docker.sock")
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Gid == 0 {
		return 0, fmt.Errorf("the socket's group is root")
	}
	return st.Gid, nil
}
