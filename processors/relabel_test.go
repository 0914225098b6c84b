package processors

import (
	"crypto/md5"
	"encoding/binary"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// newRelabelForTest builds a relabel processor from YAML written as the
// processor's body in a config file named x.yaml.
func newRelabelForTest(t testing.TB, body string) (pipeline.Processor, *pipeline.Metrics, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("test YAML: %v", err)
	}
	m := pipeline.NewTestMetrics()
	env := pipeline.Env{
		Name:       "relabel_under_test",
		Decoder:    pipeline.Decoder{File: "x.yaml"},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:    m,
		Registerer: prometheus.NewRegistry(),
	}
	p, err := pipeline.NewProcessor(env, "relabel", doc.Content[0], doc.Content[0])
	return p, m, err
}

func relabelCounterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// relabelLabels parses "a=1,b=2" into a sorted label set.
func relabelLabels(s string) pipeline.Labels {
	m := map[string]string{}
	if s != "" {
		for _, kv := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
	}
	return pipeline.LabelsFromMap(m)
}

func relabelHashmodForTest(val string, mod uint64) string {
	sum := md5.Sum([]byte(val))
	return strconv.FormatUint(binary.BigEndian.Uint64(sum[8:])%mod, 10)
}

func TestRelabelActions(t *testing.T) {
	tests := []struct {
		name  string
		rules string
		in    string
		want  string // "" with dropped set means the entry is dropped
		drop  bool
	}{
		// replace: the source values joined by the separator are matched
		// against the anchored regex; on a match, the replacement with
		// its $N references expanded is written to target_label.
		{"replace joins sources with the default separator", `
- source_labels: [app, env]
  regex: '(.+);(.+)'
  target_label: svc
  replacement: $1-$2`, "app=api,env=prod", "app=api,env=prod,svc=api-prod", false},
		{"replace with a custom separator", `
- source_labels: [app, env]
  separator: /
  target_label: path`, "app=api,env=prod", "app=api,env=prod,path=api/prod", false},
		{"replace leaves the set alone when the regex does not match", `
- source_labels: [app]
  regex: 'web-(.*)'
  target_label: tier
  replacement: $1`, "app=api", "app=api", false},
		{"replace regex is anchored at both ends", `
- source_labels: [app]
  regex: 'pi'
  target_label: matched
  replacement: yes`, "app=api", "app=api", false},
		{"replace to an empty value deletes the target", `
- source_labels: [missing]
  target_label: app`, "app=api,env=prod", "env=prod", false},
		{"replace defaults copy a label", `
- source_labels: [app]
  target_label: service`, "app=api", "app=api,service=api", false},
		{"replace with a templated target label", `
- source_labels: [kind, value]
  regex: '(.+);(.+)'
  target_label: 'k_$1'
  replacement: $2`, "kind=zone,value=eu", "k_zone=eu,kind=zone,value=eu", false},
		{"replace with a fixed value and no sources", `
- target_label: cluster
  replacement: blue`, "app=api", "app=api,cluster=blue", false},

		// keep and drop match the regex against the joined sources; a
		// missing label reads as the empty string.
		{"keep keeps a match", `
- source_labels: [level]
  regex: 'error|warn'
  action: keep`, "level=warn", "level=warn", false},
		{"keep drops a non-match", `
- source_labels: [level]
  regex: 'error|warn'
  action: keep`, "level=info", "", true},
		{"keep drops when the source label is missing", `
- source_labels: [level]
  regex: '.+'
  action: keep`, "app=api", "", true},
		{"drop drops a match", `
- source_labels: [app, env]
  regex: 'api;dev'
  action: drop`, "app=api,env=dev", "", true},
		{"drop keeps a non-match", `
- source_labels: [app, env]
  regex: 'api;dev'
  action: drop`, "app=api,env=prod", "app=api,env=prod", false},

		// keepequal and dropequal compare the joined sources with the
		// value of target_label.
		{"keepequal keeps equal values", `
- source_labels: [a]
  target_label: b
  action: keepequal`, "a=x,b=x", "a=x,b=x", false},
		{"keepequal drops different values", `
- source_labels: [a]
  target_label: b
  action: keepequal`, "a=x,b=y", "", true},
		{"dropequal drops equal values", `
- source_labels: [a]
  target_label: b
  action: dropequal`, "a=x,b=x", "", true},
		{"dropequal keeps different values", `
- source_labels: [a]
  target_label: b
  action: dropequal`, "a=x,b=y", "a=x,b=y", false},

		// hashmod writes md5(joined sources) modulo modulus, taken from
		// the last 8 bytes of the digest, big endian.
		{"hashmod", `
- source_labels: [pod]
  modulus: 8
  target_label: shard
  action: hashmod`, "pod=web-7d9f", "pod=web-7d9f,shard=" + relabelHashmodForTest("web-7d9f", 8), false},
		{"hashmod over joined sources", `
- source_labels: [a, b]
  modulus: 1000
  target_label: shard
  action: hashmod`, "a=1,b=2", "a=1,b=2,shard=" + relabelHashmodForTest("1;2", 1000), false},

		// labelmap copies every label whose name matches the regex to the
		// name the replacement gives; the original stays.
		{"labelmap copies matching names", `
- regex: 'k8s_(.+)'
  action: labelmap`, "k8s_ns=default,k8s_pod=p1,job=x", "job=x,k8s_ns=default,k8s_pod=p1,ns=default,pod=p1", false},
		{"labelmap with a replacement template", `
- regex: 'docker_(.+)'
  replacement: 'c_$1'
  action: labelmap`, "docker_name=web", "c_name=web,docker_name=web", false},

		// labeldrop and labelkeep match the regex against label names.
		{"labeldrop drops matching names", `
- regex: 'pod|instance'
  action: labeldrop`, "instance=i1,job=x,pod=p1", "job=x", false},
		{"labeldrop name regex is anchored", `
- regex: 'po'
  action: labeldrop`, "pod=p1", "pod=p1", false},
		{"labelkeep keeps matching names only", `
- regex: 'job|level'
  action: labelkeep`, "instance=i1,job=x,level=info,pod=p1", "job=x,level=info", false},

		// lowercase and uppercase write the case-mapped joined sources.
		{"lowercase", `
- source_labels: [Level]
  target_label: level
  action: lowercase`, "Level=WARN", "Level=WARN,level=warn", false},
		{"uppercase over joined sources", `
- source_labels: [a, b]
  target_label: ab
  action: uppercase`, "a=x,b=y", "a=x,ab=X;Y,b=y", false},

		// Rules run in order, each on the previous result, and labels
		// starting with __ are removed at the end.
		{"rules chain and __ labels are scratch space", `
- source_labels: [app]
  target_label: __tmp_app
- source_labels: [__tmp_app]
  regex: 'a(.*)'
  target_label: short
  replacement: $1
- regex: app
  action: labeldrop`, "app=api,env=prod", "env=prod,short=pi", false},
		{"__meta labels map to plain names and disappear", `
- regex: '__meta_docker_(.+)'
  action: labelmap`, "__meta_docker_container=web,job=d", "container=web,job=d", false},
		{"a drop stops later rules", `
- source_labels: [app]
  regex: api
  action: drop
- target_label: never
  replacement: set`, "app=api", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, m, err := newRelabelForTest(t, "configs:"+indentForRelabelTest(tc.rules))
			if err != nil {
				t.Fatal(err)
			}
			b := pipeline.NewBatch(1, nil)
			b.Entries = append(b.Entries, pipeline.Entry{Line: []byte("line"), Labels: relabelLabels(tc.in)})
			p.Process(b)
			dropped := relabelCounterValue(t, m.Dropped.WithLabelValues("relabel_under_test", "relabel"))
			if tc.drop {
				if len(b.Entries) != 0 {
					t.Fatalf("entry kept with %v, want dropped", b.Entries[0].Labels)
				}
				if dropped != 1 {
					t.Fatalf("dropped counter = %v, want 1", dropped)
				}
				return
			}
			if len(b.Entries) != 1 {
				t.Fatalf("entry dropped, want %s", tc.want)
			}
			if got, want := b.Entries[0].Labels.String(), relabelLabels(tc.want).String(); got != want {
				t.Fatalf("labels = %s, want %s", got, want)
			}
			if string(b.Entries[0].Line) != "line" {
				t.Fatalf("line changed to %q", b.Entries[0].Line)
			}
			if dropped != 0 {
				t.Fatalf("dropped counter = %v, want 0", dropped)
			}
		})
	}
}

