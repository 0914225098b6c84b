package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/bench/internal/benchenv"
	"github.com/vigilhq/vigil/bench/internal/loggen"
	"github.com/vigilhq/vigil/bench/internal/rawread"
	"github.com/vigilhq/vigil/pipeline"
)

// TestConfigTemplates renders the shipped templates and loads them with
// vigil's own config loader, so a template that vigil would reject fails
// here rather than in the middle of a benchmark. Whether vigil has the
// stages the templates name is for vigil validate (see TestEndToEnd).
func TestConfigTemplates(t *testing.T) {
	root, err := benchenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	d := templateData{LogGlob: "/tmp/bench/logs/*.log", LogDir: "/tmp/bench/logs", PositionsFile: "/tmp/bench/positions.yaml", PushURL: "http://127.0.0.1:40000/loki/api/v1/push"}
	for _, tt := range []struct {
		file, format string
		stages       []string // processor types, in order
	}{
		{"passthrough.yaml", "native", nil},
		{"promtail.yaml", "promtail", nil},
		{"json.yaml", "promtail", []string{"json", "labels", "timestamp"}},
		{"regex.yaml", "promtail", []string{"regex", "labels"}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "vigil.yaml")
			if err := renderConfig(filepath.Join(root, "bench", "configs", tt.file), out, d); err != nil {
				t.Fatal(err)
			}
			cfg, err := pipeline.LoadFile(out, pipeline.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Format != tt.format {
				t.Errorf("format %q, want %q", cfg.Format, tt.format)
			}
			if len(cfg.Sources) != 1 || len(cfg.Sinks) != 1 || len(cfg.Pipelines) != 1 {
				t.Errorf("want one source, one sink, one pipeline; got %d, %d, %d",
					len(cfg.Sources), len(cfg.Sinks), len(cfg.Pipelines))
			}
			var types []string
			for _, p := range cfg.Processors {
				types = append(types, p.Type)
			}
			if !slices.Equal(types, tt.stages) {
				t.Errorf("processors %v, want %v", types, tt.stages)
			}
			if cfg.Positions.Filename != d.PositionsFile {
				t.Errorf("positions file %q, want %q", cfg.Positions.Filename, d.PositionsFile)
			}
			y, err := cfg.YAML()
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{d.LogGlob, d.PushURL, "job: bench"} {
				if !bytes.Contains(y, []byte(want)) {
					t.Errorf("effective config lacks %q:\n%s", want, y)
				}
			}
		})
	}
}

