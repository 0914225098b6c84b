package processors

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/pipeline"
)

// limitForTest builds a limit stage on a fake clock; sleeping advances the
// clock and is recorded, so the wait is checked without timing anything.
func limitForTest(t *testing.T, cfg string) (*limitStage, *time.Time, *time.Duration, *prometheus.Registry) {
	t.Helper()
	p, reg := ftBuild(t, "limit", cfg)
	s := p.(*limitStage)
	clock := time.Unix(1000, 0)
	var slept time.Duration
	s.now = func() time.Time { return clock }
	s.sleep = func(d time.Duration) { slept += d; clock = clock.Add(d) }
	return s, &clock, &slept, reg
}

func limitBatchForTest(n int, labels ...string) *pipeline.Batch {
	b := pipeline.NewBatch(n, nil)
	for i := 0; i < n; i++ {
		b.Entries = append(b.Entries, ftEntry(fmt.Sprint("line ", i), labels...))
	}
	return b
}

// Documented by Promtail: "Match a line and throttle". Without drop the
// stage waits: 30 lines at 10/s with a burst of 10 take 2 s.
func TestLimitDocumentedThrottle(t *testing.T) {
	s, clock, slept, reg := limitForTest(t, "rate: 10\nburst: 10\n")
	b := limitBatchForTest(30)
	s.Process(b)
	if len(b.Entries) != 30 {
		t.Fatalf("%d entries left, want all 30: throttling drops nothing", len(b.Entries))
	}
	if *slept != 2*time.Second {
		t.Fatalf("waited %v, want 2s", *slept)
	}
	// The bucket is in debt no more: after a second, 10 pass at once.
	*slept = 0
	*clock = clock.Add(time.Second)
	s.Process(limitBatchForTest(10))
	if *slept != 0 {
		t.Fatalf("waited %v for a refilled bucket", *slept)
	}
	s.Process(limitBatchForTest(5))
	if *slept != 500*time.Millisecond {
		t.Fatalf("waited %v, want 500ms", *slept)
	}
	if got := ftCounter(t, reg, "logentry_dropped_lines_total", nil); got != 0 {
		t.Fatalf("throttling counted %v drops", got)
	}
}

// Documented by Promtail: "Match a line and drop".
func TestLimitDocumentedDrop(t *testing.T) {
	s, clock, slept, reg := limitForTest(t, "rate: 10\nburst: 10\ndrop: true\n")
	b := limitBatchForTest(30)
	s.Process(b)
	if len(b.Entries) != 10 || string(b.Entries[9].Line) != "line 9" {
		t.Fatalf("kept %q, want the first 10", ftLines(b))
	}
	*clock = clock.Add(500 * time.Millisecond)
	b = limitBatchForTest(30)
	s.Process(b)
	if len(b.Entries) != 5 {
		t.Fatalf("kept %d after half a second, want 5", len(b.Entries))
	}
	if *slept != 0 {
		t.Fatal("drop mode waited")
	}
	if got := ftCounter(t, reg, "logentry_dropped_lines_total", map[string]string{"reason": "ratelimit_drop_stage"}); got != 45 {
		t.Fatalf("logentry_dropped_lines_total = %v, want 45", got)
	}
	if got := ftCounter(t, reg, "vigil_dropped_entries_total", map[string]string{"reason": "ratelimit_drop_stage"}); got != 45 {
		t.Fatalf("vigil_dropped_entries_total = %v, want 45", got)
	}
}

// Documented by Promtail: "Ratelimit by a label". Each namespace has its
// own bucket; entries without the label are not limited.
func TestLimitDocumentedByLabel(t *testing.T) {
	s, _, _, reg := limitForTest(t, "rate: 10\nburst: 10\ndrop: true\nby_label_name: namespace\n")
	b := pipeline.NewBatch(0, nil)
	for i := 0; i < 15; i++ {
		b.Entries = append(b.Entries,
			ftEntry("a", "namespace", "a"),
			ftEntry("b", "namespace", "b"),
			ftEntry("none", "app", "x"))
	}
	s.Process(b)
	count := map[string]int{}
	for _, e := range b.Entries {
		count[string(e.Line)]++
	}
	if count["a"] != 10 || count["b"] != 10 || count["none"] != 15 {
		t.Fatalf("kept %v, want a:10 b:10 none:15", count)
	}
	for _, ns := range []string{"a", "b"} {
		if got := ftCounter(t, reg, "logentry_dropped_lines_by_label_total", map[string]string{"label_name": "namespace", "label_value": ns}); got != 5 {
			t.Fatalf("dropped by label %s = %v, want 5", ns, got)
		}
	}
	if got := ftCounter(t, reg, "logentry_dropped_lines_total", map[string]string{"reason": "ratelimit_drop_stage"}); got != 10 {
		t.Fatalf("dropped = %v, want 10", got)
	}
}

