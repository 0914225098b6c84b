package processors

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// cardinalityLogForTest records log records.
type cardinalityLogForTest struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *cardinalityLogForTest) Enabled(context.Context, slog.Level) bool { return true }
func (h *cardinalityLogForTest) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *cardinalityLogForTest) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *cardinalityLogForTest) WithGroup(string) slog.Handler      { return h }

func (h *cardinalityLogForTest) attr(i int, key string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var v string
	h.records[i].Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

type cardinalityForTest struct {
	p   *cardinalityLimit
	reg *prometheus.Registry
	log *cardinalityLogForTest
	now time.Time
}

func newCardinalityForTest(t testing.TB, body string) (*cardinalityForTest, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("test YAML: %v", err)
	}
	c := &cardinalityForTest{reg: prometheus.NewRegistry(), log: &cardinalityLogForTest{}, now: time.Unix(1_700_000_000, 0)}
	env := pipeline.Env{
		Name:       "guard",
		Decoder:    pipeline.Decoder{File: "x.yaml"},
		Logger:     slog.New(c.log),
		Metrics:    pipeline.NewTestMetrics(),
		Registerer: c.reg,
	}
	p, err := pipeline.NewProcessor(env, "cardinality_limit", doc.Content[0], doc.Content[0])
	if err != nil {
		return nil, err
	}
	c.p = p.(*cardinalityLimit)
	c.p.now = func() time.Time { return c.now }
	return c, nil
}

func (c *cardinalityForTest) demoted(t testing.TB, tenant string) float64 {
	t.Helper()
	return metricsCounterValueForTest(t, c.p.vec.WithLabelValues("guard", tenant))
}

// run processes entries given as "tenant|labels|metadata" and returns
// them as "labels|metadata".
func (c *cardinalityForTest) run(specs ...string) []string {
	b := pipeline.NewBatch(len(specs), nil)
	for _, s := range specs {
		parts := strings.Split(s, "|")
		e := pipeline.Entry{Tenant: parts[0], Line: []byte("line " + s), Labels: relabelLabels(parts[1])}
		if len(parts) > 2 && parts[2] != "" {
			e.Metadata = relabelLabels(parts[2])
		}
		b.Entries = append(b.Entries, e)
	}
	c.p.Process(b)
	var out []string
	for i, e := range b.Entries {
		if string(e.Line) != "line "+specs[i] {
			panic("line changed")
		}
		out = append(out, cardinalityRender(e.Labels)+"|"+cardinalityRender(e.Metadata))
	}
	return out
}

func cardinalityRender(ls pipeline.Labels) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, l.Name+"="+l.Value)
	}
	return strings.Join(parts, ",")
}

