package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchenv"
	"github.com/vigilhq/vigil/internal/engineapi"
)

// The docker scenario: containers of the loggen image write their share of
// -lines access-log lines to stdout at full speed and stay running; once
// every log is complete, one baseline reads them all through the Engine
// API and another reads their json-file logs raw, then vigil's docker
// source follows every container from the start of its log and ships to
// the receiver. It runs with -containers
// containers, then with one container writing the same total, so the
// difference in peak RSS is the memory each followed container costs.

// dockerHost is the Engine the scenario uses: $DOCKER_HOST, as the docker
// command line does, else the local socket.
func dockerHost() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return "unix:///var/run/docker.sock"
}

func (h *harness) docker(containers int) error {
	name := fmt.Sprintf("docker-%d", containers)
	dir := filepath.Join(h.o.out, name)
	per := h.o.lines / int64(containers)
	lines := per * int64(containers)
	fail := func(err error) error {
		h.tp = append(h.tp, throughputResult{Scenario: "docker", Config: filepath.Base(h.o.dockerConfig), Files: containers, Lines: lines, Err: err})
		return fmt.Errorf("%s: %w", name, err)
	}
	if per < 1 {
		return fail(fmt.Errorf("-lines %d is less than one line per container", h.o.lines))
	}
	if err := h.validateConfig(h.o.dockerConfig, dir); err != nil {
		return fail(err)
	}
	if _, err := h.loggenImage(); err != nil {
		return fail(err)
	}
	for rep := range h.o.repeat {
		r := throughputResult{Scenario: "docker", Config: filepath.Base(h.o.dockerConfig), Files: containers, Lines: lines}
		if err := h.dockerRun(&r, dir, containers, per, rep); err != nil {
			r.Err = err
			h.tp = append(h.tp, r)
			return fmt.Errorf("%s: %w", name, err)
		}
		h.logVigil(name, &r)
		h.tp = append(h.tp, r)
	}
	return nil
}

// dockerRun starts the containers, waits for their logs to be complete,
// runs the baseline and then vigil, and removes the containers.
func (h *harness) dockerRun(r *throughputResult, dir string, containers int, per int64, rep int) error {
	run := fmt.Sprintf("%d-%d-%d", os.Getpid(), containers, rep)
	label := "vigil.bench=" + run
	done := filepath.Join(dir, fmt.Sprintf("done-%d", rep))
	if err := os.RemoveAll(done); err != nil {
		return err
	}
	if err := os.MkdirAll(done, 0o777); err != nil {
		return err
	}
	names := make([]string, containers)
	for i := range names {
		names[i] = fmt.Sprintf("vigil-bench-%s-%d", run, i)
	}
	defer removeContainers(names)
	start := time.Now()
	if err := h.startWriters(names, label, done, per); err != nil {
		return err
	}
	h.log.Info("containers written", "containers", containers, "lines_each", per, "took", time.Since(start).Round(time.Millisecond))
	var err error

	// The writer is done once its done file exists, but the Engine may
	// still be copying the pipe's last lines into the log: read until the
	// count is complete.
	for attempt := 0; ; attempt++ {
		var bytes int64
		r.Baseline, bytes, err = h.dockerBaseline(names)
		if err != nil {
			return err
		}
		r.Bytes = bytes
		if r.Baseline.Lines == r.Lines {
			break
		}
		if r.Baseline.Lines > r.Lines || attempt == 20 {
			return fmt.Errorf("baseline read %d lines through the Engine API, the containers wrote %d", r.Baseline.Lines, r.Lines)
		}
		time.Sleep(500 * time.Millisecond)
	}
	h.logBaseline("Engine API baseline", run, r.Lines, r.Baseline)

	// vigil reads a local Engine's json-file logs from disk: the raw
	// read-and-split of those files is the table's baseline, as for the
	// file scenarios; the Engine API read is reported beside it.
	r.APIBaseline = r.Baseline
	paths := make([]string, len(names))
	for i, n := range names {
		out, err := exec.Command("docker", "inspect", "-f", "{{.LogPath}}", n).Output()
		if err != nil {
			return fmt.Errorf("docker inspect %s: %w", n, err)
		}
		paths[i] = strings.TrimSpace(string(out))
	}
	if r.Baseline, err = h.baseline(paths); err != nil {
		return err
	}
	if r.Baseline.Lines != r.Lines {
		return fmt.Errorf("raw read of the log files found %d lines, the containers wrote %d", r.Baseline.Lines, r.Lines)
	}
	h.logBaseline("file baseline", run, r.Lines, r.Baseline)
	return h.runThroughput(r, dir, h.o.dockerConfig, templateData{RunLabel: label}, rep)
}

