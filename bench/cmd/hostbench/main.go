// Command hostbench measures what a scrape of host metrics costs: vigil with
// only its host source against Debian's node_exporter on the same machine,
// with the same collectors. It scrapes each one -scrapes times, alternating
// between them, and reports per-scrape CPU (utime+stime from /proc), scrape
// latency p50/p99, and peak RSS (VmHWM) of each process.
//
// Run it from the repository root:
//
//	go run ./bench/cmd/hostbench                      # common collectors, 200 scrapes each
//	go run ./bench/cmd/hostbench -collectors both     # also each with its full default set
//	go run ./bench/cmd/hostbench -standin             # node_exporter on both sides (proves the harness)
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchenv"
)

// targetCPURatio is the target: vigil's CPU per scrape at most half
// of node_exporter's.
const targetCPURatio = 0.5

type options struct {
	vigil        string
	build        bool
	nodeExporter string
	standin      bool
	scrapes      int
	warmup       int
	repeat       int
	collectors   string
	gzip         bool
	out          string
	record       bool
	results      string
	note         string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("hostbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.vigil, "vigil", "bin/vigil", "vigil binary")
	fs.BoolVar(&o.build, "build", true, "build the vigil binary first, as make build does (CGO_ENABLED=0 go build -trimpath -ldflags '-s -w')")
	fs.StringVar(&o.nodeExporter, "node-exporter", "", "node_exporter binary (default: prometheus-node-exporter or node_exporter from PATH)")
	fs.BoolVar(&o.standin, "standin", false, "run a second node_exporter where vigil would be, to check the harness before vigil has host metrics")
	fs.IntVar(&o.scrapes, "scrapes", 200, "measured scrapes of each exporter")
	fs.IntVar(&o.warmup, "warmup", 5, "unmeasured scrapes of each exporter first")
	fs.IntVar(&o.repeat, "repeat", 1, "measure each set this many times, each with both exporters started afresh; the verdicts use the medians")
	fs.StringVar(&o.collectors, "collectors", "common", "common: both with the collectors both enable by default; defaults: each with its own defaults; both: the two runs")
	fs.BoolVar(&o.gzip, "gzip", true, "ask for gzip like Prometheus does (compression is part of a scrape's cost)")
	fs.StringVar(&o.out, "out", "bench/out/host", "directory for configs and logs")
	fs.BoolVar(&o.record, "record", false, "append the results to -results")
	fs.StringVar(&o.results, "results", "bench/RESULTS.md", "results file for -record")
	fs.StringVar(&o.note, "note", "", "a remark recorded with the results")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hostbench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if o.repeat < 1 || o.scrapes < 1 {
		fmt.Fprintln(stderr, "hostbench: -repeat and -scrapes must be at least 1")
		return 2
	}
	switch o.collectors {
	case "common", "defaults", "both":
	default:
		fmt.Fprintf(stderr, "hostbench: -collectors %q: want common, defaults or both\n", o.collectors)
		return 2
	}
	b := &bench{o: o, args: args, log: slog.New(slog.NewTextHandler(stderr, nil))}
	report, err := b.main()
	fmt.Fprint(stdout, report)
	if err != nil {
		b.log.Error("benchmark failed", "err", err)
		return 1
	}
	return 0
}

type bench struct {
	o    options
	args []string
	log  *slog.Logger
	root string
	neV  string // node_exporter's version line
	runs []pairResult
	// Collector sets, from node_scrape_collector_success of each side
	// running its defaults.
	common, onlyNE, onlyVigil []string
}

// sideResult is one exporter's measurement.
type sideResult struct {
	Name       string
	Collectors int
	Scrapes    int
	Series     int   // samples in one uncompressed scrape
	WireBytes  int64 // bytes on the wire per scrape
	CPU        time.Duration
	Latencies  []time.Duration
	PeakRSS    int64
	RSSAnon    int64 // anonymous and file-backed RSS after the scrapes
	RSSFile    int64
}

// pairResult is vigil and node_exporter measured together.
type pairResult struct {
	Set   string // "common" or "defaults"
	NE    sideResult
	Vigil sideResult
	Err   error
}

func (b *bench) main() (string, error) {
	root, err := benchenv.RepoRoot()
	if errors.Is(err, benchenv.ErrNotInRepo) {
		return "", errors.New("run hostbench inside the vigil repository")
	}
	if err != nil {
		return "", err
	}
	b.root = root
	for _, p := range []*string{&b.o.vigil, &b.o.out, &b.o.results} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(root, *p)
		}
	}
	if b.o.nodeExporter == "" {
		for _, n := range []string{"prometheus-node-exporter", "node_exporter"} {
			if p, err := exec.LookPath(n); err == nil {
				b.o.nodeExporter = p
				break
			}
		}
		if b.o.nodeExporter == "" {
			return "", errors.New("no node_exporter in PATH (install Debian's prometheus-node-exporter, or pass -node-exporter)")
		}
	}
	if out, err := exec.Command(b.o.nodeExporter, "--version").CombinedOutput(); err == nil {
		b.neV, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	if err := os.MkdirAll(b.o.out, 0o755); err != nil {
		return "", err
	}
	if !b.o.standin && b.o.build {
		if err := b.buildVigil(); err != nil {
			return "", err
		}
	}
	textDir := filepath.Join(b.o.out, "textfile")
	if err := os.MkdirAll(textDir, 0o755); err != nil {
		return "", err
	}

	// Learn each side's default collectors.
	vCols, err := b.probe(b.startVigil("probe", nil, textDir, false))
	if err != nil {
		return "", fmt.Errorf("vigil: %w", err)
	}
	neCols, err := b.probe(b.startNodeExporter("probe", nil, textDir))
	if err != nil {
		return "", fmt.Errorf("node_exporter: %w", err)
	}
	for _, c := range neCols {
		if slices.Contains(vCols, c) {
			b.common = append(b.common, c)
		} else {
			b.onlyNE = append(b.onlyNE, c)
		}
	}
	for _, c := range vCols {
		if !slices.Contains(neCols, c) {
			b.onlyVigil = append(b.onlyVigil, c)
		}
	}
	b.log.Info("collectors", "common", len(b.common), "only_node_exporter", b.onlyNE, "only_vigil", b.onlyVigil)
	if len(b.common) == 0 {
		return "", errors.New("vigil and node_exporter have no default collector in common")
	}
	_, vigilHasTextfile := slices.BinarySearch(vCols, "textfile")

	var errs []error
	for range b.o.repeat {
		errs = append(errs, b.measureSets(textDir, neCols, vCols, vigilHasTextfile)...)
	}
	report := b.header() + "\n" + b.markdown()
	if b.o.record {
		if err := b.appendResults(report); err != nil {
			return report, err
		}
	}
	return report, errors.Join(errs...)
}