func indentForRelabelTest(s string) string {
	return strings.ReplaceAll(s, "\n", "\n  ")
}

// The cache must give each distinct input its own result, whether the
// label slice is shared, rebuilt with equal content, or interleaved with
// other streams.
func TestRelabelCacheKeepsStreamsApart(t *testing.T) {
	p, m, err := newRelabelForTest(t, `
configs:
  - source_labels: [level]
    regex: debug
    action: drop
  - source_labels: [app]
    target_label: service
`)
	if err != nil {
		t.Fatal(err)
	}
	api, web := relabelLabels("app=api,level=info"), relabelLabels("app=web,level=info")
	debug := relabelLabels("app=api,level=debug")
	b := pipeline.NewBatch(8, nil)
	for _, ls := range []pipeline.Labels{api, api, web, relabelLabels("app=api,level=info"), debug, web, api, debug} {
		b.Entries = append(b.Entries, pipeline.Entry{Line: []byte("x"), Labels: ls})
	}
	p.Process(b)
	var got []string
	for _, e := range b.Entries {
		got = append(got, e.Labels.Get("service"))
	}
	if strings.Join(got, ",") != "api,api,web,api,web,api" {
		t.Fatalf("services = %v", got)
	}
	if v := relabelCounterValue(t, m.Dropped.WithLabelValues("relabel_under_test", "relabel")); v != 2 {
		t.Fatalf("dropped = %v, want 2", v)
	}
	// The input sets must not have been changed in place.
	if api.Get("service") != "" || len(api) != 2 {
		t.Fatalf("input labels modified: %v", api)
	}
}

