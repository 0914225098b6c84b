// Command harness benchmarks the vigil binary end to end: it writes a
// workload of access-log or JSON lines, measures a raw read-and-split
// baseline on the same files, runs vigil against an in-process counting
// Loki receiver, and reports throughput, CPU per line, peak memory and
// latency.
//
// Run it from the repository root:
//
//	go run ./bench/cmd/harness -scenario passthrough
//	go run ./bench/cmd/harness -scenario json
//	go run ./bench/cmd/harness -scenario regex
//	go run ./bench/cmd/harness -scenario manyfiles
//	go run ./bench/cmd/harness -scenario latency
//	go run ./bench/cmd/harness -scenario docker
//	go run ./bench/cmd/harness -scenario all -record
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchenv"
	"github.com/vigilhq/vigil/bench/internal/loggen"
	"github.com/vigilhq/vigil/bench/internal/rawread"
	"github.com/vigilhq/vigil/bench/internal/receiver"
)

type options struct {
	scenario     string
	config       string
	promtail     string
	jsonConfig   string
	regexConfig  string
	dockerConfig string
	containers   int
	lines        int64
	files        int
	many         int
	rate         float64
	duration     time.Duration
	repeat       int
	vigil        string
	build        bool
	out          string
	timeout      time.Duration
	record       bool
	results      string
	note         string
	keep         bool
	vigilArgs    string
	buffer       int64
	internalBR   bool
	internalDBR  bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("harness", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.scenario, "scenario", "passthrough", "passthrough, promtail, json, regex, manyfiles, latency, docker or all")
	fs.StringVar(&o.config, "config", "bench/configs/passthrough.yaml", "vigil config template for passthrough, manyfiles and latency")
	fs.StringVar(&o.promtail, "promtail-config", "bench/configs/promtail.yaml", "Promtail-format config template for the promtail scenario")
	fs.StringVar(&o.jsonConfig, "json-config", "bench/configs/json.yaml", "config template for the json scenario (JSON lines through json, labels and timestamp stages)")
	fs.StringVar(&o.regexConfig, "regex-config", "bench/configs/regex.yaml", "config template for the regex scenario (access-log lines through regex and labels stages)")
	fs.StringVar(&o.dockerConfig, "docker-config", "bench/configs/docker.yaml", "config template for the docker scenario (a docker source filtered to the benchmark's containers)")
	fs.IntVar(&o.containers, "containers", 20, "containers the docker scenario spreads -lines over (compared with 1 container)")
	fs.Int64Var(&o.lines, "lines", 2_000_000, "lines in the throughput workloads")
	fs.IntVar(&o.files, "files", 1, "files the passthrough, promtail, json and regex workloads are split over")
	fs.IntVar(&o.many, "many", 1000, "files in the many-files workload (compared with 1 file)")
	fs.Float64Var(&o.rate, "rate", 10_000, "lines per second in the latency scenario")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "length of the latency scenario")
	fs.IntVar(&o.repeat, "repeat", 1, "run each throughput measurement this many times")
	fs.StringVar(&o.vigil, "vigil", "bin/vigil", "vigil binary")
	fs.BoolVar(&o.build, "build", true, "build the vigil binary first, as make build does (CGO_ENABLED=0 go build -trimpath -ldflags '-s -w')")
	fs.StringVar(&o.out, "out", "bench/out", "directory for workloads, rendered configs, positions and logs")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on one run after this long")
	fs.BoolVar(&o.record, "record", false, "append the results to -results")
	fs.StringVar(&o.results, "results", "bench/RESULTS.md", "results file for -record")
	fs.StringVar(&o.note, "note", "", "a remark recorded with the results")
	fs.BoolVar(&o.keep, "keep", false, "keep the workload files after the run")
	fs.StringVar(&o.vigilArgs, "vigil-args", "", "extra arguments for vigil, space separated")
	fs.Int64Var(&o.buffer, "buffer-bytes", 0, "buffer.max_bytes for templates that use .BufferBytes (passthrough.yaml); 0 keeps vigil's default")
	fs.BoolVar(&o.internalBR, "internal-baseline", false, "internal: read the files named as arguments and print the counts as JSON")
	fs.BoolVar(&o.internalDBR, "internal-docker-baseline", false, "internal: read the logs of the containers named as arguments through the Engine API and print the counts as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.internalBR {
		return baselineChild(fs.Args(), stdout, stderr)
	}
	if o.internalDBR {
		return dockerBaselineChild(fs.Args(), stdout, stderr)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "harness: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	h := &harness{o: o, log: logger, args: args}
	if err := h.main(stdout); err != nil {
		logger.Error("benchmark failed", "err", err)
		return 1
	}
	return 0
}

