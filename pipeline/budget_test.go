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
	if err := bu.Acquire(ctx, "a", 80); err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 2)
	go func() { _ = bu.Acquire(ctx, "b", 60); order <- 60 }()
	<-pressured
	go func() { _ = bu.Acquire(ctx, "c", 10); order <- 10 }()
	<-pressured
	// 10 would fit now, but it arrived after 60: it must not jump the queue.
	select {
	case n := <-order:
		t.Fatalf("waiter %d granted while 80 of 100 bytes are held and 60 waits first", n)
	case <-time.After(100 * time.Millisecond):
	}
	bu.Release("a", 80)
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
	_ = bu.Acquire(ctx, "", 100)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- bu.Acquire(cctx, "", 50) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled acquire succeeded")
	}
	bu.Release("", 100)
	if bu.Used() != 0 {
		t.Fatalf("used %d after everything was released", bu.Used())
	}
	// An oversized request is granted alone rather than deadlocking.
	if err := bu.Acquire(ctx, "", 500); err != nil || bu.Used() != 500 {
		t.Fatalf("oversized acquire: %v, used %d", err, bu.Used())
	}
}

// A settled batch gives its entry array back for reuse; a batch built
// afterwards must never see the old entries.
func TestSettledEntryArraysComeBackEmpty(t *testing.T) {
	for _, size := range []int{pooledEntries, 100, 3} {
		for round := 0; round < 50; round++ {
			b := NewBatch(size, nil)
			if len(b.Entries) != 0 {
				t.Fatalf("new batch starts with %d entries", len(b.Entries))
			}
			for _, e := range b.Entries[:cap(b.Entries)] {
				if e.Line != nil || e.Labels != nil || e.Time != 0 {
					t.Fatalf("recycled array holds a stale entry: %+v", e)
				}
			}
			for i := 0; i < cap(b.Entries); i++ {
				b.Entries = append(b.Entries, Entry{Time: int64(i + 1), Line: []byte("stale"), Labels: Labels{{"a", "b"}}})
			}
			b.Settle()
			if b.Entries != nil {
				t.Fatal("a settled batch still exposes its entries")
			}
		}
	}
}

// Arrays of every size come from the pool of their power of two, at least
// as large as asked for and at most twice that; the largest batches and
// arrays grown by append are not pooled.
func TestEntryArraySizes(t *testing.T) {
	for _, tc := range []struct{ ask, want int }{
		{0, 8}, {1, 8}, {8, 8}, {9, 16}, {16, 16}, {17, 32}, {270, 512}, {512, 512}, {513, 1024}, {1024, 1024}, {1025, 1025},
	} {
		for round := 0; round < 3; round++ {
			es := getEntries(tc.ask)
			if len(es) != 0 || cap(es) != tc.want {
				t.Fatalf("asked for %d: len %d cap %d, want 0 and %d", tc.ask, len(es), cap(es), tc.want)
			}
			es = append(es, Entry{Line: []byte("x")})
			putEntries(es)
		}
	}
	// An array grown past its size is left to the collector.
	es := append(getEntries(8)[:8], Entry{})
	putEntries(es)
	for range 10 {
		if got := cap(getEntries(16)); got != 16 {
			t.Fatalf("a grown array of %d came back from the pool of 16", got)
		}
	}
}

// A tenant whose batches never settle holds at most half the budget, even
// before another tenant showed up; the other tenant's requests pass its
// waiting ones.
func TestBudgetTenantShare(t *testing.T) {
	ctx := context.Background()
	bu := NewBudget(100, nil)
	for range 5 {
		if err := bu.Acquire(ctx, "a", 10); err != nil {
			t.Fatal(err)
		}
	}
	aWaits := make(chan error, 1)
	go func() { aWaits <- bu.Acquire(ctx, "a", 10) }()
	select {
	case err := <-aWaits:
		t.Fatalf("tenant a granted more than half the budget (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	// b is not held up behind a's waiting request, up to its own share of
	// what a leaves: 25.
	for range 2 {
		done := make(chan error, 1)
		go func() { done <- bu.Acquire(ctx, "b", 10) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("tenant b waits behind tenant a with %d of 100 bytes held", bu.Used())
		}
	}
	// a's waiter is granted once its share has room again: b's bytes
	// settled and one batch of a's did.
	bu.Release("b", 20)
	bu.Release("a", 10)
	select {
	case err := <-aWaits:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tenant a's waiter not granted after a released bytes")
	}
	if bu.Used() != 50 {
		t.Fatalf("used %d, want 50", bu.Used())
	}
}

// Two tenants whose batches never settle leave room for a third: the
// second one's share is half of what the first one left.
func TestBudgetSeveralFailingTenants(t *testing.T) {
	ctx := context.Background()
	bu := NewBudget(100, nil)
	take := func(tenant string, n int64) bool {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		return bu.Acquire(cctx, tenant, n) == nil
	}
	for take("a", 5) {
	}
	for take("b", 5) {
	}
	if got := bu.Used(); got != 75 {
		t.Fatalf("two failing tenants hold %d of 100, want 50 + 25", got)
	}
	for range 2 { // then c, too, has its share of what a and b leave
		if !take("c", 5) {
			t.Fatalf("a third tenant cannot get 5 bytes with %d of 100 held", bu.Used())
		}
	}
}