// measureSets measures each collector set once, both exporters started
// afresh.
func (b *bench) measureSets(textDir string, neCols, vCols []string, vigilHasTextfile bool) []error {
	var errs []error
	if b.o.collectors == "common" || b.o.collectors == "both" {
		disable := b.onlyVigil
		r := b.pair("common",
			func() (*proc, error) { return b.startNodeExporter("common", b.common, textDir) },
			func() (*proc, error) {
				if b.o.standin {
					return b.startNodeExporter("vigil-common", b.common, textDir)
				}
				return b.startVigil("common", disable, textDir, vigilHasTextfile)
			}, len(b.common), len(b.common))
		errs = append(errs, r.Err)
		b.runs = append(b.runs, r)
	}
	if b.o.collectors == "defaults" || b.o.collectors == "both" {
		r := b.pair("defaults",
			func() (*proc, error) { return b.startNodeExporter("defaults", nil, textDir) },
			func() (*proc, error) { return b.startVigil("defaults", nil, textDir, vigilHasTextfile) },
			len(neCols), len(vCols))
		errs = append(errs, r.Err)
		b.runs = append(b.runs, r)
	}
	return errs
}

func (b *bench) buildVigil() error {
	b.log.Info("building vigil", "output", b.o.vigil)
	return benchenv.BuildVigil(b.root, b.o.vigil)
}

// probe scrapes p once for the collectors it runs, then stops it.
func (b *bench) probe(p *proc, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer p.stop()
	body, err := p.get(false)
	if err != nil {
		return nil, err
	}
	cols := collectors(body)
	if len(cols) == 0 {
		return nil, fmt.Errorf("%s: no node_scrape_collector_success in /metrics", p.name)
	}
	return cols, nil
}

var collectorRE = regexp.MustCompile(`(?m)^node_scrape_collector_success\{collector="([^"]+)"\}`)