func TestRenderConfigMissingKey(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(tmpl, []byte("url: {{.NoSuchField}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := renderConfig(tmpl, filepath.Join(dir, "out.yaml"), templateData{}); err == nil {
		t.Error("a template with an unknown placeholder rendered without error")
	}
}

func TestBaselineChild(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	if err := os.WriteFile(p, []byte("one\ntwo\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := baselineChild([]string{p}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var res rawread.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Lines != 3 || res.Bytes != 14 {
		t.Errorf("baseline counted %+v, want 3 lines, 14 bytes", res)
	}
	if code := baselineChild([]string{p + ".missing"}, &out, &errOut); code == 0 {
		t.Error("missing file: exit 0")
	}
}

func TestMarkdownAndVerdicts(t *testing.T) {
	h := &harness{args: []string{"-scenario", "all", "-note", "two words"}}
	h.tp = []throughputResult{
		{Scenario: "manyfiles", Config: "passthrough.yaml", Files: 1, Lines: 2_000_000, Received: 2_000_000, Wall: 2 * time.Second, CPU: time.Second, PeakRSS: 30 << 20,
			Baseline: baselineResult{Lines: 2_000_000, Wall: 100 * time.Millisecond, CPU: 50 * time.Millisecond}},
		{Scenario: "manyfiles", Config: "passthrough.yaml", Files: 1000, Lines: 2_000_000, Received: 2_000_001, Wall: 3 * time.Second, CPU: 1500 * time.Millisecond, PeakRSS: 50 << 20,
			Baseline: baselineResult{Lines: 2_000_000, Wall: 200 * time.Millisecond, CPU: 100 * time.Millisecond}},
		{Scenario: "json", Config: "json.yaml", Files: 1, Lines: 2_000_000, Received: 2_000_000, Wall: 2 * time.Second, CPU: 1600 * time.Millisecond, PeakRSS: 30 << 20,
			Baseline: baselineResult{Lines: 2_000_000, Wall: 100 * time.Millisecond, CPU: 80 * time.Millisecond}},
		{Scenario: "regex", Config: "regex.yaml", Files: 1, Lines: 2_000_000, Received: 1_999_999, Wall: 5 * time.Second, CPU: 5 * time.Second, PeakRSS: 60 << 20,
			Baseline: baselineResult{Lines: 2_000_000, Wall: 100 * time.Millisecond, CPU: 80 * time.Millisecond}},
		{Scenario: "json", Config: "json.yaml", Files: 1, Lines: 2_000_000,
			Err: errors.New(`json-1: vigil validate: exit status 1: x.yaml:10:9: processor "bench/0/json": unknown type "json"` + "\nmore")},
	}
	h.lat = []latencyResult{{Config: "passthrough.yaml", Rate: 10000, Duration: 30 * time.Second, Written: 300000, Received: 300000, Elapsed: 31 * time.Second, CPU: 3100 * time.Millisecond}}
	h.lat[0].Latency.P50Ms, h.lat[0].Latency.P99Ms = 600, 1300
	md := h.markdown()
	for _, want := range []string{
		"| manyfiles | passthrough.yaml | 1 | 2000000 | 2.00 | 1.00M | 1.00 | 2.00M | 0.500 | 30.0 | 20.00M | 40.00M | 0.0500 |",
		"2000000 (received 2000001)",
		"| latency | passthrough.yaml | 10000 | 30 | 300000 | 300000 | 600.0 | 1300.0 |",
		"manyfiles, 1 file(s): 2.00M lines per CPU-second (target ≥ 1.50M): met; peak RSS 30.0 MB (target ≤ 40 MB): met",
		"manyfiles, 1000 file(s): 1.33M lines per CPU-second (target ≥ 1.50M): **missed**; peak RSS 50.0 MB (target ≤ 40 MB): **missed**",
		"CPU per line (median of 1 and 1 runs), 1 file vs 1000 files: 0.500 vs 0.750 µs (×1.50; target: not growing, ≤ ×1.10): **missed**",
		"p99 1300.0 ms (target ≤ batchwait 1000 ms + 250 ms = 1250 ms): **missed**; received 300000 of 300000: met",
		"| json | json.yaml | 1 | 2000000 | 2.00 | 1.00M | 1.60 | 1.25M | 0.800 | 30.0 |",
		"- json, 1 file(s): 1.25M lines per CPU-second (floor ≥ 1.00M): met; peak RSS 30.0 MB (no target)\n",
		"- regex, 1 file(s): 400.0k lines per CPU-second (floor ≥ 500.0k): **missed**; peak RSS 60.0 MB (no target); received 1999999 lines for 2000000 written\n",
		`| json | json.yaml | 1 | 2000000 | failed: json-1: vigil validate: exit status 1: x.yaml:10:9: processor "bench/0/json": unknown type "json" |`,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if got, want := h.commandLine(), `go run ./bench/cmd/harness -scenario all -note "two words"`; got != want {
		t.Errorf("command line %q, want %q", got, want)
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestBufferBytesPlaceholder(t *testing.T) {
	root, err := benchenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		bytes int64
		want  pipeline.ByteSize
	}{{0, pipeline.DefaultBufferBytes}, {2 << 20, 2 << 20}} {
		out := filepath.Join(t.TempDir(), "vigil.yaml")
		d := templateData{LogGlob: "/tmp/x.log", PositionsFile: "/tmp/p.yaml", PushURL: "http://127.0.0.1:1/loki/api/v1/push", BufferBytes: tt.bytes}
		if err := renderConfig(filepath.Join(root, "bench", "configs", "passthrough.yaml"), out, d); err != nil {
			t.Fatal(err)
		}
		cfg, err := pipeline.LoadFile(out, pipeline.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Buffer.MaxBytes != tt.want {
			t.Errorf("BufferBytes %d: max_bytes %d, want %d", tt.bytes, cfg.Buffer.MaxBytes, tt.want)
		}
	}
}

func TestEnvironment(t *testing.T) {
	root, err := benchenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "vigil")
	if err := os.WriteFile(bin, []byte("abc"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := &harness{root: root, o: options{vigil: bin}}
	env := h.environment()
	// sha256("abc") starts with ba7816bf8f01.
	for _, want := range []string{"- machine: nproc ", "- go: go1.", "binary vigil sha256 ba7816bf8f01"} {
		if !strings.Contains(env, want) {
			t.Errorf("environment lacks %q:\n%s", want, env)
		}
	}
}

// stages renders a Promtail-format template and returns its first scrape
// config's pipeline_stages, each as stage name → settings.
func stages(t *testing.T, file string) []map[string]map[string]any {
	t.Helper()
	root, err := benchenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "vigil.yaml")
	d := templateData{LogGlob: "/tmp/x.log", PositionsFile: "/tmp/p.yaml", PushURL: "http://127.0.0.1:1/loki/api/v1/push"}
	if err := renderConfig(filepath.Join(root, "bench", "configs", file), out, d); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			PipelineStages []map[string]map[string]any `yaml:"pipeline_stages"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("%s has %d scrape configs, want 1", file, len(cfg.ScrapeConfigs))
	}
	return cfg.ScrapeConfigs[0].PipelineStages
}

// stageSetting returns a stage's setting, failing if the stage is not at
// position i.
func stageSetting(t *testing.T, st []map[string]map[string]any, i int, stage, key string) any {
	t.Helper()
	if i >= len(st) || st[i][stage] == nil {
		t.Fatalf("stage %d is not %s: %v", i, stage, st)
	}
	return st[i][stage][key]
}

// configRegex compiles the regex stage's expression from regex.yaml with
// Go's RE2 syntax, which is Promtail's.
func configRegex(t *testing.T) *regexp.Regexp {
	t.Helper()
	expr, ok := stageSetting(t, stages(t, "regex.yaml"), 0, "regex", "expression").(string)
	if !ok {
		t.Fatal("regex.yaml: the regex stage has no expression")
	}
	return regexp.MustCompile(expr)
}

// accessFields splits an access-log line without a regex, to check the
// config's regex against: ip, user, method, path, status and size.
func accessFields(line string) (map[string]string, bool) {
	ip, rest, ok := strings.Cut(line, " - ")
	if !ok {
		return nil, false
	}
	user, rest, ok := strings.Cut(rest, " [")
	if !ok {
		return nil, false
	}
	_, rest, ok = strings.Cut(rest, "] \"")
	if !ok {
		return nil, false
	}
	request, rest, ok := strings.Cut(rest, "\" ")
	if !ok {
		return nil, false
	}
	req := strings.Split(request, " ")
	resp := strings.SplitN(rest, " ", 3)
	if len(req) != 3 || len(resp) != 3 {
		return nil, false
	}
	return map[string]string{"ip": ip, "user": user, "method": req[0], "path": req[1], "status": resp[0], "size": resp[1]}, true
}

// TestRegexConfigMatchesWorkload checks the regex scenario's expression
// against the workload it runs on: every generated line matches, and each
// of the six groups holds exactly its field.
func TestRegexConfigMatchesWorkload(t *testing.T) {
	re := configRegex(t)
	want := []string{"ip", "user", "method", "path", "status", "size"}
	var names []string
	for _, n := range re.SubexpNames() {
		if n != "" {
			names = append(names, n)
		}
	}
	if !slices.Equal(names, want) {
		t.Fatalf("named groups %v, want %v", names, want)
	}
	st := stages(t, "regex.yaml")
	stageSetting(t, st, 1, "labels", "")
	for _, label := range []string{"method", "status"} {
		if v, ok := st[1]["labels"][label]; !ok || v != nil {
			// A null value takes the extracted field of the same name.
			t.Errorf("labels stage: %s is %v (present %v), want the group of the same name", label, v, ok)
		}
	}
	g := loggen.NewGenerator(workloadSeed)
	base := time.Date(2025, 11, 25, 17, 39, 1, 0, time.UTC)
	var line []byte
	methods := map[string]bool{}
	for i := range 10_000 {
		line = g.AppendLine(line[:0], base.Add(time.Duration(i)*time.Millisecond))
		m := re.FindStringSubmatch(string(line))
		if m == nil {
			t.Fatalf("line %d does not match %s:\n%s", i, re, line)
		}
		fields, ok := accessFields(string(line))
		if !ok {
			t.Fatalf("line %d: cannot split %q", i, line)
		}
		for _, name := range want {
			if got := m[re.SubexpIndex(name)]; got != fields[name] {
				t.Fatalf("line %d: group %s = %q, want %q:\n%s", i, name, got, fields[name], line)
			}
		}
		methods[fields["method"]] = true
	}
	if len(methods) < 5 {
		t.Errorf("only %d methods in 10,000 lines; the regex saw too little variety", len(methods))
	}
	// And it is not so loose that it matches anything.
	for _, bad := range []string{
		"",
		`{"ts":"2025-11-25T17:39:01Z","level":"info"}`,
		`203.0.113.7 - - [25/Nov/2025:17:39:01 +0000] "get / HTTP/1.1" 200 5 "-" "curl"`,
		`203.0.113.7 - - [25/Nov/2025:17:39:01 +0000] "GET / HTTP/1.1" 20 5 "-" "curl"`,
	} {
		if re.MatchString(bad) {
			t.Errorf("the regex matches %q", bad)
		}
	}
}

// TestJSONConfigFitsWorkload checks the json scenario's stages against its
// workload: every field the json stage extracts is in every line, and the
// timestamp stage's format reads ts back as the exact write time.
func TestJSONConfigFitsWorkload(t *testing.T) {
	st := stages(t, "json.yaml")
	exprs, ok := stageSetting(t, st, 0, "json", "expressions").(map[string]any)
	if !ok || len(exprs) != 3 {
		t.Fatalf("json stage expressions %v, want level, tenant and ts", exprs)
	}
	for name, e := range exprs {
		// An empty expression means the field of the same name.
		if e != nil && e != name {
			t.Fatalf("expression %s: %v; this test only knows top-level fields", name, e)
		}
	}
	if got := stageSetting(t, st, 2, "timestamp", "format"); got != "RFC3339Nano" {
		t.Fatalf("timestamp format %v, want RFC3339Nano", got)
	}
	source, _ := stageSetting(t, st, 2, "timestamp", "source").(string)
	if _, ok := exprs[source]; !ok {
		t.Fatalf("timestamp source %q is not extracted by the json stage", source)
	}
	for _, label := range []string{"level", "tenant"} {
		if _, ok := st[1]["labels"][label]; !ok {
			t.Errorf("labels stage lacks %s", label)
		}
	}
	g := loggen.NewGenerator(workloadSeed)
	base := time.Date(2025, 11, 25, 17, 39, 1, 0, time.UTC)
	var line []byte
	for i := range 10_000 {
		now := base.Add(time.Duration(i) * 1_000_003)
		line = g.AppendJSONLine(line[:0], now)
		var fields map[string]any
		if err := json.Unmarshal(line, &fields); err != nil {
			t.Fatalf("line %d: %v: %q", i, err, line)
		}
		for name := range exprs {
			if v, ok := fields[name].(string); !ok || v == "" {
				t.Fatalf("line %d: field %s missing or not a string: %q", i, name, line)
			}
		}
		ts, err := time.Parse(time.RFC3339Nano, fields[source].(string))
		if err != nil || ts.UnixNano() != now.UnixNano() {
			t.Fatalf("line %d: %s parses as %v, %v; want %v", i, source, ts, err, now)
		}
	}
}

// workloadStreams is the number of distinct label values a labels stage
// makes of the throughput workload of a scenario: the same content the
// harness writes, since the content depends on the seed only.
func workloadStreams(t *testing.T, scenario string, lines int64) int64 {
	t.Helper()
	var buf bytes.Buffer
	if _, err := loggen.Write(context.Background(), loggen.Config{Out: &buf, Lines: lines, Seed: workloadSeed, Format: workloadFormat(scenario)}); err != nil {
		t.Fatal(err)
	}
	var re *regexp.Regexp
	if scenario == "regex" {
		re = configRegex(t)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		switch scenario {
		case "json":
			var f struct{ Level, Tenant string }
			if err := json.Unmarshal([]byte(line), &f); err != nil {
				t.Fatal(err)
			}
			seen[f.Level+"/"+f.Tenant] = true
		case "regex":
			m := re.FindStringSubmatch(line)
			seen[m[re.SubexpIndex("method")]+"/"+m[re.SubexpIndex("status")]] = true
		default:
			t.Fatalf("no labels stage in scenario %s", scenario)
		}
	}
	return int64(len(seen))
}

func TestWorkloadFormat(t *testing.T) {
	for scenario, want := range map[string]loggen.Format{
		"passthrough": loggen.Access, "promtail": loggen.Access, "manyfiles": loggen.Access,
		"regex": loggen.Access, "json": loggen.JSON,
	} {
		if got := workloadFormat(scenario); got != want {
			t.Errorf("%s: format %v, want %v", scenario, got, want)
		}
	}
}
