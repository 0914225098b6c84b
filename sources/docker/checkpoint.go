package docker

import (
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/pipeline"
)

// cursorKey is Promtail's positions key for a container, so a Promtail
// positions file is picked up.
func cursorKey(id string) string { return "cursor-" + id }

// formatCursor renders a checkpoint as RFC3339Nano in UTC, which keeps the
// nanoseconds Promtail's unix-seconds cursor lost.
func formatCursor(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// parseCursor reads a checkpoint: vigil's RFC3339Nano, or Promtail's unix
// seconds (possibly fractional). A Promtail cursor has only whole-second
// resolution and may have been saved before every line of that second was
// sent, so it resumes at the start of that second: a few lines may repeat,
// none is lost.
func parseCursor(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UnixNano(), true
	}
	if sec, err := strconv.ParseInt(v, 10, 64); err == nil && sec > 0 && sec < maxSec {
		return sec*1e9 - 1, true
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 && f < maxSec {
		return int64(math.Floor(f))*1e9 - 1, true
	}
	return 0, false
}

// maxSec is the last second a cursor in unix nanoseconds can hold.
const maxSec = math.MaxInt64 / 1_000_000_000

// checkpoint moves a container's cursor as its batches settle. Batches may
// settle out of order (several sinks, retries); the cursor only passes a
// batch once every earlier batch of the container has settled too.
type checkpoint struct {
	key string
	pos *pipeline.Positions

	mu      sync.Mutex
	pending []*pending
	last    int64 // the highest cursor stored
	removed bool  // the container was destroyed: its key is gone for good
}

type pending struct {
	cursor int64
	done   bool
}

func newCheckpoint(pos *pipeline.Positions, id string) *checkpoint {
	return &checkpoint{key: cursorKey(id), pos: pos}
}

// load returns the saved cursor, or 0.
func (c *checkpoint) load() int64 {
	v, ok := c.pos.Get(c.key)
	if !ok {
		return 0
	}
	ns, ok := parseCursor(v)
	if !ok {
		return 0
	}
	return ns
}

// add registers a batch whose last entry carries cursor, in emit order.
func (c *checkpoint) add(cursor int64) *pending {
	p := &pending{cursor: cursor}
	c.mu.Lock()
	c.pending = append(c.pending, p)
	c.mu.Unlock()
	return p
}

// settle runs from the batch's onSettled callback.
func (c *checkpoint) settle(p *pending) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p.done = true
	move := false
	for len(c.pending) > 0 && c.pending[0].done {
		if cur := c.pending[0].cursor; cur > c.last {
			c.last = cur
			move = true
		}
		c.pending[0] = nil
		c.pending = c.pending[1:]
	}
	if move && !c.removed {
		c.pos.Put(c.key, formatCursor(c.last))
	}
}

// remove forgets the cursor of a destroyed container; later settlements
// of its batches do not bring it back.
func (c *checkpoint) remove() {
	c.mu.Lock()
	c.removed = true
	c.mu.Unlock()
	c.pos.Remove(c.key)
}
