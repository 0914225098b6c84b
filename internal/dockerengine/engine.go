// Package dockerengine is the agent's one view of each Docker Engine it
// talks to: one events stream, one container list and one inspect cache per
// Engine, shared by the docker log source and the container metrics source.
package dockerengine

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/vigilhq/vigil/internal/engineapi"
	"github.com/vigilhq/vigil/pipeline"
)

// Engine is the agent's one view of a Docker Engine: one events stream,
// one container list, and the inspected metadata of the running
// containers, shared by every component that needs them (the docker log
// source and the container metrics source). Engines are shared per host
// and reference-counted: Open returns the running one, and the last
// Close stops it.
type Engine struct {
	key  string
	host string
	cli  *engineapi.Client
	log  *slog.Logger
	warn *pipeline.RateLimitedLogger

	mu      sync.Mutex
	running map[string]*inspected // by container ID
	subs    map[*Subscription]struct{}
	ready   bool // the current session's first list is done
	refs    int

	sessions atomic.Int64 // sessions whose first list completed, for tests
	cancel   context.CancelFunc
	done     chan struct{}
}

// Container is what the Engine knows of a running container.
type Container struct {
	ID        string
	Name      string // without the leading slash
	Image     string // as the container was created with (Config.Image)
	Labels    map[string]string
	Pid       int // init process, 0 when not running
	StartedAt time.Time
	Health    string // "", "starting", "healthy" or "unhealthy"
}

// inspected is a container's cached inspect response and its summary.
type inspected struct {
	c   Container
	ins container.InspectResponse
}

// Event tells subscribers what changed. Action is "connected" (a session
// began and its first list is done: subscribers list again, since events
// may have been missed), or the Engine's container action: "start",
// "die", "destroy", "rename" or "health_status".
type Event struct {
	Action string
	ID     string
}

// engineRetry is the pause between attempts to reach an Engine.
const engineRetry = 2 * time.Second

var engines = struct {
	sync.Mutex
	m map[string]*Engine
}{m: map[string]*Engine{}}

// Open returns the shared Engine for host (a unix socket or plain
// tcp://), starting it if none runs. Close releases it.
func Open(host string, logger *slog.Logger) (*Engine, error) {
	return OpenWith(host, host, engineapi.Options{}, logger)
}

// OpenWith returns the Engine registered under key, or starts one with
// the client options. A source with its own TLS or auth settings uses a
// key of its own, so its credentials are never lent to another.
func OpenWith(key, host string, opts engineapi.Options, logger *slog.Logger) (*Engine, error) {
	engines.Lock()
	defer engines.Unlock()
	if e := engines.m[key]; e != nil {
		e.mu.Lock()
		e.refs++
		e.mu.Unlock()
		return e, nil
	}
	if opts.UserAgent == "" {
		opts.UserAgent = pipeline.UserAgent()
	}
	cli, err := engineapi.New(host, opts)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		key: key, host: host, cli: cli, log: logger,
		warn:    pipeline.NewRateLimitedLogger(logger, time.Minute),
		running: map[string]*inspected{},
		subs:    map[*Subscription]struct{}{},
		refs:    1,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	engines.m[key] = e
	go e.run(ctx)
	return e, nil
}

// Close releases the Engine; the last user stops it.
func (e *Engine) Close() {
	engines.Lock()
	e.mu.Lock()
	e.refs--
	last := e.refs == 0
	e.mu.Unlock()
	if last {
		delete(engines.m, e.key)
	}
	engines.Unlock()
	if last {
		e.cancel()
		<-e.done
		e.cli.Close()
	}
}

// Client is the Engine's API client, for reading logs and listing with
// filters.
func (e *Engine) Client() *engineapi.Client { return e.cli }

// Host is the Engine's address as configured.
func (e *Engine) Host() string { return e.host }

// Ready says whether the current session's first list is done.
func (e *Engine) Ready() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ready
}

// Running returns the running containers, as of the last event.
func (e *Engine) Running() []Container {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Container, 0, len(e.running))
	for _, r := range e.running {
		out = append(out, r.c)
	}
	return out
}

// Inspect returns a container's inspect response: from the cache when it
// is running and known, else from the Engine.
func (e *Engine) Inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	e.mu.Lock()
	r := e.running[id]
	e.mu.Unlock()
	if r != nil {
		return r.ins, nil
	}
	return e.cli.ContainerInspect(ctx, id)
}

// Subscription delivers the Engine's events to one subscriber, in order,
// on its channel; the Engine never waits for a subscriber.
type Subscription struct {
	e      *Engine
	ch     chan Event
	mu     sync.Mutex
	queue  []Event
	wake   chan struct{}
	closed chan struct{}
}

// Subscribe starts delivering events. If a session is already up, the
// first event is "connected", so the subscriber lists what runs.
func (e *Engine) Subscribe() *Subscription {
	s := &Subscription{e: e, ch: make(chan Event), wake: make(chan struct{}, 1), closed: make(chan struct{})}
	e.mu.Lock()
	e.subs[s] = struct{}{}
	if e.ready {
		s.queue = append(s.queue, Event{Action: "connected"})
		s.wake <- struct{}{}
	}
	e.mu.Unlock()
	go s.pump()
	return s
}