// Buckets per label value live in two generations of max_distinct_labels
// (at least 10000): a full generation becomes the old one, and values not
// seen in two generations start over with a full bucket.
func TestLimitByLabelGenerations(t *testing.T) {
	s, _, _, reg := limitForTest(t, "rate: 1\nburst: 1\ndrop: true\nby_label_name: id\nmax_distinct_labels: 10\n")
	if s.cfg.MaxDistinctLabels != minLimitDistinctLabels {
		t.Fatalf("max_distinct_labels %d, want it raised to %d", s.cfg.MaxDistinctLabels, minLimitDistinctLabels)
	}
	one := func(id string) bool {
		b := limitBatchForTest(1, "id", id)
		s.Process(b)
		return len(b.Entries) == 1
	}
	if !one("first") || one("first") {
		t.Fatal("bucket of one token not applied")
	}
	for i := 0; i < minLimitDistinctLabels-1; i++ { // fills the first generation
		one(fmt.Sprint(i))
	}
	if one("first") {
		t.Fatal("value in the old generation lost its bucket")
	}
	if got := ftCounter(t, reg, "logentry_dropped_lines_by_label_total", map[string]string{"label_value": "first"}); got != 1 {
		t.Fatalf("by-label counter = %v after the generation turned, want 1 (reset, then one drop)", got)
	}
	// Two more generations turn over without "first".
	for i := 0; i < minLimitDistinctLabels; i++ {
		one(fmt.Sprint("x", i))
	}
	for i := 0; i < minLimitDistinctLabels; i++ {
		one(fmt.Sprint("y", i))
	}
	if !one("first") {
		t.Fatal("value unseen for two generations still has its empty bucket")
	}
}

func TestLimitConfigErrors(t *testing.T) {
	tests := []struct {
		name, cfg, want string
	}{
		{"no rate", "burst: 10\n", "x.yaml:1:1: limit stage needs a rate above 0"},
		{"zero rate", "rate: 0\nburst: 10\n", "x.yaml:1:7: limit stage needs a rate above 0"},
		{"no burst", "rate: 10\n", "x.yaml:1:1: limit stage needs a burst above 0"},
		{"negative burst", "rate: 10\nburst: -1\n", "x.yaml:2:8: limit stage needs a burst above 0"},
		{"by label without drop", "rate: 10\nburst: 10\nby_label_name: ns\n", "x.yaml:3:16: limit stage: by_label_name needs drop: true"},
		{"drop not a bool", "rate: 10\nburst: 10\ndrop: sometimes\n", "x.yaml:3:7: invalid boolean value"},
		{"unknown key", "rate: 10\nburst: 10\ndrop_counter_reason: x\n", "x.yaml:3:1: unknown key \"drop_counter_reason\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ftBuildErr(t, "limit", tt.cfg)
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("error %q, want prefix %q", got, tt.want)
			}
		})
	}
}

func BenchmarkLimit(b *testing.B) {
	p, _ := ftBuild(b, "limit", "rate: 1e12\nburst: 1000000\ndrop: true\n")
	entries := make([]pipeline.Entry, 1024)
	for i := range entries {
		entries[i] = ftEntry("a log line of moderate length for the benchmark")
	}
	ftBench(b, p, entries)
}

func BenchmarkLimitByLabel(b *testing.B) {
	p, _ := ftBuild(b, "limit", "rate: 1e12\nburst: 1000000\ndrop: true\nby_label_name: namespace\n")
	entries := make([]pipeline.Entry, 1024)
	for i := range entries {
		entries[i] = ftEntry("a log line of moderate length for the benchmark", "namespace", fmt.Sprint("ns", i%8))
	}
	ftBench(b, p, entries)
}