// A rule set that changes nothing hands the entry its own slice back.
func TestRelabelUnchangedKeepsTheSlice(t *testing.T) {
	p, _, err := newRelabelForTest(t, `
configs:
  - source_labels: [app]
    regex: never
    action: drop
`)
	if err != nil {
		t.Fatal(err)
	}
	ls := relabelLabels("app=api,job=x")
	b := pipeline.NewBatch(1, nil)
	b.Entries = append(b.Entries, pipeline.Entry{Labels: ls})
	p.Process(b)
	if &b.Entries[0].Labels[0] != &ls[0] {
		t.Fatal("unchanged labels were copied")
	}
}

func TestRelabelSteadyStateDoesNotAllocate(t *testing.T) {
	p, _, err := newRelabelForTest(t, `
configs:
  - source_labels: [app, env]
    target_label: svc
  - regex: pod
    action: labeldrop
`)
	if err != nil {
		t.Fatal(err)
	}
	sets := []pipeline.Labels{relabelLabels("app=a,env=p,pod=1"), relabelLabels("app=b,env=p,pod=2"), relabelLabels("app=c,env=d,pod=3")}
	b := pipeline.NewBatch(64, nil)
	line := []byte("x")
	fill := func() {
		b.Entries = b.Entries[:0]
		for i := 0; i < 64; i++ {
			// Interleave the streams so the previous-entry short cut alone
			// cannot serve them.
			b.Entries = append(b.Entries, pipeline.Entry{Line: line, Labels: sets[i%len(sets)]})
		}
	}
	fill()
	p.Process(b)
	allocs := testing.AllocsPerRun(100, func() {
		fill()
		p.Process(b)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch in steady state, want 0", allocs)
	}
}

func TestRelabelCacheIsBounded(t *testing.T) {
	p, _, err := newRelabelForTest(t, `
configs:
  - source_labels: [id]
    target_label: copy
`)
	if err != nil {
		t.Fatal(err)
	}
	r := p.(*relabel)
	b := pipeline.NewBatch(1, nil)
	for i := 0; i < relabelCacheMax*2+5; i++ {
		b.Entries = append(b.Entries[:0], pipeline.Entry{Labels: pipeline.Labels{{Name: "id", Value: strconv.Itoa(i)}}})
		p.Process(b)
		if got := b.Entries[0].Labels.Get("copy"); got != strconv.Itoa(i) {
			t.Fatalf("entry %d: copy = %q", i, got)
		}
	}
	if r.size > relabelCacheMax {
		t.Fatalf("cache holds %d results, limit %d", r.size, relabelCacheMax)
	}
}

func TestRelabelConfigErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"missing configs", "{}", "x.yaml:1:1: relabel: configs is required"},
		{"unknown stage key", "configs: []\nrules: []", `x.yaml:2:1: unknown key "rules"`},
		{"invalid regex", "configs:\n  - source_labels: [a]\n    regex: '(['\n    action: keep", `x.yaml:3:12: invalid regex "(["`},
		{"unknown rule key", "configs:\n  - source_label: [a]\n    action: keep", `x.yaml:2:5: unknown key "source_label" in relabel_configs`},
		{"unknown action", "configs:\n  - action: explode", "x.yaml:2:5: invalid relabel config"},
		{"hashmod without modulus", "configs:\n  - source_labels: [a]\n    target_label: b\n    action: hashmod", "x.yaml:2:5: invalid relabel config: relabel configuration for hashmod requires non-zero modulus"},
		{"replace without target", "configs:\n  - source_labels: [a]", "x.yaml:2:5: invalid relabel config: relabel configuration for replace action requires 'target_label' value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := newRelabelForTest(t, tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func BenchmarkRelabel(b *testing.B) {
	p, _, err := newRelabelForTest(b, `
configs:
  - source_labels: [app, env]
    target_label: svc
  - regex: pod
    action: labeldrop
  - source_labels: [level]
    regex: debug
    action: drop
`)
	if err != nil {
		b.Fatal(err)
	}
	sets := []pipeline.Labels{relabelLabels("app=a,env=p,level=info,pod=1"), relabelLabels("app=b,env=p,level=warn,pod=2")}
	const n = 256
	batch := pipeline.NewBatch(n, nil)
	line := []byte("x")
	perLine := startPerLineForRelabel(b)
	for i := 0; i < b.N; i++ {
		batch.Entries = batch.Entries[:0]
		for j := 0; j < n; j++ {
			batch.Entries = append(batch.Entries, pipeline.Entry{Line: line, Labels: sets[(j/4)%2]})
		}
		p.Process(batch)
	}
	perLine(n)
}

// startPerLineForRelabel starts a benchmark whose operations process
// lines each; the returned func reports ns/line and allocs/line.
func startPerLineForRelabel(b *testing.B) func(lines int) {
	b.ReportAllocs()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	return func(lines int) {
		b.StopTimer()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		total := float64(b.N * lines)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/line")
		b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/line")
	}
}
