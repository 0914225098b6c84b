package pipeline

import (
	"context"
	"sync"
)

// Budget bounds, in bytes, the memory held by batches that have been read
// but not yet settled by every sink. Sources acquire before they emit and
// the bytes come back when the batch settles, so a slow sink makes sources
// wait instead of growing memory.
//
// Waiters are granted in arrival order, each only when its bytes fit, so a
// release wakes only those it can serve and no source starves.
type Budget struct {
	mu       sync.Mutex
	capacity int64
	used     int64
	waiters  []*budgetWaiter
	onChange func(used int64)
	// onPressure runs when an Acquire has to wait: sinks holding entries
	// back to fill a batch should send them now, or a budget no larger
	// than their batches would stall until their batch timers fire.
	onPressure func()
}

type budgetWaiter struct {
	n       int64
	ch      chan struct{}
	granted bool
}

// NewBudget returns a budget of capacity bytes. onChange, when not nil, is
// told the bytes in use after each change (for the buffer-fill metric).
func NewBudget(capacity int64, onChange func(used int64)) *Budget {
	return &Budget{capacity: capacity, onChange: onChange}
}

// Capacity is the budget's size in bytes.
func (bu *Budget) Capacity() int64 { return bu.capacity }

// Used is the number of bytes currently held.
func (bu *Budget) Used() int64 {
	bu.mu.Lock()
	defer bu.mu.Unlock()
	return bu.used
}

// fits says whether n more bytes may be held. A request larger than the
// whole budget is granted when nothing else is held, so one oversized
// batch cannot deadlock the pipeline.
func (bu *Budget) fits(n int64) bool {
	return bu.used+n <= bu.capacity || bu.used == 0
}

// Acquire blocks until n bytes are granted, or ctx ends.
func (bu *Budget) Acquire(ctx context.Context, n int64) error {
	bu.mu.Lock()
	if len(bu.waiters) == 0 && bu.fits(n) {
		bu.used += n
		used := bu.used
		bu.mu.Unlock()
		bu.changed(used)
		return nil
	}
	w := &budgetWaiter{n: n, ch: make(chan struct{})}
	bu.waiters = append(bu.waiters, w)
	pressure := bu.onPressure
	bu.mu.Unlock()
	if pressure != nil {
		pressure()
	}
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		bu.mu.Lock()
		if w.granted {
			bu.mu.Unlock()
			bu.Release(n)
			return ctx.Err()
		}
		for i, x := range bu.waiters {
			if x == w {
				bu.waiters = append(bu.waiters[:i], bu.waiters[i+1:]...)
				break
			}
		}
		// Those behind it may fit now.
		bu.grantLocked()
		bu.mu.Unlock()
		return ctx.Err()
	}
}

// Release returns n bytes and grants the waiters that now fit, in order.
func (bu *Budget) Release(n int64) {
	bu.mu.Lock()
	bu.used -= n
	bu.grantLocked()
	used := bu.used
	bu.mu.Unlock()
	bu.changed(used)
}

func (bu *Budget) grantLocked() {
	for len(bu.waiters) > 0 && bu.fits(bu.waiters[0].n) {
		w := bu.waiters[0]
		bu.waiters[0] = nil
		bu.waiters = bu.waiters[1:]
		bu.used += w.n
		w.granted = true
		close(w.ch)
	}
}

func (bu *Budget) changed(used int64) {
	if bu.onChange != nil {
		bu.onChange(used)
	}
}