// Events is the subscriber's channel.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Close stops delivery.
func (s *Subscription) Close() {
	s.e.mu.Lock()
	delete(s.e.subs, s)
	s.e.mu.Unlock()
	close(s.closed)
}

func (s *Subscription) push(ev Event) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Subscription) pump() {
	for {
		s.mu.Lock()
		q := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, ev := range q {
			select {
			case s.ch <- ev:
			case <-s.closed:
				return
			}
		}
		select {
		case <-s.wake:
		case <-s.closed:
			return
		}
	}
}

// publish hands an event to every subscriber. Callers hold e.mu.
func (e *Engine) publish(ev Event) {
	for s := range e.subs {
		s.push(ev)
	}
}

// run keeps a session with the Engine up until ctx ends: a lost
// connection (the socket is missing, the Engine restarts) is logged and
// retried.
func (e *Engine) run(ctx context.Context) {
	defer close(e.done)
	reconnecting := false
	for {
		before := e.sessions.Load()
		err := e.session(ctx, &reconnecting)
		e.mu.Lock()
		e.ready = false
		e.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if e.sessions.Load() > before {
			e.log.Warn("docker event stream lost; reconnecting", "host", e.host, "err", err)
		} else {
			e.warn.Warn("session", "docker engine unreachable; retrying", "host", e.host, "err", err, "retry_in", engineRetry)
		}
		reconnecting = true
		select {
		case <-ctx.Done():
			return
		case <-time.After(engineRetry):
		}
	}
}

// session subscribes to events, then lists the running containers, so
// nothing that starts in between is missed; then it follows events until
// the stream fails. A periodic list is a safety net behind the events.
func (e *Engine) session(ctx context.Context, reconnecting *bool) error {
	evCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Every session asks for the API version again: the Engine may have
	// been upgraded or downgraded while the connection was down.
	if _, err := e.cli.Negotiate(ctx); err != nil {
		return err
	}
	stream, err := e.cli.Events(evCtx, engineapi.Filters{}.Add("type", "container"))
	if err != nil {
		return fmt.Errorf("subscribing to docker events: %w", err)
	}
	messages, errs := make(chan events.Message), make(chan error, 1)
	decoded := make(chan struct{})
	defer func() {
		// The decoder ends with the stream; nothing outlives the session.
		cancel()
		stream.Close()
		<-decoded
	}()
	go func() {
		defer close(decoded)
		for {
			m, err := stream.Next()
			if err != nil {
				errs <- err
				return
			}
			select {
			case messages <- m:
			case <-evCtx.Done():
				errs <- evCtx.Err()
				return
			}
		}
	}()
	if err := e.list(ctx); err != nil {
		return err
	}
	e.sessions.Add(1)
	e.mu.Lock()
	e.ready = true
	e.publish(Event{Action: "connected"})
	e.mu.Unlock()
	if *reconnecting {
		e.log.Info("connected to the docker engine again", "host", e.host)
		*reconnecting = false
	}
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return fmt.Errorf("docker event stream: %w", err)
		case m := <-messages:
			action, _, _ := strings.Cut(string(m.Action), ":")
			id := m.Actor.ID
			switch action {
			case "start", "rename", "health_status":
				e.refresh(ctx, id)
			case "die", "destroy":
				e.mu.Lock()
				delete(e.running, id)
				e.mu.Unlock()
			default:
				continue
			}
			e.mu.Lock()
			e.publish(Event{Action: action, ID: id})
			e.mu.Unlock()
		case <-tick.C:
			if err := e.list(ctx); err != nil {
				return err
			}
		}
	}
}

// list reads the running containers, inspecting the ones not known yet,
// and forgets the ones that no longer run.
func (e *Engine) list(ctx context.Context) error {
	res, err := e.cli.ContainerList(ctx, engineapi.ContainerListOptions{})
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	seen := make(map[string]bool, len(res))
	for _, c := range res {
		seen[c.ID] = true
		e.mu.Lock()
		_, known := e.running[c.ID]
		e.mu.Unlock()
		if !known {
			e.refresh(ctx, c.ID)
		}
	}
	e.mu.Lock()
	for id := range e.running {
		if !seen[id] {
			delete(e.running, id)
		}
	}
	e.mu.Unlock()
	return nil
}

// refresh inspects a container and caches it while it runs.
func (e *Engine) refresh(ctx context.Context, id string) {
	ins, err := e.cli.ContainerInspect(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Debug("cannot inspect container; it may be gone", "host", e.host, "container", id, "err", err)
		}
		e.mu.Lock()
		delete(e.running, id)
		e.mu.Unlock()
		return
	}
	if ins.State == nil || !ins.State.Running {
		e.mu.Lock()
		delete(e.running, id)
		e.mu.Unlock()
		return
	}
	c := Container{ID: ins.ID, Name: strings.TrimPrefix(ins.Name, "/"), Pid: ins.State.Pid}
	if ins.Config != nil {
		c.Image, c.Labels = ins.Config.Image, ins.Config.Labels
	}
	if t, err := time.Parse(time.RFC3339Nano, ins.State.StartedAt); err == nil {
		c.StartedAt = t
	}
	if ins.State.Health != nil && ins.State.Health.Status != container.NoHealthcheck {
		c.Health = string(ins.State.Health.Status)
	}
	e.mu.Lock()
	e.running[id] = &inspected{c: c, ins: ins}
	e.mu.Unlock()
}