type harness struct {
	o     options
	log   *slog.Logger
	args  []string
	root  string
	tp    []throughputResult
	lat   []latencyResult
	idle  []idleResult
	image string // the docker scenario's loggen image, once built
}

func (h *harness) main(stdout io.Writer) error {
	root, err := benchenv.RepoRoot()
	if errors.Is(err, benchenv.ErrNotInRepo) {
		return fmt.Errorf("run the harness inside the vigil repository (%w)", err)
	}
	if err != nil {
		return err
	}
	h.root = root
	// Relative paths in flags are relative to the repository root, so the
	// documented commands work from any directory inside it.
	for _, p := range []*string{&h.o.config, &h.o.promtail, &h.o.jsonConfig, &h.o.regexConfig, &h.o.dockerConfig, &h.o.vigil, &h.o.out, &h.o.results} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(root, *p)
		}
	}
	var steps []func() error
	add := func(names ...string) {
		for _, n := range names {
			switch n {
			case "passthrough":
				steps = append(steps, func() error { return h.throughput("passthrough", h.o.config, h.o.files) })
			case "promtail":
				steps = append(steps, func() error { return h.throughput("promtail", h.o.promtail, h.o.files) })
			case "json":
				steps = append(steps, func() error { return h.throughput("json", h.o.jsonConfig, h.o.files) })
			case "regex":
				steps = append(steps, func() error { return h.throughput("regex", h.o.regexConfig, h.o.files) })
			case "manyfiles":
				steps = append(steps, func() error { return h.throughput("manyfiles", h.o.config, 1) },
					func() error { return h.throughput("manyfiles", h.o.config, h.o.many) })
			case "latency":
				steps = append(steps, h.latency)
			case "docker":
				steps = append(steps, func() error { return h.docker(h.o.containers) },
					func() error { return h.docker(1) },
					func() error { return h.dockerIdle(h.o.containers) },
					func() error { return h.dockerIdle(1) })
			}
		}
	}
	switch h.o.scenario {
	case "passthrough", "promtail", "json", "regex", "manyfiles", "latency", "docker":
		add(h.o.scenario)
	case "all":
		add("passthrough", "promtail", "json", "regex", "manyfiles", "latency", "docker")
	default:
		return fmt.Errorf("unknown scenario %q (want passthrough, promtail, json, regex, manyfiles, latency, docker or all)", h.o.scenario)
	}
	defer h.removeImage()
	if h.o.build {
		if err := h.buildVigil(); err != nil {
			return err
		}
	}
	if _, err := os.Stat(h.o.vigil); err != nil {
		return fmt.Errorf("vigil binary: %w", err)
	}
	var failed []error
	for _, step := range steps {
		if err := step(); err != nil {
			// Keep going: the other scenarios still say something, and
			// the failure is reported with them.
			h.log.Error("scenario failed", "err", err)
			failed = append(failed, err)
		}
	}
	report := h.markdown()
	fmt.Fprint(stdout, report)
	if h.o.record {
		if err := h.appendResults(report, failed); err != nil {
			return err
		}
		h.log.Info("recorded", "file", h.o.results)
	}
	return errors.Join(failed...)
}

func (h *harness) buildVigil() error {
	h.log.Info("building vigil", "output", h.o.vigil)
	return benchenv.BuildVigil(h.root, h.o.vigil)
}

// templateData fills a config template's placeholders.
type templateData struct {
	LogGlob       string // glob matching every workload file
	LogDir        string
	PositionsFile string
	PushURL       string
	BufferBytes   int64  // 0: leave vigil's default
	RunLabel      string // docker: the label key=value of this run's containers
}

func renderConfig(tmplPath, outPath string, d templateData) error {
	t, err := template.New(filepath.Base(tmplPath)).Option("missingkey=error").ParseFiles(tmplPath)
	if err != nil {
		return fmt.Errorf("config template: %w", err)
	}
	f, err := os.Create(outPath)
	if err != nil {
		return fmt.Errorf("render config: %w", err)
	}
	if err := t.Execute(f, d); err != nil {
		f.Close()
		return fmt.Errorf("render config %s: %w", tmplPath, err)
	}
	return f.Close()
}

