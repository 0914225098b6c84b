// Package hist is a log-linear histogram of non-negative integers (here,
// latencies in nanoseconds) with a bounded relative error, so p50 and p99
// of millions of samples cost a few kilobytes and no sorting.
package hist

import (
	"math"
	"math/bits"
)

// subBits sets the precision: values of 2^subBits and up share a bucket
// with values less than 1/2^(subBits-1) (1.6%) larger.
const subBits = 7

const (
	linear  = 1 << subBits // values below this have a bucket each
	half    = linear / 2   // sub-buckets per power of two above
	buckets = linear + (64-subBits)*half
)

// Histogram is not safe for concurrent use; callers lock.
type Histogram struct {
	counts [buckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

func index(v uint64) int {
	if v < linear {
		return int(v)
	}
	shift := bits.Len64(v) - subBits // >= 1
	return linear + (shift-1)*half + int(v>>shift) - half
}

// upper is the largest value that falls in bucket i.
func upper(i int) uint64 {
	if i < linear {
		return uint64(i)
	}
	shift := (i-linear)/half + 1
	m := uint64((i-linear)%half + half)
	return (m+1)<<shift - 1
}

// Record adds one sample; negative values count as zero.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.counts[index(uint64(v))]++
	h.n++
	h.sum += float64(v)
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Min and Max are exact.
func (h *Histogram) Min() int64 { return h.min }

// Max is the largest sample.
func (h *Histogram) Max() int64 { return h.max }

// Mean is exact up to float rounding.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns a value v such that at least q of the samples are <= v.
// It is the upper bound of the bucket holding the rank, so it
// overestimates by less than 1.6%, never underestimates, and never
// exceeds Max.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(int64(upper(i)), h.max)
		}
	}
	return h.max
}

// Reset forgets every sample.
func (h *Histogram) Reset() { *h = Histogram{} }
