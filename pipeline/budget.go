package pipeline

import (
	"context"
	"sync"
)

// Budget bounds, in bytes, the memory held by batches that have been read
// but not yet settled by every sink. Sources acquire before they emit and
// the bytes come back when the batch settles, so a slow sink makes sources
// wait instead of growing memory.
type Budget struct {
	mu       sync.Mutex
	capacity int64
	used     int64
	waiters  []chan struct{}
	onChange func(used int64)
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

// Acquire blocks until n bytes fit, or ctx ends. A request larger than the
// whole budget is granted when nothing else is held, so one oversized batch
// cannot deadlock the pipeline.
func (bu *Budget) Acquire(ctx context.Context, n int64) error {
	for {
		bu.mu.Lock()
		if bu.used+n <= bu.capacity || bu.used == 0 {
			bu.used += n
			used := bu.used
			bu.mu.Unlock()
			if bu.onChange != nil {
				bu.onChange(used)
			}
			return nil
		}
		ch := make(chan struct{})
		bu.waiters = append(bu.waiters, ch)
		bu.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Release returns n bytes and wakes the waiters so they can retry.
func (bu *Budget) Release(n int64) {
	bu.mu.Lock()
	bu.used -= n
	used := bu.used
	waiters := bu.waiters
	bu.waiters = nil
	bu.mu.Unlock()
	for _, ch := range waiters {
		close(ch)
	}
	if bu.onChange != nil {
		bu.onChange(used)
	}
}
