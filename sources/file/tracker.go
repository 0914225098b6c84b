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
// # Keys
//
// The path key keeps Promtail's format (path: offset) and always describes
// the file now at the path: only the newest generation of a path owns it.
// When a file is rotated or truncated, the new generation writes its start
// (0) at once and the old one is disowned; writing 0 straight away is what
// keeps a crash from applying the old file's offset to the new file and
// skipping its start.
//
// Promtail's format cannot name a rotated-away file, yet the old generation
// may still hold lines that are read but unsettled, or not read at all (the
// writer appends until it reopens). So from the rotation on it is recorded
// under a key of its own in the same positions file:
//
//	vigil-rotated:<dev>:<inode>: "<original path>:<committed offset>"
//
// (see rotatedKey). The file is named by device and inode because rotation
// changes its name, and the original path is kept because the lines are
// labelled with it and it tells which source the key belongs to. The key
// follows the generation's settlements, and it is removed once the
// generation has been drained (quiet for drainIdle, then closed) and every
// one of its batches has settled. A generation left behind at shutdown
// keeps its key, as does one whose batches never settle.
//
// The two keys change in two steps, and a save may fall between them. The
// rotated key is written first: a save in between then holds the old
// file's offset under both, and only a new file that grew past that offset
// before the restart has its start skipped. The other order would drop the
// old file's unsettled lines instead.
//
// On start, Source.Run looks for each such key of its globs' paths (see
// recoverRotated): it finds the file with that device and inode next to
// the original path, reads it from the committed offset with the original
// path's labels, as a rotated-away generation of that path's tailer, and
// the key goes as above. A file that cannot be found any more is logged as
// lost and its key removed.
//
// Truncation (copytruncate) records nothing: the old content is gone from
// the inode, and the copy is a different file. A deleted file's path key is
// removed; its generation is recorded like a renamed one, because a path
// that vanished is often a rename whose new file is not created yet.
type tracker struct {
	mu        sync.Mutex
	path      string
	positions *pipeline.Positions
	lag       prometheus.Gauge // nil once the path's series are deleted
	owner     bool             // writes the path key
	rotKey    string           // the rotated-generation key it writes, if any
	finished  bool             // drained and closed: nothing more is queued

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

// newRotatedTracker resumes a rotated-away generation of path, found again
// on start under key, at offset.
func newRotatedTracker(path string, positions *pipeline.Positions, key string, offset int64) *tracker {
	t := &tracker{path: path, positions: positions, rotKey: key, committed: offset}
	t.putRotatedLocked()
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
	if advanced {
		if t.owner {
			t.positions.PutOffset(t.path, t.committed)
			t.setLagLocked()
		}
		if t.rotKey != "" {
			t.putRotatedLocked()
		}
	}
	t.releaseLocked()
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

// disown stops the generation from writing the path key: a newer
// generation or the key's removal has taken over.
func (t *tracker) disown() {
	t.mu.Lock()
	t.owner = false
	t.mu.Unlock()
}

// rotate disowns the path key and records the generation under key
// instead, until it is finished. The caller hands the path key on after
// this returns.
func (t *tracker) rotate(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.owner = false
	t.rotKey = key
	t.putRotatedLocked()
}

func (t *tracker) putRotatedLocked() {
	t.positions.Put(t.rotKey, rotatedValue(t.path, t.committed))
}

// finish says the generation was read to its end and closed: its rotated
// key goes once its last batch settles.
func (t *tracker) finish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finished = true
	t.releaseLocked()
}

func (t *tracker) releaseLocked() {
	if t.finished && t.rotKey != "" && t.head == len(t.queue) {
		t.positions.Remove(t.rotKey)
		t.rotKey = ""
	}
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
