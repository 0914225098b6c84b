package loki

import (
	"sync"
	"time"

	"github.com/vigilhq/vigil/pipeline"
)

// lokiBatch is what one push request carries: entries of one tenant, and
// the source batches to settle once the request is done with.
type lokiBatch struct {
	entries []*pipeline.Entry // into the held source batches: no copies
	size    int               // sum of Entry.Size, Loki's measure of a batch
	start   time.Time
	holds   []*pipeline.Batch
	last    *pipeline.Batch // the batch most recently held, to hold once per piece
}

var lokiBatchPool = sync.Pool{New: func() any { return &lokiBatch{} }}

func newLokiBatch() *lokiBatch {
	lb := lokiBatchPool.Get().(*lokiBatch)
	lb.start = time.Now()
	return lb
}

func (lb *lokiBatch) settle() {
	for _, b := range lb.holds {
		b.Settle()
	}
	lb.release()
}

// release forgets the entries (their lines belong to the source batches)
// and recycles the slices.
func (lb *lokiBatch) release() {
	clear(lb.entries)
	clear(lb.holds)
	lb.entries, lb.holds = lb.entries[:0], lb.holds[:0]
	lb.size, lb.last = 0, nil
	if cap(lb.entries) > 1<<16 {
		lb.entries = nil
	}
	lokiBatchPool.Put(lb)
}

// tenantQueue batches one tenant's entries and sends them, one request at
// a time, from its own goroutine: while a request (and its retries) is in
// flight, the next batch fills.
type tenantQueue struct {
	s      *Sink
	tenant string
	labels *labelCache // owned by the sender goroutine
	enc    *encoder    // the sender's while it has work; nil when idle
	wakeCh chan struct{}

	mu      sync.Mutex
	cur     *lokiBatch   // filling
	ready   []*lokiBatch // full, waiting for the sender
	closing bool         // send everything now, then exit
	retired bool         // the sender exited for idleness
}

func (s *Sink) newTenantQueue(tenant string) *tenantQueue {
	// Export the per-tenant series at zero, as Promtail does, so that
	// rate() and absence alerts work before the first drop.
	for _, r := range reasons {
		s.metrics.DroppedEntries.WithLabelValues(s.host, r, tenant).Add(0)
		s.metrics.DroppedBytes.WithLabelValues(s.host, r, tenant).Add(0)
	}
	s.metrics.BatchRetries.WithLabelValues(s.host, tenant).Add(0)
	return &tenantQueue{
		s:      s,
		tenant: tenant,
		labels: newLabelCache(s.external),
		wakeCh: make(chan struct{}, 1),
	}
}

func (q *tenantQueue) wake() {
	select {
	case q.wakeCh <- struct{}{}:
	default:
	}
}

// add appends e; q.mu is held. A batch that e would push past batchsize
// is handed to the sender first, so an oversized entry travels alone.
func (q *tenantQueue) add(e *pipeline.Entry, b *pipeline.Batch) {
	sz := e.Size()
	if q.cur != nil && len(q.cur.entries) > 0 && q.cur.size+sz > q.s.cfg.BatchSize {
		q.ready = append(q.ready, q.cur)
		q.cur = nil
		q.wake()
	}
	if q.cur == nil {
		q.cur = newLokiBatch()
		q.wake() // the sender may be idle and must start the batchwait clock
	}
	lb := q.cur
	if lb.last != b {
		b.Hold()
		lb.holds = append(lb.holds, b)
		lb.last = b
	}
	lb.entries = append(lb.entries, e)
	lb.size += sz
}

// next returns the batch to send now, or how long to wait for one.
func (q *tenantQueue) next() (lb *lokiBatch, wait time.Duration, idle, exit bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ready) > 0 {
		lb = q.ready[0]
		q.ready[0] = nil
		q.ready = q.ready[1:]
		return lb, 0, false, false
	}
	if q.cur != nil {
		age := time.Since(q.cur.start)
		if q.closing || age >= q.s.cfg.BatchWait {
			lb, q.cur = q.cur, nil
			return lb, 0, false, false
		}
		return nil, q.s.cfg.BatchWait - age, false, false
	}
	if q.closing {
		return nil, 0, false, true
	}
	return nil, q.s.idleTimeout, true, false
}

// run is the tenant's sender.
func (q *tenantQueue) run() {
	defer q.s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	defer q.putEncoder()
	for {
		lb, wait, idle, exit := q.next()
		if exit {
			return
		}
		if idle {
			q.putEncoder() // nothing to send: another sender may use it
		}
		if lb != nil {
			if !q.deliver(lb) {
				return // aborted: the rest is abandoned
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-q.wakeCh:
			timer.Stop()
		case <-timer.C:
			if idle && q.retire() {
				return
			}
		case <-q.s.abortCtx.Done():
			return
		}
	}
}

func (q *tenantQueue) putEncoder() {
	if q.enc != nil {
		q.enc.put()
		q.enc = nil
	}
}

// retire removes an idle queue; false when entries arrived meanwhile.
func (q *tenantQueue) retire() bool {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cur != nil || len(q.ready) > 0 || q.closing {
		return false
	}
	q.retired = true
	delete(q.s.tenants, q.tenant)
	return true
}