// validateConfig renders tmpl with placeholder paths and runs `vigil
// validate` on it, so a config vigil cannot run (a stage it lacks, a key
// it rejects) fails in a second with vigil's own message, before a
// workload is written.
func (h *harness) validateConfig(tmpl, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("validate config: %w", err)
	}
	cfgPath := filepath.Join(dir, "validate.yaml")
	d := templateData{
		LogGlob: filepath.Join(dir, "logs", "*.log"), LogDir: filepath.Join(dir, "logs"),
		PositionsFile: filepath.Join(dir, "positions.yaml"),
		// Nothing is sent: validate builds components without starting them.
		PushURL: "http://127.0.0.1:9/loki/api/v1/push", BufferBytes: h.o.buffer,
		RunLabel: "vigil.bench=validate",
	}
	if err := renderConfig(tmpl, cfgPath, d); err != nil {
		return err
	}
	out, err := exec.Command(h.o.vigil, "validate", cfgPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("vigil validate %s (from %s): %w: %s", cfgPath, filepath.Base(tmpl), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// baselineResult is the raw read-and-split floor, run as a child process
// so its CPU time comes from wait4 and nothing else in the harness counts.
type baselineResult struct {
	Lines int64
	Wall  time.Duration
	CPU   time.Duration
}

func baselineChild(paths []string, stdout, stderr io.Writer) int {
	res, err := rawread.Files(paths)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

func (h *harness) baseline(paths []string) (baselineResult, error) {
	self, err := os.Executable()
	if err != nil {
		return baselineResult{}, fmt.Errorf("baseline: %w", err)
	}
	cmd := exec.Command(self, append([]string{"-internal-baseline"}, paths...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		return baselineResult{}, fmt.Errorf("baseline: %w: %s", err, stderr.String())
	}
	var res rawread.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return baselineResult{}, fmt.Errorf("baseline output: %w", err)
	}
	return baselineResult{Lines: res.Lines, Wall: wall, CPU: rusageCPU(cmd.ProcessState)}, nil
}

// workloadFormat is the kind of line each throughput scenario reads.
func workloadFormat(scenario string) loggen.Format {
	if scenario == "json" {
		return loggen.JSON
	}
	return loggen.Access
}

// workloadSeed fixes the content of every throughput workload, so the
// streams a labels stage makes of it are known in advance.
const workloadSeed = 1

// workload writes the throughput workload afresh.
func (h *harness) workload(dir string, files int, format loggen.Format) ([]string, error) {
	name := "access.log"
	if format == loggen.JSON {
		name = "app.log"
	}
	paths := loggen.Paths(filepath.Join(dir, name), files)
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	res, err := loggen.Write(context.Background(), loggen.Config{Paths: paths, Lines: h.o.lines, Seed: workloadSeed, Format: format})
	if err != nil {
		return nil, err
	}
	h.log.Info("workload written", "dir", dir, "format", format, "files", files, "lines", res.Lines,
		"bytes_per_line", fmt.Sprintf("%.1f", float64(res.Bytes)/float64(res.Lines)), "took", res.Elapsed.Round(time.Millisecond))
	return paths, nil
}

// throughputResult is one vigil run over a pre-written workload.
type throughputResult struct {
	Scenario string
	Config   string
	Files    int
	Lines    int64
	Bytes    int64
	// Received is what the receiver had once vigil stopped; more than
	// Lines means duplicates.
	Received int64
	Streams  int64
	Requests int64
	// LineTimed counts lines that arrived with the write time from the
	// line itself as their timestamp (see receiver.LatencyStats).
	LineTimed int64
	// Wall runs from starting vigil to the push that completed the count.
	Wall    time.Duration
	CPU     time.Duration // utime+stime from /proc just before SIGTERM
	PeakRSS int64         // VmHWM just before SIGTERM
	// ExitCPU and ExitMaxRSS come from wait4, so they include shutdown.
	ExitCPU    time.Duration
	ExitMaxRSS int64
	Baseline   baselineResult
	// APIBaseline is the docker scenario's read of the logs through the
	// Engine API, the way a Docker log agent without file access reads.
	APIBaseline baselineResult
	Err         error
}

func (h *harness) throughput(scenario, tmpl string, files int) error {
	name := fmt.Sprintf("%s-%d", scenario, files)
	dir := filepath.Join(h.o.out, name)
	if err := h.validateConfig(tmpl, dir); err != nil {
		h.tp = append(h.tp, throughputResult{Scenario: scenario, Config: filepath.Base(tmpl), Files: files, Lines: h.o.lines, Err: err})
		return fmt.Errorf("%s: %w", name, err)
	}
	logs := filepath.Join(dir, "logs")
	paths, err := h.workload(logs, files, workloadFormat(scenario))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if !h.o.keep {
		defer os.RemoveAll(logs)
	}
	var bytes int64
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		bytes += st.Size()
	}
	glob := paths[0]
	if files > 1 {
		glob = filepath.Join(logs, "*.log")
	}
	for i := range h.o.repeat {
		r := throughputResult{Scenario: scenario, Config: filepath.Base(tmpl), Files: files, Lines: h.o.lines, Bytes: bytes}
		r.Baseline, err = h.baseline(paths)
		if err == nil && r.Baseline.Lines != h.o.lines {
			err = fmt.Errorf("baseline read %d lines, the workload has %d", r.Baseline.Lines, h.o.lines)
		}
		if err == nil {
			h.logBaseline("baseline", name, r.Lines, r.Baseline)
			err = h.runThroughput(&r, dir, tmpl, templateData{LogGlob: glob, LogDir: filepath.Dir(glob)}, i)
		}
		if err != nil {
			r.Err = err
			h.tp = append(h.tp, r)
			return fmt.Errorf("%s: %w", name, err)
		}
		h.logVigil(name, &r)
		h.tp = append(h.tp, r)
	}
	return nil
}

// runThroughput runs vigil on the config tmpl renders with d (the
// positions file, push URL and buffer size are filled in here) until the
// receiver has r.Lines lines.
// logVigil logs a throughput run of vigil.
func (h *harness) logVigil(name string, r *throughputResult) {
	h.log.Info("vigil", "run", name, "wall", r.Wall.Round(time.Millisecond), "lines_per_s", fmtCount(perSec(r.Lines, r.Wall)),
		"cpu", r.CPU, "lines_per_cpu_s", fmtCount(perSec(r.Lines, r.CPU)), "peak_rss_mb", fmt.Sprintf("%.1f", mb(r.PeakRSS)), "received", r.Received)
}

// logBaseline logs a baseline's read of lines.
func (h *harness) logBaseline(what, name string, lines int64, b baselineResult) {
	h.log.Info(what, "run", name, "lines_per_s", fmtCount(perSec(lines, b.Wall)), "lines_per_cpu_s", fmtCount(perSec(lines, b.CPU)))
}

func (h *harness) runThroughput(r *throughputResult, dir, tmpl string, d templateData, rep int) error {
	positions := filepath.Join(dir, "positions.yaml")
	_ = os.Remove(positions)
	rcv, err := h.listen(filepath.Join(dir, fmt.Sprintf("pushes-%d.csv", rep)))
	if err != nil {
		return err
	}
	defer rcv.Close()
	cfgPath := filepath.Join(dir, "vigil.yaml")
	d.PositionsFile, d.PushURL, d.BufferBytes = positions, rcv.PushURL(), h.o.buffer
	if err := renderConfig(tmpl, cfgPath, d); err != nil {
		return err
	}
	a, err := startAgent(h.o.vigil, cfgPath, filepath.Join(dir, fmt.Sprintf("vigil-%d.log", rep)), strings.Fields(h.o.vigilArgs))
	if err != nil {
		return err
	}
	defer a.stop(time.Minute) //nolint:errcheck // the success path stops it and checks

	deadline := time.Now().Add(h.o.timeout)
	for rcv.Lines() < r.Lines {
		if !a.running() {
			return fmt.Errorf("vigil exited after %d of %d lines: %v\n%s", rcv.Lines(), r.Lines, a.waitErr, a.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v with %d of %d lines received\n%s", h.o.timeout, rcv.Lines(), r.Lines, a.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s, err := benchenv.ReadProc(a.pid())
	if err != nil {
		return err
	}
	st := rcv.Stats()
	r.Wall = st.LastPush.Sub(a.started)
	r.CPU, r.PeakRSS = s.CPU, s.PeakRSS
	ps, err := a.stop(time.Minute)
	r.ExitCPU, r.ExitMaxRSS = rusageCPU(ps), rusageMaxRSS(ps)
	st = rcv.Stats()
	r.Received, r.Streams, r.Requests, r.LineTimed = st.Lines, st.Streams, st.Requests, st.Latency.LineTimed
	if err != nil {
		return fmt.Errorf("%w\n%s", err, a.logTail())
	}
	return nil
}

// latencyResult is one fixed-rate run into a tailed file.
type latencyResult struct {
	Config   string
	Rate     float64
	Duration time.Duration
	Written  int64
	Received int64
	Latency  receiver.LatencyStats
	// CPU is vigil's CPU time during the measured writes and drain.
	CPU     time.Duration
	Elapsed time.Duration
	PeakRSS int64
	Err     error
}

func (h *harness) latency() error {
	r := latencyResult{Config: filepath.Base(h.o.config), Rate: h.o.rate, Duration: h.o.duration}
	err := h.runLatency(&r)
	r.Err = err
	h.lat = append(h.lat, r)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	h.log.Info("latency", "written", r.Written, "received", r.Received, "p50_ms", r.Latency.P50Ms, "p99_ms", r.Latency.P99Ms, "max_ms", r.Latency.MaxMs)
	return nil
}

func (h *harness) runLatency(r *latencyResult) error {
	dir := filepath.Join(h.o.out, "latency")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "logs", "access.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		return err
	}
	if !h.o.keep {
		defer os.RemoveAll(filepath.Dir(logPath))
	}
	rcv, err := h.listen(filepath.Join(dir, "pushes.csv"))
	if err != nil {
		return err
	}
	defer rcv.Close()
	cfgPath := filepath.Join(dir, "vigil.yaml")
	positions := filepath.Join(dir, "positions.yaml")
	if err := renderConfig(h.o.config, cfgPath, templateData{LogGlob: logPath, LogDir: filepath.Dir(logPath), PositionsFile: positions, PushURL: rcv.PushURL(), BufferBytes: h.o.buffer}); err != nil {
		return err
	}
	a, err := startAgent(h.o.vigil, cfgPath, filepath.Join(dir, "vigil.log"), strings.Fields(h.o.vigilArgs))
	if err != nil {
		return err
	}
	defer a.stop(time.Minute) //nolint:errcheck // the success path stops it and checks
	ctx, cancel := context.WithTimeout(context.Background(), h.o.timeout)
	defer cancel()
	if err := a.waitReady(ctx); err != nil {
		return err
	}

	// Warm up until lines flow end to end, so the measurement does not
	// include vigil finding the file; then start counting from zero.
	const warm = 200
	if _, err := loggen.Write(ctx, loggen.Config{Paths: []string{logPath}, Append: true, Lines: warm, Rate: 1000, Seed: 2}); err != nil {
		return err
	}
	if err := rcv.WaitLines(ctx, warm); err != nil {
		return fmt.Errorf("warm-up: %w\n%s", err, a.logTail())
	}
	rcv.Reset()
	before, err := benchenv.ReadProc(a.pid())
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := loggen.Write(ctx, loggen.Config{Paths: []string{logPath}, Append: true, Rate: h.o.rate, Duration: h.o.duration, Seed: 3})
	if err != nil {
		return err
	}
	r.Written = res.Lines
	h.log.Info("latency workload written", "lines", res.Lines, "rate", fmt.Sprintf("%.0f", res.LinesPerSecond()))
	waitErr := rcv.WaitLines(ctx, res.Lines)
	r.Elapsed = time.Since(start)
	after, err := benchenv.ReadProc(a.pid())
	if err != nil {
		return err
	}
	r.CPU, r.PeakRSS = after.CPU-before.CPU, after.PeakRSS
	_, stopErr := a.stop(time.Minute)
	st := rcv.Stats()
	r.Received, r.Latency = st.Lines, st.Latency
	if waitErr != nil {
		return fmt.Errorf("%w\n%s", waitErr, a.logTail())
	}
	if stopErr != nil {
		return fmt.Errorf("%w\n%s", stopErr, a.logTail())
	}
	return nil
}

// traced is a receiver whose per-push trace goes to a CSV file, closed
// with the receiver.
type traced struct {
	*receiver.Server
	f *os.File
}

func (t *traced) Close() error {
	return errors.Join(t.Server.Close(), t.f.Close())
}

// listen starts a receiver on a free loopback port, tracing each push to
// tracePath for looking into latency afterwards.
func (h *harness) listen(tracePath string) (*traced, error) {
	f, err := os.Create(tracePath)
	if err != nil {
		return nil, fmt.Errorf("push trace: %w", err)
	}
	if _, err := f.WriteString(receiver.TraceHeader); err != nil {
		f.Close()
		return nil, fmt.Errorf("push trace: %w", err)
	}
	srv, err := receiver.Listen("127.0.0.1:0", receiver.Options{Logger: h.log, Trace: f})
	if err != nil {
		f.Close()
		return nil, err
	}
	return &traced{Server: srv, f: f}, nil
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
