// Package loki is the `loki` sink: it pushes entries to Loki's push API as
// Promtail's client does (snappy-compressed protobuf), with one batcher and
// one sender per tenant so that one request never mixes tenants and one
// tenant's retries never delay another's pushes.
//
// Delivery: each source batch is held for every piece of it that waits in
// a Loki batch, and that piece is settled once Loki answered 2xx, or once
// it was dropped for good (counted in promtail_dropped_entries_total and
// logged). With backoff_config.max_retries: 0 nothing is ever dropped for
// being undeliverable: the sink retries until Loki accepts, and the
// pipeline's byte budget makes the sources wait meanwhile.
package loki

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/httpclient"
	"github.com/vigilhq/vigil/pipeline"
)

func init() {
	pipeline.RegisterSink("loki", func(env pipeline.Env, cfg *yaml.Node) (pipeline.Sink, error) {
		return New(env, cfg)
	})
}

// idleTenantTimeout is how long a tenant's sender lives without entries.
// Tenants can come from log content, so senders must not accumulate.
const idleTenantTimeout = 5 * time.Minute

// Sink pushes to one Loki URL.
type Sink struct {
	cfg       Config
	host      string
	url       string
	userAgent string
	headers   http.Header // configured extra headers, canonicalised
	external  pipeline.Labels
	client    *http.Client
	metrics   *pipeline.Metrics
	logger    *slog.Logger
	drops     *pipeline.RateLimitedLogger
	auth      *httpclient.Auth

	// abort ends retries and in-flight requests when Close's ctx ends.
	abortCtx context.Context
	abort    context.CancelFunc

	mu      sync.Mutex
	closed  bool
	tenants map[string]*tenantQueue
	wg      sync.WaitGroup

	// idleTimeout is idleTenantTimeout, shorter in tests.
	idleTimeout time.Duration
}

// New builds a running sink from its config node.
func New(env pipeline.Env, node *yaml.Node) (*Sink, error) {
	var cfg Config
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	return newSink(env, cfg)
}

func newSink(env pipeline.Env, cfg Config) (*Sink, error) {
	client, err := cfg.newHTTPClient()
	if err != nil {
		return nil, fmt.Errorf("loki sink %s: %w", env.Name, err)
	}
	logger := env.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("sink", env.Name, "host", cfg.URL.Host)
	if cfg.Name != "" {
		logger = logger.With("client", cfg.Name)
	}
	metrics := env.Metrics
	if metrics == nil {
		metrics = pipeline.NewTestMetrics()
	}
	s := &Sink{
		cfg:         cfg,
		host:        cfg.URL.Host,
		url:         cfg.URL.String(),
		userAgent:   pipeline.UserAgent(),
		headers:     http.Header{},
		external:    pipeline.LabelsFromMap(cfg.ExternalLabels),
		client:      client,
		metrics:     metrics,
		logger:      logger,
		drops:       pipeline.NewRateLimitedLogger(logger, 10*time.Second),
		tenants:     map[string]*tenantQueue{},
		idleTimeout: idleTenantTimeout,
	}
	for k, v := range cfg.Headers {
		k = http.CanonicalHeaderKey(k)
		switch k {
		case "Content-Type", "User-Agent":
			// Promtail skips these too, but says so only per request.
			logger.Warn("custom header is set by the sink itself and is ignored", "header", k)
			continue
		case "X-Scope-Orgid":
			// Promtail sends it only when no tenant is set, which makes it
			// the default tenant; treating it as one keeps requests
			// single-tenant and labels the metrics right.
			if s.cfg.TenantID == "" {
				s.cfg.TenantID = v
			} else {
				logger.Warn("X-Scope-OrgID header ignored: tenant_id is set", "tenant_id", s.cfg.TenantID)
			}
			continue
		}
		s.headers.Set(k, v)
	}
	s.auth = httpclient.NewAuth(&s.cfg.HTTP, httpclient.WarnFunc(s.drops))
	s.abortCtx, s.abort = context.WithCancel(context.Background())
	s.metrics.EncodedBytes.WithLabelValues(s.host).Add(0)
	s.metrics.SentBytes.WithLabelValues(s.host).Add(0)
	s.metrics.SentEntries.WithLabelValues(s.host).Add(0)
	return s, nil
}

// Consume queues b's entries with their tenant's batcher. It never blocks
// on the network; memory is bounded upstream by the byte budget.
func (s *Sink) Consume(b *pipeline.Batch) {
	var (
		q      *tenantQueue
		tenant string
	)
	for i := range b.Entries {
		e := &b.Entries[i]
		t := e.Tenant
		if t == "" {
			t = s.cfg.TenantID
		}
		if q == nil || t != tenant {
			if q != nil {
				q.mu.Unlock()
			}
			q = s.lockQueue(t)
			if q == nil {
				// Closed: keep the batch held forever so its checkpoint
				// does not move past entries that were never sent.
				b.Hold()
				s.drops.Warn("closed", "entries received after close are abandoned; they will be read again on restart",
					"entries", len(b.Entries)-i)
				return
			}
			tenant = t
		}
		q.add(e, b)
	}
	if q != nil {
		q.mu.Unlock()
	}
}

// lockQueue returns tenant's queue, locked, creating it and its sender
// when needed; nil once the sink is closed.
func (s *Sink) lockQueue(tenant string) *tenantQueue {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil
		}
		q := s.tenants[tenant]
		if q == nil {
			q = s.newTenantQueue(tenant)
			s.tenants[tenant] = q
			s.wg.Add(1)
			go q.run()
		}
		s.mu.Unlock()
		q.mu.Lock()
		if !q.retired {
			return q
		}
		// The sender retired between the lookup and the lock; the next
		// lookup will not find it.
		q.mu.Unlock()
	}
}

// Close stops accepting entries, sends everything pending at once and
// waits for it to be settled. When ctx ends first, retries and in-flight
// requests are aborted and what was not delivered is abandoned, never
// settled. No batch is settled after Close returns.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	queues := s.queueList()
	for _, q := range queues {
		q.mu.Lock()
		q.closing = true
		q.mu.Unlock()
		q.wake()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.abort()
		<-done // senders notice the abort promptly; after this nothing settles
		err = fmt.Errorf("loki sink: pending entries abandoned: %w", context.Cause(ctx))
	}
	s.abort()
	s.client.CloseIdleConnections()
	return err
}

// FlushNow hands every tenant's filling batch to its sender at once. The
// runner calls it when sources wait for memory: the entries this sink holds
// back are what they wait for.
func (s *Sink) FlushNow() {
	queues := s.queueList()
	for _, q := range queues {
		q.mu.Lock()
		if q.cur != nil && len(q.cur.entries) > 0 {
			q.ready = append(q.ready, q.cur)
			q.cur = nil
		}
		q.mu.Unlock()
		q.wake()
	}
}

// queueList is a snapshot of the tenants' queues.
func (s *Sink) queueList() []*tenantQueue {
	s.mu.Lock()
	defer s.mu.Unlock()
	queues := make([]*tenantQueue, 0, len(s.tenants))
	for _, q := range s.tenants {
		queues = append(queues, q)
	}
	return queues
}