func removeContainers(names []string) {
	_ = exec.Command("docker", append([]string{"rm", "-f"}, names...)...).Run()
}

// startWriters starts a loggen container per name, each writing per lines
// and staying up, and waits until every one wrote its lines (its file in
// done exists).
func (h *harness) startWriters(names []string, label, done string, per int64) error {
	err := forEach(len(names), 4, func(i int) error {
		// The daemon's default log options may rotate a log away before
		// it is read (often max-size 10m, max-file 3); one large file
		// keeps every line.
		args := []string{"run", "-d", "--name", names[i], "--label", label, "-v", done + ":/done",
			"--log-driver", "json-file", "--log-opt", "max-size=4g", "--log-opt", "max-file=1", h.image,
			"-q", "-n", strconv.FormatInt(per, 10), "-seed", strconv.Itoa(i + 1), "-hold", "1h", "-done", "/done/" + strconv.Itoa(i)}
		if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(h.o.timeout)
	for i := 0; i < len(names); {
		if _, err := os.Stat(filepath.Join(done, strconv.Itoa(i))); err == nil {
			i++
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container %s did not finish writing within %v", names[i], h.o.timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// idleResult is vigil's memory while it follows quiet containers.
type idleResult struct {
	Containers int
	RSS        int64 // VmRSS after the containers' lines were delivered and vigil idled
	Err        error
}

// idleSettle is how long vigil idles before its RSS is read: its
// followers back off to their slowest poll and let their buffers go.
const idleSettle = 5 * time.Second

// dockerIdle measures what a followed container costs at rest: vigil
// follows containers that wrote 10 lines each and stay up, and its RSS
// once those lines were delivered and it idled is compared between
// -containers containers and one.
func (h *harness) dockerIdle(containers int) error {
	res := idleResult{Containers: containers}
	err := h.dockerIdleRun(&res)
	res.Err = err
	h.idle = append(h.idle, res)
	if err != nil {
		return fmt.Errorf("docker-idle-%d: %w", containers, err)
	}
	h.log.Info("vigil idle", "containers", containers, "rss_mb", fmt.Sprintf("%.1f", mb(res.RSS)))
	return nil
}

func (h *harness) dockerIdleRun(res *idleResult) error {
	const per = 10
	dir := filepath.Join(h.o.out, fmt.Sprintf("docker-idle-%d", res.Containers))
	if _, err := h.loggenImage(); err != nil {
		return err
	}
	run := fmt.Sprintf("%d-idle-%d", os.Getpid(), res.Containers)
	label := "vigil.bench=" + run
	done := filepath.Join(dir, "done")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(done, 0o777); err != nil {
		return err
	}
	names := make([]string, res.Containers)
	for i := range names {
		names[i] = fmt.Sprintf("vigil-bench-%s-%d", run, i)
	}
	defer removeContainers(names)
	if err := h.startWriters(names, label, done, per); err != nil {
		return err
	}
	rcv, err := h.listen(filepath.Join(dir, "pushes.csv"))
	if err != nil {
		return err
	}
	defer rcv.Close()
	cfgPath := filepath.Join(dir, "vigil.yaml")
	d := templateData{RunLabel: label, PositionsFile: filepath.Join(dir, "positions.yaml"), PushURL: rcv.PushURL(), BufferBytes: h.o.buffer}
	if err := renderConfig(h.o.dockerConfig, cfgPath, d); err != nil {
		return err
	}
	a, err := startAgent(h.o.vigil, cfgPath, filepath.Join(dir, "vigil.log"), strings.Fields(h.o.vigilArgs))
	if err != nil {
		return err
	}
	defer a.stop(time.Minute) //nolint:errcheck // the success path stops it and checks
	want := int64(per * res.Containers)
	deadline := time.Now().Add(h.o.timeout)
	for rcv.Lines() < want {
		if !a.running() || time.Now().After(deadline) {
			return fmt.Errorf("received %d of %d lines\n%s", rcv.Lines(), want, a.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(idleSettle)
	s, err := benchenv.ReadProc(a.pid())
	if err != nil {
		return err
	}
	res.RSS = s.RSS
	if _, err := a.stop(time.Minute); err != nil {
		return fmt.Errorf("%w\n%s", err, a.logTail())
	}
	return nil
}

// forEach runs fn(0..n-1) with at most par at once and returns the
// errors.
func forEach(n, par int, fn func(int) error) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, par)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// loggenImage builds bench/cmd/loggen into a FROM scratch image once per
// harness run; there is no registry to pull from.
func (h *harness) loggenImage() (string, error) {
	if h.image != "" {
		return h.image, nil
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return "", fmt.Errorf("docker engine not reachable (docker version: %v): %s", err, bytes.TrimSpace(out))
	}
	dir := filepath.Join(h.o.out, "image")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "loggen"), "./bench/cmd/loggen")
	build.Dir = h.root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./bench/cmd/loggen: %w\n%s", err, out)
	}
	df := "FROM scratch\nCOPY loggen /loggen\nENTRYPOINT [\"/loggen\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return "", err
	}
	name := fmt.Sprintf("vigil-bench-loggen:%d", os.Getpid())
	if out, err := exec.Command("docker", "build", "-q", "-t", name, dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("docker build: %w: %s", err, bytes.TrimSpace(out))
	}
	h.image = name
	return name, nil
}

func (h *harness) removeImage() {
	if h.image != "" {
		_ = exec.Command("docker", "rmi", "-f", h.image).Run()
		h.image = ""
	}
}

// dockerBaselineResult is what the Engine API baseline child read.
type dockerBaselineResult struct {
	Lines int64
	Bytes int64 // line text with its newline, without Docker's timestamp
}

// dockerBaseline runs the Engine API baseline as a child process, so its
// CPU time comes from wait4 and nothing else in the harness counts.
func (h *harness) dockerBaseline(names []string) (baselineResult, int64, error) {
	self, err := os.Executable()
	if err != nil {
		return baselineResult{}, 0, fmt.Errorf("baseline: %w", err)
	}
	cmd := exec.Command(self, append([]string{"-internal-docker-baseline"}, names...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		return baselineResult{}, 0, fmt.Errorf("docker baseline: %w: %s", err, stderr.String())
	}
	var res dockerBaselineResult
	if err := json.Unmarshal(out, &res); err != nil {
		return baselineResult{}, 0, fmt.Errorf("docker baseline output: %w", err)
	}
	return baselineResult{Lines: res.Lines, Wall: wall, CPU: rusageCPU(cmd.ProcessState)}, res.Bytes, nil
}

// dockerBaselineChild reads every named container's whole log through the
// Engine API, all at once as vigil does, with the client vigil uses and
// the options it uses except follow: stdout and stderr with timestamps.
// It demultiplexes the frames and counts lines, nothing else: the floor
// the API sets.
func dockerBaselineChild(names []string, stdout, stderr io.Writer) int {
	cli, err := engineapi.New(dockerHost(), engineapi.Options{})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer cli.Close()
	var mu sync.Mutex
	var total dockerBaselineResult
	err = forEach(len(names), len(names), func(i int) error {
		rc, err := cli.ContainerLogs(context.Background(), names[i], engineapi.LogsOptions{Stdout: true, Stderr: true, Timestamps: true})
		if err != nil {
			return err
		}
		defer rc.Close()
		res, err := countFrames(rc)
		mu.Lock()
		total.Lines += res.Lines
		total.Bytes += res.Bytes
		mu.Unlock()
		return err
	})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := json.NewEncoder(stdout).Encode(total); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// countFrames counts the lines of a multiplexed log stream: one stdcopy
// frame (8-byte header, payload) per message, a line when it ends with a
// newline.
func countFrames(r io.Reader) (dockerBaselineResult, error) {
	var res dockerBaselineResult
	br := bufio.NewReaderSize(r, 256<<10)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF {
				return res, nil
			}
			return res, err
		}
		n := int(binary.BigEndian.Uint32(hdr[4:]))
		p, err := br.Peek(min(n, br.Size()))
		if err != nil {
			return res, fmt.Errorf("truncated frame: %w", err)
		}
		if len(p) == n && n > 0 && p[n-1] == '\n' {
			res.Lines++
			if i := bytes.IndexByte(p, ' '); i >= 0 {
				res.Bytes += int64(n - i - 1)
			}
		}
		if _, err := br.Discard(n); err != nil {
			return res, err
		}
	}
}
