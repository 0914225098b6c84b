package hist

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestIndexUpperAgree(t *testing.T) {
	// Every value must land in a bucket whose upper bound is >= it and
	// whose previous bucket's upper bound is < it.
	vals := []uint64{0, 1, 63, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1<<63 - 1}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		vals = append(vals, r.Uint64N(1<<62))
	}
	for _, v := range vals {
		i := index(v)
		if i < 0 || i >= buckets {
			t.Fatalf("index(%d) = %d, out of range", v, i)
		}
		if upper(i) < v {
			t.Fatalf("value %d in bucket %d whose upper bound is %d", v, i, upper(i))
		}
		if i > 0 && upper(i-1) >= v {
			t.Fatalf("value %d in bucket %d but bucket %d reaches %d", v, i, i-1, upper(i-1))
		}
		if v >= linear && float64(upper(i)-v) > float64(v)/float64(half) {
			t.Fatalf("bucket of %d is too wide: upper %d", v, upper(i))
		}
	}
}

func TestQuantilesMatchSorted(t *testing.T) {
	tests := []struct {
		name string
		gen  func(r *rand.Rand) int64
	}{
		{"uniform ms", func(r *rand.Rand) int64 { return r.Int64N(1e9) }},
		{"exponential", func(r *rand.Rand) int64 { return int64(r.ExpFloat64() * 5e6) }},
		{"small ints", func(r *rand.Rand) int64 { return r.Int64N(100) }},
		{"bimodal", func(r *rand.Rand) int64 {
			if r.IntN(100) == 0 {
				return 1e9 + r.Int64N(1e8)
			}
			return 1e6 + r.Int64N(1e5)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			var h Histogram
			var all []int64
			for range 100000 {
				v := tt.gen(r)
				h.Record(v)
				all = append(all, v)
			}
			slices.Sort(all)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
				exact := all[int(q*float64(len(all)))-1]
				if q == 1 {
					exact = all[len(all)-1]
				}
				got := h.Quantile(q)
				if got < exact || float64(got-exact) > float64(exact)/float64(half)+1 {
					t.Errorf("q%.3f = %d, exact %d", q, got, exact)
				}
			}
			if h.Count() != 100000 || h.Min() != all[0] || h.Max() != all[len(all)-1] {
				t.Errorf("count/min/max = %d/%d/%d, want %d/%d/%d", h.Count(), h.Min(), h.Max(), len(all), all[0], all[len(all)-1])
			}
		})
	}
}

func TestMergeAndReset(t *testing.T) {
	var a, b, both Histogram
	for i := range int64(1000) {
		a.Record(i * 1000)
		b.Record(i*1000 + 500000000)
		both.Record(i * 1000)
		both.Record(i*1000 + 500000000)
	}
	a.Merge(&b)
	if a != both {
		t.Fatal("merge differs from recording into one histogram")
	}
	a.Reset()
	if a.Count() != 0 || a.Quantile(0.5) != 0 {
		t.Fatal("reset kept samples")
	}
	a.Record(-5)
	if a.Min() != 0 || a.Max() != 0 {
		t.Fatalf("negative sample gave min %d max %d, want 0", a.Min(), a.Max())
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Record(int64(i) * 7919)
	}
}
