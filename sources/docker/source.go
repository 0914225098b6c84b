package docker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/dockerengine"
	"github.com/vigilhq/vigil/internal/engineapi"
	"github.com/vigilhq/vigil/internal/httpclient"
	"github.com/vigilhq/vigil/pipeline"
)

func init() {
	pipeline.RegisterSource("docker", func(env pipeline.Env, cfg *yaml.Node) (pipeline.Source, error) {
		s, err := New(env, cfg)
		if err != nil {
			return nil, err
		}
		return s, nil
	})
}

// readableDrivers are the log drivers whose logs the Engine API can return.
var readableDrivers = map[string]bool{"json-file": true, "local": true, "journald": true}

// Source follows the logs of the containers of one Docker Engine.
type Source struct {
	name      string
	cfg       settings
	log       *slog.Logger
	positions *pipeline.Positions
	warn      *pipeline.RateLimitedLogger
	truncated prometheus.Counter
	malformed prometheus.Counter

	mu         sync.Mutex
	containers map[string]*tracked
	warned     map[string]bool // containers already warned about (driver)
	networks   networks

	refreshes   atomic.Int64         // completed container lists, for tests
	filesDenied atomic.Bool          // log files cannot be read: the API is used
	eng         *dockerengine.Engine // set by Run
}

// tracked is a container the source knows of. It outlives its followers,
// so a container that stops and starts again resumes where the last
// follower stopped, even before that follower's batches settle.
type tracked struct {
	id   string
	ck   *checkpoint
	meta atomic.Pointer[meta]

	// stopped is set when the container stopped (its die event, or a
	// list that says so), and cleared when it starts; wake tells the
	// follower of a file that it changed.
	stopped atomic.Bool
	wake    chan struct{}

	// Guarded by Source.mu.
	following bool // a follower goroutine is running
	again     bool // the container started again while its follower ran

	// read is the cursor of the last entry handed to Emit. Only the one
	// running follower touches it; followers hand over through Source.mu.
	read int64
	// done is, per stream, the time of the last piece of the last line
	// handed to Emit. read may lag behind it (it stops before a line the
	// other stream still holds open), so a re-read skips by done too.
	done [3]int64
}

// New builds a docker source from its config node (without its type key).
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
		positions:  env.Positions,
		containers: map[string]*tracked{},
		warned:     map[string]bool{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	metrics := env.Metrics
	if metrics == nil {
		metrics = pipeline.NewTestMetrics()
	}
	if s.positions == nil {
		s.positions, _ = pipeline.OpenPositions("", false)
	}
	s.warn = pipeline.NewRateLimitedLogger(s.log, time.Minute)
	s.truncated = metrics.Truncated.WithLabelValues(s.name)
	s.malformed = metrics.StageErrors.WithLabelValues(s.name, "malformed_log_entry")
	return s, nil
}

// Run follows the Engine until ctx ends. The Engine's session (events,
// reconnection after a lost connection) is shared with the other users of
// the same host; the followers resume from their cursors after a
// reconnect.
func (s *Source) Run(ctx context.Context, out pipeline.Output) error {
	eng, err := s.openEngine()
	if err != nil {
		return fmt.Errorf("docker source %s: %w", s.name, err)
	}
	defer eng.Close()
	s.eng = eng
	cli := eng.Client()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub := eng.Subscribe()
	defer sub.Close()
	tick := time.NewTicker(s.cfg.refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-sub.Events():
			switch ev.Action {
			case "connected":
				// Listed again after every (re)connect: events may have
				// been missed, and containers that stopped meanwhile with
				// a cursor have lines left to read.
				if err := s.refresh(ctx, cli, out, &wg, true); err != nil && ctx.Err() == nil {
					s.log.Warn("listing docker containers", "source", s.name, "host", s.cfg.host, "err", err)
				}
			case "start":
				s.start(ctx, cli, out, &wg, ev.ID, true, true)
			case "die":
				s.setStopped(ev.ID)
			case "rename":
				s.mu.Lock()
				t := s.containers[ev.ID]
				s.mu.Unlock()
				if t != nil {
					if md, _, ok := s.inspect(ctx, cli, ev.ID); ok && md != nil {
						t.meta.Store(md)
					}
				}
			case "destroy":
				s.mu.Lock()
				t := s.containers[ev.ID]
				delete(s.containers, ev.ID)
				delete(s.warned, ev.ID)
				s.mu.Unlock()
				if t != nil {
					t.ck.remove()
					t.setStopped(true)
				} else {
					s.positions.Remove(cursorKey(ev.ID))
				}
			}
		case <-tick.C:
			if !eng.Ready() {
				continue
			}
			if err := s.refresh(ctx, cli, out, &wg, false); err != nil && ctx.Err() == nil {
				s.log.Warn("listing docker containers", "source", s.name, "host", s.cfg.host, "err", err)
			}
		}
	}
}

