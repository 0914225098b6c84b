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
// Bytes are held per tenant (a batch's entries' tenant when they share
// one, else ""), and no tenant may hold more than half of what the other
// tenants leave free: a tenant whose pushes keep failing, and whose
// batches therefore never settle, fills its share and its sources wait,
// while the other tenants' batches still flow through the rest. With one
// failing tenant that is half the budget, with two a half and a quarter,
// so failing tenants never take all of it. The share holds from the
// start, since a tenant that filled the whole budget before another one
// showed up could never be made to give it back.
//
// Waiters are granted in arrival order, each only when its bytes fit, so a
// release wakes only those it can serve and no source starves; a waiter
// held back by its tenant's share does not hold up the others.
type Budget struct {
	mu       sync.Mutex
	capacity int64
	used     int64
	held     map[string]int64 // bytes per tenant; no zero entries
	waiters  []*budgetWaiter
	onChange func(used int64)
	// onTenant, when set, is told a tenant's bytes after each change.
	onTenant func(tenant string, held int64)
	// onPressure runs when an Acquire has to wait: sinks holding entries
	// back to fill a batch should send them now, or a budget no larger
	// than their batches would stall until their batch timers fire.
	onPressure func()
}

type budgetWaiter struct {
	tenant  string
	n       int64
	ch      chan struct{}
	granted bool
}

// NewBudget returns a budget of capacity bytes. onChange, when not nil, is
// told the bytes in use after each change (for the buffer-fill metric).
func NewBudget(capacity int64, onChange func(used int64)) *Budget {
	return &Budget{capacity: capacity, onChange: onChange, held: map[string]int64{}}
}

// Capacity is the budget's size in bytes.
func (bu *Budget) Capacity() int64 { return bu.capacity }

// Used is the number of bytes currently held.
func (bu *Budget) Used() int64 {
	bu.mu.Lock()
	defer bu.mu.Unlock()
	return bu.used
}

// Why a request does not fit.
const (
	fitsNow = iota
	overBudget
	overShare
)

// fits says whether n more bytes may be held for tenant. A request larger
// than the whole budget is granted when nothing else is held, and a
// tenant holding nothing may take a batch larger than its share, so one
// oversized batch cannot deadlock the pipeline.
func (bu *Budget) fits(tenant string, n int64) int {
	if bu.used != 0 && bu.used+n > bu.capacity {
		return overBudget
	}
	if h := bu.held[tenant]; h != 0 && h+n > (bu.capacity-(bu.used-h))/2 {
		return overShare
	}
	return fitsNow
}

// Acquire blocks until n bytes are granted to tenant, or ctx ends.
func (bu *Budget) Acquire(ctx context.Context, tenant string, n int64) error {
	bu.mu.Lock()
	if len(bu.waiters) == 0 && bu.fits(tenant, n) == fitsNow {
		bu.grantTo(tenant, n)
		bu.unlockChanged(tenant)
		return nil
	}
	w := &budgetWaiter{tenant: tenant, n: n}
	bu.waiters = append(bu.waiters, w)
	bu.grantLocked()
	if w.granted {
		bu.unlockChanged(tenant)
		return nil
	}
	w.ch = make(chan struct{})
	pressure := bu.onPressure
	bu.mu.Unlock()
	if pressure != nil {
		pressure()
	}
	select {
	case <-w.ch:
		bu.mu.Lock()
		bu.unlockChanged(tenant)
		return nil
	case <-ctx.Done():
		bu.mu.Lock()
		if w.granted {
			bu.mu.Unlock()
			bu.Release(tenant, n)
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

// Release returns n bytes of tenant and grants the waiters that now fit,
// in order.
func (bu *Budget) Release(tenant string, n int64) {
	bu.mu.Lock()
	bu.used -= n
	if bu.held[tenant] -= n; bu.held[tenant] <= 0 {
		delete(bu.held, tenant)
	}
	bu.grantLocked()
	bu.unlockChanged(tenant)
}

// grantLocked grants the waiters that fit, in order. A waiter that does
// not fit the budget holds up those behind it (they would take the room
// it waits for); one held back by its tenant's share does not.
func (bu *Budget) grantLocked() {
	kept := bu.waiters[:0]
	blocked := false
	for _, w := range bu.waiters {
		if !blocked {
			switch bu.fits(w.tenant, w.n) {
			case fitsNow:
				bu.grantTo(w.tenant, w.n)
				w.granted = true
				if w.ch != nil {
					close(w.ch)
				}
				continue
			case overBudget:
				blocked = true
			}
		}
		kept = append(kept, w)
	}
	clear(bu.waiters[len(kept):])
	bu.waiters = kept
}

func (bu *Budget) grantTo(tenant string, n int64) {
	bu.used += n
	bu.held[tenant] += n
}

// unlockChanged unlocks and reports the bytes in use, and tenant's.
func (bu *Budget) unlockChanged(tenant string) {
	used, held := bu.used, bu.held[tenant]
	bu.mu.Unlock()
	if bu.onChange != nil {
		bu.onChange(used)
	}
	if bu.onTenant != nil {
		bu.onTenant(tenant, held)
	}
}
