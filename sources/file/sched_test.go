package file

import (
	"context"
	"testing"
	"time"
)

// sleeping waits until n workers sleep in q.next.
func sleeping(t *testing.T, q *schedule, n int) {
	t.Helper()
	waitFor(t, "the workers to sleep", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.sleepers) == n
	})
}

// nextAsync runs q.next in a goroutine, as a worker does.
func nextAsync(ctx context.Context, q *schedule) <-chan *tailer {
	got := make(chan *tailer, 1)
	me := newSleeper()
	go func() {
		t, _ := q.next(ctx, me)
		got <- t
	}()
	return got
}

func receive(t *testing.T, ch <-chan *tailer, what string) *tailer {
	t.Helper()
	select {
	case tl := <-ch:
		return tl
	case <-time.After(10 * time.Second):
		t.Fatalf("no tailer: %s", what)
		return nil
	}
}

// Tailers come out in the order they are due, and not before.
func TestScheduleOrder(t *testing.T) {
	q := &schedule{}
	now := time.Now()
	a, b, c := &tailer{path: "a", due: now.Add(30 * time.Millisecond)}, &tailer{path: "b", due: now}, &tailer{path: "c", due: now.Add(-time.Second)}
	q.add(a)
	q.add(b)
	q.put(c)
	me := newSleeper()
	for _, want := range []*tailer{c, b, a} {
		got, ok := q.next(context.Background(), me)
		if !ok || got != want {
			t.Fatalf("got %v, want %s", got, want.path)
		}
		if time.Now().Before(want.due) {
			t.Fatalf("%s handed out before it was due", want.path)
		}
	}
}

// A worker asleep on an empty queue wakes for a tailer Run adds.
func TestScheduleAddWakesSleeper(t *testing.T) {
	q := &schedule{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := nextAsync(ctx, q)
	sleeping(t, q, 1)
	a := &tailer{path: "a", due: time.Now()}
	q.add(a)
	if tl := receive(t, got, "the added tailer"); tl != a {
		t.Fatalf("got %v", tl)
	}
}

// A worker that takes a tailer to poll stops watching the queue. If the
// other worker sleeps past the next tailer due (here: it went to sleep on
// an empty queue, and the tailers were put back since, which wakes no
// one), it is woken to watch it: a poll blocked under backpressure must
// not hold up the quiet files.
func TestScheduleTakingWakesSleeper(t *testing.T) {
	q := &schedule{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	other := nextAsync(ctx, q)
	sleeping(t, q, 1)
	now := time.Now()
	busy, quiet := &tailer{path: "busy", due: now}, &tailer{path: "quiet", due: now.Add(50 * time.Millisecond)}
	q.put(busy)
	q.put(quiet)
	if tl, _ := q.next(ctx, newSleeper()); tl != busy {
		t.Fatalf("got %v, want the busy tailer", tl)
	}
	// This worker now polls busy for as long as it likes.
	if tl := receive(t, other, "the quiet tailer, by the other worker"); tl != quiet {
		t.Fatalf("got %v, want the quiet tailer", tl)
	}
}

// Workers return once ctx ends, asleep or not.
func TestScheduleCancel(t *testing.T) {
	q := &schedule{}
	ctx, cancel := context.WithCancel(context.Background())
	got := nextAsync(ctx, q)
	sleeping(t, q, 1)
	cancel()
	if tl := receive(t, got, "the cancelled worker's return"); tl != nil {
		t.Fatalf("got %v after cancel", tl)
	}
	if _, ok := q.next(ctx, newSleeper()); ok {
		t.Fatal("next succeeded after cancel")
	}
}

// Polls are due on a grid of a tenth of pollMin, after the wait asked for
// and less than one grid step later, so tailers polled at different
// moments come due together.
func TestAligned(t *testing.T) {
	s := &Source{pollMin: 250 * time.Millisecond}
	grid := 25 * time.Millisecond
	// 5 ms past a grid point (wall clock only, so the test is exact).
	now := time.Now().Round(0).Truncate(grid).Add(5 * time.Millisecond)
	for _, d := range []time.Duration{0, time.Millisecond, 24 * time.Millisecond, 25 * time.Millisecond, time.Second} {
		at := s.aligned(now, d)
		if at.Before(now.Add(d)) || !at.Before(now.Add(d+grid)) {
			t.Errorf("wait %v: due %v after now", d, at.Sub(now))
		}
		if at.UnixNano()%int64(grid) != 0 {
			t.Errorf("wait %v: due %v, not on the grid", d, at)
		}
	}
	a := s.aligned(now, 100*time.Millisecond)
	b := s.aligned(now.Add(3*time.Millisecond), 98*time.Millisecond)
	if !a.Equal(b) {
		t.Errorf("two polls due 1 ms apart are not due together: %v", b.Sub(a))
	}
	// The monotonic reading survives: the due time compares with now.
	mono := time.Now()
	if at := s.aligned(mono, time.Second); at.Sub(mono) < time.Second || at.Sub(mono) >= time.Second+grid {
		t.Errorf("due %v after a monotonic now", at.Sub(mono))
	}
}
