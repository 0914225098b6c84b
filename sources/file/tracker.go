package file

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/pipeline"
)

// tracker moves the checkpoint of one generation of a file: the file as
// opened at one path until it is rotated away, truncated or deleted.
//
// Batches settle in any order. The tracker keeps the end offsets of the
// batches in flight in the order they were emitted and commits the end of
// the longest settled prefix, so the saved position never passes a line
// that some sink has not settled.
//
// The positions key is the path, and only the newest generation of a path
// owns it. When a file is rotated or truncated, the new generation writes
// its start (0) at once and the old one is disowned: its later settlements
// still release memory but no longer write the key, which now describes
// another file. Writing 0 straight away is what keeps a crash from
// applying the old file's offset to the new file and skipping its start.
// The price: lines of the old generation that are still unsettled at a
// crash are not re-read after a restart, because Promtail's positions
// format cannot name a rotated-away file. A deleted file's generation is
// disowned and its key removed.
type tracker struct {
	mu        sync.Mutex
	path      string
	positions *pipeline.Positions
	lag       prometheus.Gauge // nil once the path's series are deleted
	owner     bool

	queue     []*span // emitted, in order; queue[:head] are committed
	head      int
	committed int64
	size      int64
}

// span is one emitted batch: the file offset its lines end at.
type span struct {
	t       *tracker
	end     int64
	settled bool
}

// newTracker starts a generation at offset and takes over the key.
func newTracker(path string, positions *pipeline.Positions, lag prometheus.Gauge, offset, size int64) *tracker {
	t := &tracker{path: path, positions: positions, lag: lag, owner: true, committed: offset, size: size}
	positions.PutOffset(path, offset)
	t.setLagLocked()
	return t
}

// open returns a span for a batch about to be filled. It is queued by push
// once its end is known, before the batch is emitted.
func (t *tracker) open() *span { return &span{t: t} }

// push queues sp, whose batch is about to be emitted, ending at end.
func (t *tracker) push(sp *span, end int64) {
	t.mu.Lock()
	sp.end = end
	t.queue = append(t.queue, sp)
	t.mu.Unlock()
}

// settle is the batch's onSettled callback.
func (sp *span) settle() {
	t := sp.t
	t.mu.Lock()
	defer t.mu.Unlock()
	sp.settled = true
	advanced := false
	for t.head < len(t.queue) && t.queue[t.head].settled {
		t.committed = t.queue[t.head].end
		t.queue[t.head] = nil
		t.head++
		advanced = true
	}
	if t.head == len(t.queue) {
		t.queue, t.head = t.queue[:0], 0
	} else if t.head > 64 && t.head*2 > len(t.queue) {
		n := copy(t.queue, t.queue[t.head:])
		clear(t.queue[n:])
		t.queue, t.head = t.queue[:n], 0
	}
	if advanced && t.owner {
		t.positions.PutOffset(t.path, t.committed)
		t.setLagLocked()
	}
}

// setSize records the file's size for the lag gauge.
func (t *tracker) setSize(size int64) {
	t.mu.Lock()
	t.size = size
	t.setLagLocked()
	t.mu.Unlock()
}

func (t *tracker) setLagLocked() {
	if t.lag != nil && t.owner {
		t.lag.Set(float64(max(t.size-t.committed, 0)))
	}
}

// disown stops the generation from writing the key: a newer generation or
// the key's removal has taken over.
func (t *tracker) disown() {
	t.mu.Lock()
	t.owner = false
	t.mu.Unlock()
}

// dropMetrics stops lag updates once the path's series are deleted, so a
// late settlement does not bring them back.
func (t *tracker) dropMetrics() {
	t.mu.Lock()
	t.lag = nil
	t.mu.Unlock()
}

// state returns the committed offset and the number of batches in flight.
func (t *tracker) state() (committed int64, inflight int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.committed, len(t.queue) - t.head
}