func TestCardinalityLimit(t *testing.T) {
	tests := []struct {
		name    string
		cfg     string
		in      []string
		want    []string
		demoted map[string]float64
	}{
		{
			name: "under the cap nothing changes",
			cfg:  "max_streams: 3",
			in:   []string{"|job=a,pod=1", "|job=a,pod=2", "|job=a,pod=1", "|job=a,pod=3"},
			want: []string{"job=a,pod=1|", "job=a,pod=2|", "job=a,pod=1|", "job=a,pod=3|"},
		},
		{
			name: "over the cap new streams lose every label that is not protected",
			cfg:  "max_streams: 2",
			in: []string{"|job=a,pod=1", "|job=a,pod=2", "|container=c,job=a,pod=3,zone=z",
				"|job=a,pod=1", "|container=c,job=a,pod=4,zone=z"},
			want: []string{"job=a,pod=1|", "job=a,pod=2|", "container=c,job=a|pod=3,zone=z",
				"job=a,pod=1|", "container=c,job=a|pod=4,zone=z"},
			demoted: map[string]float64{"": 2},
		},
		{
			name:    "each tenant has its own cap",
			cfg:     "max_streams: 1",
			in:      []string{"t1|job=a,pod=1", "t2|job=a,pod=2", "t1|job=a,pod=3", "t2|job=a,pod=2"},
			want:    []string{"job=a,pod=1|", "job=a,pod=2|", "job=a|pod=3", "job=a,pod=2|"},
			demoted: map[string]float64{"t1": 1, "t2": 0},
		},
		{
			name: "listed labels are demoted in order until the stream is known",
			cfg:  "{max_streams: 2, labels: [request_id, pod]}",
			in: []string{"|job=a,pod=1", "|job=a,pod=2",
				"|job=a,pod=1,request_id=r9",
				"|job=a,pod=3,request_id=r10",
				"|job=a,pod=4,zone=z"},
			want: []string{"job=a,pod=1|", "job=a,pod=2|",
				"job=a,pod=1|request_id=r9",
				"job=a|pod=3,request_id=r10",
				"job=a,zone=z|pod=4"},
			demoted: map[string]float64{"": 3},
		},
		{
			name: "listed labels the entry lacks are skipped",
			cfg:  "{max_streams: 1, labels: [trace, pod]}",
			in:   []string{"|job=a", "|job=a,pod=7"},
			want: []string{"job=a|", "job=a|pod=7"},
		},
		{
			name: "demoted labels join existing metadata",
			cfg:  "max_streams: 1",
			in:   []string{"|job=a", "|job=a,pod=1|a=1,pod=old,z=2"},
			want: []string{"job=a|", "job=a|a=1,pod=1,z=2"},
		},
		{
			name: "custom protected labels",
			cfg:  "{max_streams: 1, protected_labels: [app, pod]}",
			in:   []string{"|app=x", "|app=x,job=j,pod=1"},
			want: []string{"app=x|", "app=x,pod=1|job=j"},
		},
		{
			name:    "a stream of protected labels only is admitted over the cap",
			cfg:     "max_streams: 1",
			in:      []string{"|job=a", "|job=b,service=s", "|job=b,service=s"},
			want:    []string{"job=a|", "job=b,service=s|", "job=b,service=s|"},
			demoted: map[string]float64{"": 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newCardinalityForTest(t, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := c.run(tc.in...)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for tenant, want := range tc.demoted {
				if v := c.demoted(t, tenant); v != want {
					t.Errorf("demoted{tenant=%q} = %v, want %v", tenant, v, want)
				}
			}
		})
	}
}

// The same input must give the same answer whether it repeats at once
// (the previous-entry short cut), after other entries (the memo), or as a
// new slice of equal content.
func TestCardinalityRepeatedStreams(t *testing.T) {
	c, err := newCardinalityForTest(t, "max_streams: 1")
	if err != nil {
		t.Fatal(err)
	}
	known := relabelLabels("job=a")
	busy := relabelLabels("job=a,pod=9")
	b := pipeline.NewBatch(6, nil)
	for _, ls := range []pipeline.Labels{known, busy, busy, known, busy, relabelLabels("job=a,pod=9")} {
		b.Entries = append(b.Entries, pipeline.Entry{Labels: ls})
	}
	c.p.Process(b)
	want := []string{"job=a|", "job=a|pod=9", "job=a|pod=9", "job=a|", "job=a|pod=9", "job=a|pod=9"}
	for i, e := range b.Entries {
		if got := cardinalityRender(e.Labels) + "|" + cardinalityRender(e.Metadata); got != want[i] {
			t.Errorf("entry %d = %s, want %s", i, got, want[i])
		}
	}
	if v := c.demoted(t, ""); v != 4 {
		t.Fatalf("demoted = %v, want 4", v)
	}
	if busy.Get("pod") != "9" || len(busy) != 2 {
		t.Fatalf("input labels modified: %v", busy)
	}
}

func TestCardinalityForgetsIdleStreams(t *testing.T) {
	c, err := newCardinalityForTest(t, "{max_streams: 2, forget_after: 10m}")
	if err != nil {
		t.Fatal(err)
	}
	c.run("|job=a,pod=1", "|job=a,pod=2")
	if got := c.run("|job=a,pod=3"); got[0] != "job=a|pod=3" {
		t.Fatalf("third stream: %s, want demoted", got[0])
	}
	// pod=2 stays active; pod=1 and the reduced job=a go idle.
	c.now = c.now.Add(6 * time.Minute)
	c.run("|job=a,pod=2")
	c.now = c.now.Add(6 * time.Minute)
	// pod=3 was demoted before; with room again it gets its own stream.
	if got := c.run("|job=a,pod=3"); got[0] != "job=a,pod=3|" {
		t.Fatalf("after pod=1 was forgotten: %s, want admitted", got[0])
	}
	if got := c.run("|job=a,pod=4"); got[0] != "job=a|pod=4" {
		t.Fatalf("fourth stream with the tenant full again: %s, want demoted", got[0])
	}
	if n := len(c.p.tenants[""].streams); n != 3 {
		t.Fatalf("%d streams tracked, want 3 (pod=2, pod=3 and the reduced job=a)", n)
	}
	// A tenant idle for the whole window is forgotten altogether.
	c.now = c.now.Add(time.Hour)
	c.run("t2|job=b")
	if _, ok := c.p.tenants[""]; ok {
		t.Fatal("idle tenant still tracked")
	}
}

// With every line a new stream (a request id label), the tracked set and
// the memo stay bounded.
func TestCardinalityStaysBounded(t *testing.T) {
	c, err := newCardinalityForTest(t, "{max_streams: 10, labels: [request_id]}")
	if err != nil {
		t.Fatal(err)
	}
	b := pipeline.NewBatch(1, nil)
	for i := 0; i < cardinalityMemoMax*2+10; i++ {
		b.Entries = append(b.Entries[:0], pipeline.Entry{Labels: pipeline.Labels{
			{Name: "job", Value: "j" + strconv.Itoa(i%3)},
			{Name: "request_id", Value: strconv.Itoa(i)},
		}})
		c.p.Process(b)
	}
	if n := len(c.p.tenants[""].streams); n > 13 {
		t.Fatalf("%d streams tracked, want at most 10 plus the 3 reduced", n)
	}
	if n := len(c.p.memo); n > cardinalityMemoMax {
		t.Fatalf("memo holds %d decisions, limit %d", n, cardinalityMemoMax)
	}
}

func TestCardinalityLogsRateLimited(t *testing.T) {
	c, err := newCardinalityForTest(t, "max_streams: 1")
	if err != nil {
		t.Fatal(err)
	}
	c.run("acme|job=a")
	for i := 0; i < 50; i++ {
		c.run("acme|job=a,pod=" + strconv.Itoa(i))
	}
	if n := len(c.log.records); n != 1 {
		t.Fatalf("%d log records for 50 demotions within a minute, want 1", n)
	}
	if got := c.log.attr(0, "labels"); got != "pod" {
		t.Errorf("labels attr = %q", got)
	}
	if got := c.log.attr(0, "tenant"); got != "acme" {
		t.Errorf("tenant attr = %q", got)
	}
	c.now = c.now.Add(61 * time.Second)
	c.run("acme|job=a,pod=x")
	if n := len(c.log.records); n != 2 {
		t.Fatalf("%d log records after a minute, want 2", n)
	}
	if got := c.log.attr(1, "suppressed_since_last"); got != "49" {
		t.Errorf("suppressed_since_last = %q, want 49", got)
	}
	if v := c.demoted(t, "acme"); v != 51 {
		t.Errorf("demoted = %v, want 51", v)
	}
}

func TestCardinalityMetricIsShared(t *testing.T) {
	c, err := newCardinalityForTest(t, "max_streams: 1")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	_ = yaml.Unmarshal([]byte("max_streams: 5"), &doc)
	env := pipeline.Env{Name: "guard2", Decoder: pipeline.Decoder{File: "x.yaml"}, Logger: slog.New(c.log), Metrics: pipeline.NewTestMetrics(), Registerer: c.reg}
	p2, err := pipeline.NewProcessor(env, "cardinality_limit", doc.Content[0], doc.Content[0])
	if err != nil {
		t.Fatalf("second guard on the same registry: %v", err)
	}
	if p2.(*cardinalityLimit).vec != c.p.vec {
		t.Fatal("second guard registered its own counter vector")
	}
}

func TestCardinalitySteadyStateDoesNotAllocate(t *testing.T) {
	c, err := newCardinalityForTest(t, "max_streams: 2")
	if err != nil {
		t.Fatal(err)
	}
	sets := []pipeline.Labels{relabelLabels("job=a,pod=1"), relabelLabels("job=a,pod=2"), relabelLabels("job=a,pod=3"), relabelLabels("job=a,pod=4")}
	b := pipeline.NewBatch(64, nil)
	line := []byte("x")
	fill := func() {
		b.Entries = b.Entries[:0]
		for i := 0; i < 64; i++ {
			b.Entries = append(b.Entries, pipeline.Entry{Line: line, Labels: sets[i%len(sets)]})
		}
	}
	fill()
	c.p.Process(b)
	if b.Entries[2].Labels.String() != `{job="a"}` {
		t.Fatalf("third stream not demoted: %v", b.Entries[2].Labels)
	}
	if allocs := testing.AllocsPerRun(50, func() { fill(); c.p.Process(b) }); allocs != 0 {
		t.Fatalf("%v allocations per batch in steady state, want 0", allocs)
	}
}

func TestCardinalityConfigErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"missing max_streams", "labels: [pod]", "x.yaml:1:1: cardinality_limit: max_streams must be a positive"},
		{"zero max_streams", "max_streams: 0", "x.yaml:1:14: cardinality_limit: max_streams must be a positive"},
		{"unknown key", "max_streams: 1\nmax_stream: 2", `x.yaml:2:1: unknown key "max_stream"`},
		{"protected label listed", "max_streams: 1\nlabels: [pod, job]", `x.yaml:2:15: cardinality_limit: label "job" is protected`},
		{"label twice", "max_streams: 1\nlabels:\n  - pod\n  - pod", `x.yaml:4:5: cardinality_limit: label "pod" listed twice`},
		{"empty labels", "max_streams: 1\nlabels: []", "x.yaml:2:9: cardinality_limit: labels is empty"},
		{"bad forget_after", "max_streams: 1\nforget_after: soon", `x.yaml:2:15: invalid duration "soon"`},
		{"zero forget_after", "max_streams: 1\nforget_after: 0s", "x.yaml:2:15: cardinality_limit: forget_after must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newCardinalityForTest(t, tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func BenchmarkCardinalityLimit(b *testing.B) {
	c, err := newCardinalityForTest(b, "max_streams: 4")
	if err != nil {
		b.Fatal(err)
	}
	var sets []pipeline.Labels
	for i := 0; i < 8; i++ {
		sets = append(sets, relabelLabels("job=a,level=info,pod="+strconv.Itoa(i)))
	}
	const n = 256
	batch := pipeline.NewBatch(n, nil)
	line := []byte("x")
	perLine := startPerLineForRelabel(b)
	for i := 0; i < b.N; i++ {
		batch.Entries = batch.Entries[:0]
		for j := 0; j < n; j++ {
			// Half of the streams are over the cap and get demoted.
			batch.Entries = append(batch.Entries, pipeline.Entry{Line: line, Labels: sets[(j/4)%len(sets)]})
		}
		c.p.Process(batch)
	}
	perLine(n)
}