// openEngine opens the shared Engine for the source's host. A source with
// its own TLS, auth or proxy settings gets an Engine of its own.
func (s *Source) openEngine() (*dockerengine.Engine, error) {
	if s.cfg.http == (httpclient.Config{}) {
		return dockerengine.Open(s.cfg.host, s.log)
	}
	opts, err := s.clientOptions()
	if err != nil {
		return nil, err
	}
	return dockerengine.OpenWith(s.cfg.host+"#"+s.name, s.cfg.host, opts, s.log)
}

// clientOptions connects to the host. A tcp://, http:// or https:// host
// gets the configured TLS, auth and proxy, as Prometheus's Docker
// discovery does; a unix socket needs none (resolve refuses them).
func (s *Source) clientOptions() (engineapi.Options, error) {
	tr, err := s.cfg.http.Transport(false)
	if err != nil {
		return engineapi.Options{}, err
	}
	tr.ReadBufferSize = engineapi.ReadBufferSize
	auth := httpclient.NewAuth(&s.cfg.http, httpclient.WarnFunc(s.warn))
	return engineapi.Options{
		HTTPClient: &http.Client{Transport: auth.RoundTripper(tr)},
		TLS:        tr.TLSClientConfig != nil,
	}, nil
}

// refresh lists the containers and follows the running ones not followed
// yet. On the first list of a session it also reads stopped containers
// that have a cursor: they wrote while vigil was down or disconnected.
func (s *Source) refresh(ctx context.Context, cli *engineapi.Client, out pipeline.Output, wg *sync.WaitGroup, first bool) error {
	res, err := cli.ContainerList(ctx, engineapi.ContainerListOptions{All: true, Filters: s.cfg.filters})
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	if err := s.networks.refresh(ctx, cli); err != nil {
		return fmt.Errorf("listing networks: %w", err)
	}
	for _, c := range res {
		running := c.State == container.StateRunning
		if !running {
			// A die event may have been missed (the connection to the
			// Engine was down): a follower of its log file stops at its
			// end.
			s.setStopped(c.ID)
			if !first {
				continue
			}
			if _, ok := s.positions.Get(cursorKey(c.ID)); !ok {
				continue
			}
		}
		s.start(ctx, cli, out, wg, c.ID, false, running)
	}
	s.refreshes.Add(1)
	return nil
}

// setStopped marks a known container as stopped.
func (s *Source) setStopped(id string) {
	s.mu.Lock()
	t := s.containers[id]
	s.mu.Unlock()
	if t != nil {
		t.setStopped(true)
	}
}

func (t *tracked) setStopped(stopped bool) {
	if t.stopped.Swap(stopped) != stopped {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// start follows a container unless a follower already runs; a follower
// that runs is told to read again once its stream ends, since the stream
// of a container that stopped ends even if it has started again. running
// tells whether the container runs (a stopped one is read to its end).
func (s *Source) start(ctx context.Context, cli *engineapi.Client, out pipeline.Output, wg *sync.WaitGroup, id string, fromEvent, running bool) {
	s.mu.Lock()
	t := s.containers[id]
	if t != nil && t.following {
		if fromEvent {
			t.again = true
		}
		if running {
			t.setStopped(false)
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()

	if fromEvent && s.cfg.filters != nil {
		f := s.cfg.filters.Clone().Add("id", id)
		res, err := cli.ContainerList(ctx, engineapi.ContainerListOptions{All: true, Filters: f})
		if err != nil || len(res) == 0 {
			return
		}
	}
	md, driverOK, ok := s.inspect(ctx, cli, id)
	if !ok || !driverOK || md == nil {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if t = s.containers[id]; t == nil {
		t = &tracked{id: id, ck: newCheckpoint(s.positions, id), wake: make(chan struct{}, 1)}
		s.containers[id] = t
	}
	t.meta.Store(md)
	t.setStopped(!running)
	if t.following {
		t.again = t.again || fromEvent
		return
	}
	t.following = true
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.follow(ctx, cli, out, t)
	}()
}

// inspect reads a container's metadata. driverOK is false for a log
// driver the API cannot read, warned about once per container; meta is nil
// when relabeling dropped the container.
func (s *Source) inspect(ctx context.Context, cli *engineapi.Client, id string) (md *meta, driverOK, ok bool) {
	ins, err := s.eng.Inspect(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Debug("cannot inspect container; it may be gone", "source", s.name, "container", id, "err", err)
		}
		return nil, false, false
	}
	var driver string
	if ins.HostConfig != nil {
		driver = ins.HostConfig.LogConfig.Type
	}
	if !readableDrivers[driver] {
		s.mu.Lock()
		first := !s.warned[id]
		s.warned[id] = true
		s.mu.Unlock()
		if first {
			s.log.Warn("container's log driver cannot be read through the Docker API (only json-file, local and journald); its logs are skipped",
				"source", s.name, "container", strings.TrimPrefix(ins.Name, "/"), "id", id, "log_driver", driver)
		}
		return nil, false, true
	}
	md = s.buildMeta(ctx, cli, ins)
	if md != nil {
		md.logPath = s.logPath(driver, ins.LogPath, ins.ID)
	}
	return md, true, true
}

// sanitize makes a Docker label name a Prometheus label name, as
// Prometheus's discovery does.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}
