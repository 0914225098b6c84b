package pipeline

import (
	"context"
	"testing"
	"time"
)

func TestBudgetGrantsInOrderAndOnlyWhatFits(t *testing.T) {
	bu := NewBudget(100, nil)
	pressured := make(chan struct{}, 10)
	bu.onPressure = func() { pressured <- struct{}{} }
	ctx := context.Background()
	if err := bu.Acquire(ctx, 80); err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 2)
	go func() { _ = bu.Acquire(ctx, 60); order <- 60 }()
	<-pressured
	go func() { _ = bu.Acquire(ctx, 10); order <- 10 }()
	<-pressured
	// 10 would fit now, but it arrived after 60: it must not jump the queue.
	select {
	case n := <-order:
		t.Fatalf("waiter %d granted while 80 of 100 bytes are held and 60 waits first", n)
	case <-time.After(100 * time.Millisecond):
	}
	bu.Release(80)
	if first, second := <-order, <-order; first != 60 && second != 60 {
		t.Fatalf("grant order %d, %d", first, second)
	}
	if bu.Used() != 70 {
		t.Fatalf("used %d, want 70", bu.Used())
	}
}

func TestBudgetCancelledWaiterLeavesNothingHeld(t *testing.T) {
	bu := NewBudget(100, nil)
	ctx := context.Background()
	_ = bu.Acquire(ctx, 100)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- bu.Acquire(cctx, 50) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled acquire succeeded")
	}
	bu.Release(100)
	if bu.Used() != 0 {
		t.Fatalf("used %d after everything was released", bu.Used())
	}
	// An oversized request is granted alone rather than deadlocking.
	if err := bu.Acquire(ctx, 500); err != nil || bu.Used() != 500 {
		t.Fatalf("oversized acquire: %v, used %d", err, bu.Used())
	}
}

// A settled batch gives its entry array back for reuse; a batch built
// afterwards must never see the old entries.
func TestSettledEntryArraysComeBackEmpty(t *testing.T) {
	for round := 0; round < 50; round++ {
		b := NewBatch(pooledEntries, nil)
		if len(b.Entries) != 0 {
			t.Fatalf("new batch starts with %d entries", len(b.Entries))
		}
		for _, e := range b.Entries[:cap(b.Entries)] {
			if e.Line != nil || e.Labels != nil || e.Time != 0 {
				t.Fatalf("recycled array holds a stale entry: %+v", e)
			}
		}
		for i := 0; i < pooledEntries; i++ {
			b.Entries = append(b.Entries, Entry{Time: int64(i + 1), Line: []byte("stale"), Labels: Labels{{"a", "b"}}})
		}
		b.Settle()
		if b.Entries != nil {
			t.Fatal("a settled batch still exposes its entries")
		}
	}
}