// collectors lists the collector labels of node_scrape_collector_success,
// sorted.
func collectors(body []byte) []string {
	var out []string
	for _, m := range collectorRE.FindAllSubmatch(body, -1) {
		out = append(out, string(m[1]))
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// countSeries counts the sample lines of a text exposition.
func countSeries(body []byte) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Bytes(); len(l) > 0 && l[0] != '#' {
			n++
		}
	}
	return n
}

// pair starts both exporters, warms them up, scrapes them alternately and
// measures each.
func (b *bench) pair(set string, startNE, startVigil func() (*proc, error), neCols, vCols int) pairResult {
	r := pairResult{Set: set}
	ne, err := startNE()
	if err != nil {
		r.Err = fmt.Errorf("%s: node_exporter: %w", set, err)
		return r
	}
	defer ne.stop()
	v, err := startVigil()
	if err != nil {
		r.Err = fmt.Errorf("%s: vigil: %w", set, err)
		return r
	}
	defer v.stop()
	r.NE = sideResult{Name: "node_exporter", Collectors: neCols, Scrapes: b.o.scrapes}
	r.Vigil = sideResult{Name: "vigil", Collectors: vCols, Scrapes: b.o.scrapes}
	if b.o.standin {
		r.Vigil.Name = "vigil (node_exporter stand-in)"
	}
	sides := []*struct {
		p *proc
		r *sideResult
	}{{ne, &r.NE}, {v, &r.Vigil}}
	for _, s := range sides {
		body, err := s.p.get(false)
		if err != nil {
			r.Err = fmt.Errorf("%s: %w", set, err)
			return r
		}
		s.r.Series = countSeries(body)
		for range b.o.warmup {
			if _, err := s.p.get(b.o.gzip); err != nil {
				r.Err = fmt.Errorf("%s: warm-up: %w", set, err)
				return r
			}
		}
	}
	before := make([]benchenv.ProcSample, 2)
	for i, s := range sides {
		if before[i], err = benchenv.ReadProc(s.p.cmd.Process.Pid); err != nil {
			r.Err = err
			return r
		}
	}
	var wire [2]int64
	for i := range b.o.scrapes {
		// Alternate who goes first, so neither always follows the other.
		for k := range 2 {
			j := (i + k) % 2
			s := sides[j]
			start := time.Now()
			n, err := s.p.scrape(b.o.gzip)
			s.r.Latencies = append(s.r.Latencies, time.Since(start))
			if err != nil {
				r.Err = fmt.Errorf("%s: scrape %d of %s: %w", set, i, s.p.name, err)
				return r
			}
			wire[j] += n
		}
	}
	for i, s := range sides {
		after, err := benchenv.ReadProc(s.p.cmd.Process.Pid)
		if err != nil {
			r.Err = err
			return r
		}
		s.r.CPU = after.CPU - before[i].CPU
		s.r.PeakRSS = after.PeakRSS
		s.r.RSSAnon, s.r.RSSFile = after.RSSAnon, after.RSSFile
		s.r.WireBytes = wire[i] / int64(b.o.scrapes)
	}
	b.log.Info("measured", "set", set,
		"node_exporter_cpu_ms_per_scrape", fmt.Sprintf("%.2f", perScrapeMs(r.NE)),
		"vigil_cpu_ms_per_scrape", fmt.Sprintf("%.2f", perScrapeMs(r.Vigil)))
	return r
}

// proc is a running exporter.
type proc struct {
	name   string
	cmd    *exec.Cmd
	addr   string
	logf   *os.File
	exited chan struct{}
}

// start runs bin with args (plus the listen address from addrArgs) and
// waits until /metrics answers.
func (b *bench) start(name, bin string, addrArgs func(addr string) []string, args []string) (*proc, error) {
	addr, err := benchenv.FreeAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(b.o.out, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, addr: addr, logf: logf, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append(addrArgs(addr), args...)...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	b.log.Info("started", "name", name, "pid", p.cmd.Process.Pid, "cmd", strings.Join(p.cmd.Args, " "))
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			p.stop()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%s exited at start: %s", name, tailString(string(log), 2000))
		default:
		}
		if _, err := p.get(false); err == nil {
			return p, nil
		} else if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s: /metrics not answering within 30s: %w", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	p.logf.Close()
}

