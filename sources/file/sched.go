package file

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// schedule holds the tailers in the order their next polls are due. Run
// adds the tailers discovery finds; the workers take the due ones and put
// them back once polled. A worker goes from one due tailer to the next
// without parking, and sleeps only until the first one is due: handing
// every poll to a worker through a channel woke a parked goroutine, often
// an OS thread, twice per poll, which cost more than a quiet file's poll.
//
// Someone must always watch the first tailer: a worker that is about to
// look at the queue, or a sleeping worker whose wake-up is no later than
// when that tailer is due. A worker that puts a tailer back looks next, so
// only add (Run) and next (a worker leaving to poll, maybe for long under
// backpressure) may have to wake a sleeper.
type schedule struct {
	mu       sync.Mutex
	queue    dueQueue
	sleepers []*sleeper
}

// sleeper is a worker waiting in next.
type sleeper struct {
	until time.Time     // when its timer fires
	wake  chan struct{} // holds one signal: look again
	timer *time.Timer
}

func newSleeper() *sleeper {
	return &sleeper{wake: make(chan struct{}, 1), timer: time.NewTimer(time.Hour)}
}

// add queues t, due at t.due.
func (q *schedule) add(t *tailer) {
	q.mu.Lock()
	heap.Push(&q.queue, t)
	q.watchLocked()
	q.mu.Unlock()
}

// put queues t again after a worker polled it; the worker looks next.
func (q *schedule) put(t *tailer) {
	q.mu.Lock()
	heap.Push(&q.queue, t)
	q.mu.Unlock()
}

// watchLocked makes sure a sleeper wakes by the time the first tailer is
// due, waking one to set its timer again if none would.
func (q *schedule) watchLocked() {
	if len(q.queue) == 0 || len(q.sleepers) == 0 {
		return
	}
	due := q.queue[0].due
	for _, s := range q.sleepers {
		if !s.until.After(due) {
			return
		}
	}
	s := q.sleepers[0]
	s.until = due
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next returns the most overdue tailer, waiting until one is due; false
// once ctx ends.
func (q *schedule) next(ctx context.Context, me *sleeper) (*tailer, bool) {
	for ctx.Err() == nil {
		q.mu.Lock()
		now := time.Now()
		if len(q.queue) > 0 && !q.queue[0].due.After(now) {
			t := heap.Pop(&q.queue).(*tailer)
			q.watchLocked() // this worker stops looking
			q.mu.Unlock()
			return t, true
		}
		until := now.Add(time.Hour) // nothing queued: add wakes a sleeper
		if len(q.queue) > 0 {
			until = q.queue[0].due
		}
		me.until = until // watchLocked may move it earlier, and wake me
		q.sleepers = append(q.sleepers, me)
		q.mu.Unlock()

		me.timer.Reset(until.Sub(now))
		select {
		case <-me.wake:
		case <-me.timer.C:
		case <-ctx.Done():
		}
		q.mu.Lock()
		for i, s := range q.sleepers {
			if s == me {
				q.sleepers = append(q.sleepers[:i], q.sleepers[i+1:]...)
				break
			}
		}
		q.mu.Unlock()
	}
	return nil, false
}

// dueQueue orders tailers by when their next poll is due.
type dueQueue []*tailer

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q dueQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *dueQueue) Push(x any)        { *q = append(*q, x.(*tailer)) }
func (q *dueQueue) Pop() any {
	old := *q
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return t
}
