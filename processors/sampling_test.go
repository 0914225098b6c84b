package processors

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pipeline"
)

func samplingBatchForTest(n int) *pipeline.Batch {
	b := pipeline.NewBatch(n, nil)
	for i := 0; i < n; i++ {
		b.Entries = append(b.Entries, ftEntry("line"))
	}
	return b
}

// Documented by Promtail: rate 0.1 keeps about 10% of lines. The random
// source is seeded so the count is the same on every run.
func TestSamplingDocumentedExample(t *testing.T) {
	p, reg := ftBuild(t, "sampling", "rate: 0.1\n")
	p.(*samplingStage).rng = rand.New(rand.NewPCG(1, 2))
	kept := 0
	for i := 0; i < 100; i++ {
		b := samplingBatchForTest(1000)
		p.Process(b)
		kept += len(b.Entries)
	}
	if kept < 9500 || kept > 10500 {
		t.Fatalf("kept %d of 100000, want about 10000", kept)
	}
	dropped := float64(100000 - kept)
	if got := ftCounter(t, reg, "logentry_dropped_lines_total", map[string]string{"reason": "sampling_stage"}); got != dropped {
		t.Fatalf("logentry_dropped_lines_total = %v, want %v", got, dropped)
	}
	if got := ftCounter(t, reg, "vigil_dropped_entries_total", map[string]string{"reason": "sampling_stage", "component": "stage"}); got != dropped {
		t.Fatalf("vigil_dropped_entries_total = %v, want %v", got, dropped)
	}
}

func TestSamplingRates(t *testing.T) {
	tests := []struct {
		cfg        string
		min, max   int // kept of 10000
		wantReason string
	}{
		{"rate: 0\n", 0, 0, "sampling_stage"},
		{"rate: 1\n", 10000, 10000, "sampling_stage"},
		{"rate: 0.5\ndrop_counter_reason: halved\n", 4700, 5300, "halved"},
		{"rate: 0.999\n", 9950, 9999, "sampling_stage"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(tt.cfg), func(t *testing.T) {
			p, reg := ftBuild(t, "sampling", tt.cfg)
			p.(*samplingStage).rng = rand.New(rand.NewPCG(3, 4))
			b := samplingBatchForTest(10000)
			p.Process(b)
			if n := len(b.Entries); n < tt.min || n > tt.max {
				t.Fatalf("kept %d, want %d..%d", n, tt.min, tt.max)
			}
			if got := ftCounter(t, reg, "logentry_dropped_lines_total", map[string]string{"reason": tt.wantReason}); got != float64(10000-len(b.Entries)) {
				t.Fatalf("dropped counter %v, want %d", got, 10000-len(b.Entries))
			}
		})
	}
}

func TestSamplingConfigErrors(t *testing.T) {
	tests := []struct {
		name, cfg, want string
	}{
		{"missing rate", "drop_counter_reason: x\n", "x.yaml:1:1: sampling stage needs a rate"},
		{"above 1", "rate: 1.5\n", "x.yaml:1:7: sampling stage: rate must be between 0 and 1, not 1.5"},
		{"negative", "rate: -0.1\n", "x.yaml:1:7: sampling stage: rate must be between 0 and 1"},
		{"not a number", "rate: often\n", "x.yaml:1:7: invalid number value"},
		{"unknown key", "rate: 0.1\nratio: 2\n", "x.yaml:2:1: unknown key \"ratio\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ftBuildErr(t, "sampling", tt.cfg)
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("error %q, want prefix %q", got, tt.want)
			}
		})
	}
}

func BenchmarkSampling(b *testing.B) {
	p, _ := ftBuild(b, "sampling", "rate: 0.1\n")
	entries := make([]pipeline.Entry, 1024)
	for i := range entries {
		entries[i] = ftEntry("a log line of moderate length for the benchmark")
	}
	ftBench(b, p, entries)
}