// neArgs are node_exporter's flags for a collector set (nil: its defaults),
// brought to upstream's behaviour where Debian's build differs: lo counted
// by netdev, textfiles from textDir.
func neArgs(cols []string, textDir string) []string {
	args := []string{"--collector.netdev.device-exclude=", "--collector.textfile.directory=" + textDir, "--log.level=warn"}
	if cols != nil {
		args = append(args, "--collector.disable-defaults")
		for _, c := range cols {
			args = append(args, "--collector."+c)
		}
	}
	return args
}

func (b *bench) startNodeExporter(name string, cols []string, textDir string, extra ...string) (*proc, error) {
	return b.start("node_exporter-"+name, b.o.nodeExporter, func(addr string) []string {
		return []string{"--web.listen-address=" + addr}
	}, append(neArgs(cols, textDir), extra...))
}

// startVigil runs vigil with only a host source, disabling the named
// collectors; with textfile, the textfile collector reads textDir.
func (b *bench) startVigil(name string, disable []string, textDir string, textfile bool) (*proc, error) {
	if b.o.standin {
		// Upstream's defaults, which vigil follows: Debian's build
		// enables systemd too.
		return b.startNodeExporter("vigil-"+name, nil, textDir, "--no-collector.systemd")
	}
	var c strings.Builder
	c.WriteString("sources:\n  host:\n    type: host\n")
	if len(disable) > 0 {
		c.WriteString("    disable: [")
		for i, d := range disable {
			if i > 0 {
				c.WriteString(", ")
			}
			c.WriteString(strconv.Quote(d))
		}
		c.WriteString("]\n")
	}
	if textfile {
		fmt.Fprintf(&c, "    options:\n      \"textfile.directory\": %s\n", strconv.Quote(textDir))
	}
	cfg := filepath.Join(b.o.out, "vigil-"+name+".yaml")
	if err := os.WriteFile(cfg, []byte(c.String()), 0o644); err != nil {
		return nil, err
	}
	return b.start("vigil-"+name, b.o.vigil, func(addr string) []string {
		return []string{"-config.file", cfg, "-web.listen-address", addr}
	}, nil)
}

var httpClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1},
}

// scrape GETs /metrics as Prometheus does and returns the bytes received.
func (p *proc) scrape(gz bool) (int64, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+p.addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, err
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("status %d", resp.StatusCode)
	}
	return n, nil
}

// get returns the exposition text, decompressed.
func (p *proc) get(gz bool) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+p.addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, err
		}
		r = zr
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, tailString(string(body), 300))
	}
	return body, nil
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// --- report ---

func perScrapeMs(r sideResult) float64 {
	if r.Scrapes == 0 {
		return 0
	}
	return float64(r.CPU.Microseconds()) / 1000 / float64(r.Scrapes)
}

