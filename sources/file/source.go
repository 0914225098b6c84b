package file

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

func init() {
	pipeline.RegisterSource("file", func(env pipeline.Env, cfg *yaml.Node) (pipeline.Source, error) {
		s, err := New(env, cfg)
		if err != nil {
			return nil, err
		}
		return s, nil
	})
}

// Source tails the files its globs match.
type Source struct {
	name      string
	cfg       settings
	log       *slog.Logger
	metrics   *pipeline.Metrics
	positions *pipeline.Positions
	warn      *pipeline.RateLimitedLogger
	truncated prometheus.Counter
	readMax   int // the largest single read
	workers   int // files polled at once

	// Timings; tests shorten them.
	pollMin, pollMax time.Duration // a file's polling while idle
	drainIdle        time.Duration // how long a rotated-away file must be quiet to be closed
	fastSync         time.Duration // glob period while the directory watches are incomplete
	minSyncGap       time.Duration // the least time between two glob evaluations
	noWatch          bool          // behave as if inotify were unavailable

	syncs atomic.Int64 // glob evaluations, for tests
}

// New builds a file source from its config node (without its type key).
func New(env pipeline.Env, node *yaml.Node) (*Source, error) {
	var c Config
	if err := env.Decoder.Decode(node, &c); err != nil {
		return nil, err
	}
	cfg, err := c.resolve(env.Decoder, node)
	if err != nil {
		return nil, err
	}
	s := &Source{
		name:       env.Name,
		cfg:        cfg,
		log:        env.Logger,
		metrics:    env.Metrics,
		positions:  env.Positions,
		readMax:    min(max(cfg.batchBytes, 64<<10), 4<<20),
		workers:    max(2, runtime.GOMAXPROCS(0)),
		pollMin:    250 * time.Millisecond,
		pollMax:    time.Second,
		drainIdle:  5 * time.Second,
		fastSync:   time.Second,
		minSyncGap: 100 * time.Millisecond,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.metrics == nil {
		s.metrics = pipeline.NewTestMetrics()
	}
	if s.positions == nil {
		s.positions, _ = pipeline.OpenPositions("", false)
	}
	s.warn = pipeline.NewRateLimitedLogger(s.log, time.Minute)
	s.truncated = s.metrics.Truncated.WithLabelValues(s.name)
	for _, g := range cfg.groups {
		if _, ok := g.labels["filename"]; ok {
			s.log.Warn("the filename label is set from each file's path, as Promtail does; the configured value is not used")
			break
		}
	}
	return s, nil
}

// Run tails files until ctx ends.
//
// Files have no goroutine of their own: a few workers (see work) poll the
// tailers whose turn has come, from a schedule that this goroutine adds
// the files discovery finds to. A goroutine per file cost a stack of a few
// kilobytes and a timer for every file, most of them quiet; a thousand
// files then held more memory in stacks than the source reads with. The
// workers are also what bounds how many files are read at once: a reader's
// chunk is memory the budget does not see until its batch is emitted, and
// a thousand files with a backlog must not each hold one.
func (s *Source) Run(ctx context.Context, out pipeline.Output) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var w *dirWatcher
	var events <-chan struct{}
	if !s.noWatch {
		var err error
		if w, err = newDirWatcher(); err != nil {
			s.log.Warn("cannot watch directories; evaluating the globs every second instead", "err", err)
			w = nil
		} else {
			defer w.close()
			events = w.events()
		}
	}
	s.log.Debug("file source starting", "settings", s.cfg.String())

	tailers := map[string]*tailer{} // Run's own: the files followed
	sched := &schedule{}
	finished := make(chan *tailer)
	var wg sync.WaitGroup
	for range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(ctx, out, sched, finished)
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
		// Those queued or in a worker's hands when ctx ended.
		for _, t := range tailers {
			t.close()
		}
	}()

	startTailer := func(t *tailer) {
		if !t.start() {
			return // nothing to follow; the next sync tries the path again
		}
		tailers[t.path] = t
		t.due = time.Now()
		sched.add(t)
	}
	// Files rotated away before the last stop are drained by their
	// original paths' tailers, which read them before the files now at
	// those paths in every poll.
	for _, t := range s.recoverRotated() {
		startTailer(t)
	}

	var lastSync, nextSync time.Time
	degradedLogged := false
	syncNow := func() {
		s.syncs.Add(1)
		complete, added, err := syncWatches(w, s.cfg.groups)
		if err != nil {
			s.warn.Warn("watch", "cannot watch a directory; evaluating the globs every second", "err", err)
		} else if w != nil && !complete && !degradedLogged {
			s.log.Info("directory watches cannot cover every glob; evaluating the globs every second")
			degradedLogged = true
		}
		for _, m := range scan(s.cfg.groups) {
			if _, ok := tailers[m.path]; ok {
				continue
			}
			startTailer(s.newTailer(m.path, &s.cfg.groups[m.group]))
		}
		lastSync = time.Now()
		period := s.cfg.syncPeriod
		if !complete {
			period = min(period, s.fastSync)
		}
		if added {
			period = min(period, s.minSyncGap)
		}
		nextSync = lastSync.Add(period)
	}

	syncNow()
	timer := time.NewTimer(time.Until(nextSync))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case t := <-finished:
			if tailers[t.path] == t {
				delete(tailers, t.path)
			}
			// A file created at the path while its tailer was finishing was
			// skipped by the syncs meanwhile; look again soon.
			if soon := time.Now().Add(s.minSyncGap); soon.Before(nextSync) {
				nextSync = soon
			}
		case <-events:
			if soon := lastSync.Add(s.minSyncGap); soon.Before(nextSync) {
				nextSync = soon
			}
		case <-timer.C:
			syncNow()
		}
		timer.Reset(time.Until(nextSync))
	}
}

// work polls the tailers whose turn has come and queues them again, until
// ctx ends. A tailer that finished goes back to Run instead.
func (s *Source) work(ctx context.Context, out pipeline.Output, sched *schedule, finished chan<- *tailer) {
	me := newSleeper()
	defer me.timer.Stop()
	for {
		t, ok := sched.next(ctx, me)
		if !ok {
			return
		}
		due, done := t.poll(ctx, out)
		if done {
			select {
			case finished <- t:
			case <-ctx.Done():
				return
			}
			continue
		}
		t.due = due
		sched.put(t)
	}
}
