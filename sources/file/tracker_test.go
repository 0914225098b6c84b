package file

import (
	"testing"

	"github.com/vigilhq/vigil/pipeline"
)

func TestTrackerCommitsSettledPrefix(t *testing.T) {
	tests := []struct {
		name  string
		order []int   // settle order of spans ending at 10, 20, 30, 40
		want  []int64 // position after each settle
	}{
		{"in order", []int{0, 1, 2, 3}, []int64{10, 20, 30, 40}},
		{"reversed", []int{3, 2, 1, 0}, []int64{5, 5, 5, 40}},
		{"gap filled late", []int{0, 2, 3, 1}, []int64{10, 10, 10, 40}},
		{"pairs", []int{1, 0, 3, 2}, []int64{5, 20, 20, 40}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pos, _ := pipeline.OpenPositions("", false)
			tr := newTracker("/f", pos, nil, 5, 40)
			spans := make([]*span, 4)
			for i := range spans {
				spans[i] = tr.open()
				tr.push(spans[i], int64(10*(i+1)))
			}
			for i, s := range tt.order {
				spans[s].settle()
				if got, _ := pos.GetOffset("/f"); got != tt.want[i] {
					t.Fatalf("after settling span %d: position %d, want %d", s, got, tt.want[i])
				}
			}
			if committed, inflight := tr.state(); committed != 40 || inflight != 0 {
				t.Errorf("state committed=%d inflight=%d", committed, inflight)
			}
		})
	}
}

// A disowned generation (rotated away, truncated or deleted) no longer
// writes the key, which now belongs to the newer file or is gone.
func TestTrackerDisowned(t *testing.T) {
	pos, _ := pipeline.OpenPositions("", false)
	old := newTracker("/f", pos, nil, 0, 100)
	sp := old.open()
	old.push(sp, 100)
	old.disown()
	newTracker("/f", pos, nil, 0, 3)
	sp.settle()
	if got, _ := pos.GetOffset("/f"); got != 0 {
		t.Errorf("position %d: the old generation overwrote the new one's key", got)
	}
	if committed, _ := old.state(); committed != 100 {
		t.Errorf("old generation committed %d, want 100", committed)
	}
}