// quantile is the nearest-rank quantile of d.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (b *bench) markdown() string {
	var s strings.Builder
	fmt.Fprintf(&s, "Collectors enabled by default in both (%d): %s\n\n", len(b.common), strings.Join(b.common, ", "))
	fmt.Fprintf(&s, "Only in node_exporter's defaults: %s. Only in vigil's: %s.\n\n", listOrNone(b.onlyNE), listOrNone(b.onlyVigil))
	s.WriteString("| set | exporter | collectors | scrapes | series | bytes/scrape | CPU s | CPU ms/scrape | p50 ms | p99 ms | max ms | peak RSS MB | RSS anon / file MB |\n")
	s.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range b.runs {
		if r.Err != nil && r.NE.Scrapes == 0 {
			fmt.Fprintf(&s, "| %s | failed: %s |||||||||||\n", r.Set, benchenv.OneLine(r.Err))
			continue
		}
		for _, x := range []sideResult{r.NE, r.Vigil} {
			fmt.Fprintf(&s, "| %s | %s | %d | %d | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f / %.1f |\n",
				r.Set, x.Name, x.Collectors, x.Scrapes, x.Series, x.WireBytes, x.CPU.Seconds(), perScrapeMs(x),
				ms(quantile(x.Latencies, 0.5)), ms(quantile(x.Latencies, 0.99)), ms(quantile(x.Latencies, 1)),
				mib(x.PeakRSS), mib(x.RSSAnon), mib(x.RSSFile))
		}
	}
	s.WriteString("\nTargets")
	if b.o.repeat > 1 {
		fmt.Fprintf(&s, " (medians of %d runs; each run's figures are in the table)", b.o.repeat)
	}
	s.WriteString(":\n\n")
	for _, set := range []string{"common", "defaults"} {
		var ok []pairResult
		for _, r := range b.runs {
			if r.Set != set {
				continue
			}
			if r.Err != nil {
				fmt.Fprintf(&s, "- %s: failed: %s\n", r.Set, benchenv.OneLine(r.Err))
				continue
			}
			ok = append(ok, r)
		}
		if len(ok) == 0 {
			continue
		}
		ratios := make([]float64, len(ok))
		var neMs, vMs, nePeak, vPeak, neAnon, vAnon, neFile, vFile []float64
		within := 0
		for i, r := range ok {
			ne, v := perScrapeMs(r.NE), perScrapeMs(r.Vigil)
			if ne > 0 {
				ratios[i] = v / ne
			}
			neMs, vMs = append(neMs, ne), append(vMs, v)
			nePeak, vPeak = append(nePeak, mib(r.NE.PeakRSS)), append(vPeak, mib(r.Vigil.PeakRSS))
			neAnon, vAnon = append(neAnon, mib(r.NE.RSSAnon)), append(vAnon, mib(r.Vigil.RSSAnon))
			neFile, vFile = append(neFile, mib(r.NE.RSSFile)), append(vFile, mib(r.Vigil.RSSFile))
			if r.Vigil.PeakRSS <= r.NE.PeakRSS {
				within++
			}
		}
		ratio := median(ratios)
		if set != "common" {
			fmt.Fprintf(&s, "- %s collectors (different sets, for reference): vigil %.2f ms CPU per scrape, node_exporter %.2f ms: ×%.2f\n", set, median(vMs), median(neMs), ratio)
			continue
		}
		fmt.Fprintf(&s, "- %s collectors: vigil %.2f ms CPU per scrape, node_exporter %.2f ms: ×%.2f (target ≤ ×%.1f): %s",
			set, median(vMs), median(neMs), ratio, targetCPURatio, benchenv.Verdict(ratio <= targetCPURatio))
		if len(ok) > 1 {
			fmt.Fprintf(&s, "; the runs' ratios ×%.2f–×%.2f", slices.Min(ratios), slices.Max(ratios))
		}
		s.WriteString("\n")
		fmt.Fprintf(&s, "- %s collectors: vigil's peak RSS %.1f MB, node_exporter's %.1f MB (floor: at most node_exporter's): %s",
			set, median(vPeak), median(nePeak), benchenv.Verdict(median(vPeak) <= median(nePeak)))
		if len(ok) > 1 {
			fmt.Fprintf(&s, "; vigil's at most node_exporter's in %d of %d runs", within, len(ok))
		}
		fmt.Fprintf(&s, "; after the scrapes, anonymous %.1f vs %.1f MB, file-backed (the binary's pages) %.1f vs %.1f MB\n",
			median(vAnon), median(neAnon), median(vFile), median(neFile))
	}
	s.WriteString("\n")
	return s.String()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// median is the middle value of v (the mean of the two middle ones for an
// even count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// header says what was measured, where, and how to run it again.
func (b *bench) header() string {
	var s strings.Builder
	fmt.Fprintf(&s, "- command: `%s`\n", benchenv.CommandLine("./bench/cmd/hostbench", b.args))
	fmt.Fprintf(&s, "- machine: nproc %d, %s, Linux %s\n", runtime.NumCPU(), benchenv.CPUModel(), benchenv.KernelRelease())
	fmt.Fprintf(&s, "- go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if b.o.standin {
		s.WriteString("- vigil: not measured: node_exporter stands in for it (-standin)\n")
	} else {
		fmt.Fprintf(&s, "- vigil: commit %s\n", benchenv.Revision(b.root, b.o.vigil))
	}
	fmt.Fprintf(&s, "- node_exporter: %s (%s)\n", b.neV, b.o.nodeExporter)
	fmt.Fprintf(&s, "- scrapes: %d per exporter after %d warm-up, alternating, sequential, in %d run(s) with both started afresh; gzip %v; CPU is utime+stime from /proc/<pid>/stat (10 ms ticks) over the measured scrapes\n", b.o.scrapes, b.o.warmup, b.o.repeat, b.o.gzip)
	if b.o.note != "" {
		fmt.Fprintf(&s, "- note: %s\n", b.o.note)
	}
	return s.String()
}

func (b *bench) appendResults(report string) error {
	var s strings.Builder
	fmt.Fprintf(&s, "\n## %s: host\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	s.WriteString(report)
	return benchenv.AppendFile(b.o.results, s.String())
}
