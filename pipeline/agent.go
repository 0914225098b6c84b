package pipeline

import (
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// ServeHTTP serves srv on ln until srv is shut down. With a web config
// file (--web.config.file, exporter-toolkit's format, as node_exporter's)
// it serves TLS and checks basic auth as that file says, reading the file
// again for each new connection so certificates can be rotated.
func ServeHTTP(srv *http.Server, ln net.Listener, webConfigFile string, logger *slog.Logger) error {
	return web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &webConfigFile}, logger)
}

// ValidateWebConfig checks a web config file without serving, so a broken
// one stops the start instead of every scrape.
func ValidateWebConfig(file string) error {
	if file == "" {
		return nil
	}
	if err := web.Validate(file); err != nil {
		return fmt.Errorf("web config %s: %w", file, err)
	}
	return nil
}

// Agent runs one graph at a time and swaps it on reload. It owns what
// outlives a config: the self-metrics registry and the HTTP handlers.
type Agent struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Metrics  *Metrics
	// Load reads the config again for a reload.
	Load func() (*Config, error)

	mu    sync.Mutex // serialises start, reload and stop
	graph *Graph
	ready atomic.Bool
	exp   exposers // the running graph's Exposers, served by /metrics
}

// registerer is what graphs register their metrics with: the registry,
// Exposers served by the /metrics handler next to it.
func (a *Agent) registerer() prometheus.Registerer {
	return agentRegisterer{reg: a.Registry, exp: &a.exp}
}

// NewAgent creates an agent with its own registry, holding vigil's
// self-metrics and the Go and process collectors.
func NewAgent(logger *slog.Logger, load func() (*Config, error)) *Agent {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), newProcessCollector())
	return &Agent{Logger: logger, Registry: reg, Metrics: NewMetrics(reg), Load: load}
}

// Start builds and starts cfg.
func (a *Agent) Start(cfg *Config) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	g, err := BuildWith(cfg, a.Logger, a.Metrics, a.registerer())
	if err != nil {
		return err
	}
	a.logNotes(cfg)
	g.Start()
	a.graph = g
	a.ready.Store(true)
	a.Metrics.ConfigOK.Set(1)
	return nil
}

func (a *Agent) logNotes(cfg *Config) {
	for _, n := range cfg.Notes {
		a.Logger.Info("config note", "note", n)
	}
}

// Reload reads and builds the config again. If either fails, the running
// graph is left untouched and the error says why. Otherwise the old graph
// is stopped the lossless way (its sinks drain, its positions are saved)
// and the new one starts from those positions, so nothing is lost and,
// when the drain completes in time, nothing is sent twice.
func (a *Agent) Reload() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.reload()
	if err != nil {
		a.Metrics.ReloadFail.Inc()
		a.Metrics.ConfigOK.Set(0)
		a.Logger.Error("reload failed; the previous config keeps running", "err", err)
		return err
	}
	a.Metrics.ReloadSuccess.Inc()
	a.Metrics.ConfigOK.Set(1)
	a.Logger.Info("config reloaded")
	return nil
}

func (a *Agent) reload() error {
	if a.Load == nil {
		return errors.New("this agent has no config file to reload")
	}
	cfg, err := a.Load()
	if err != nil {
		return err
	}
	old := a.graph
	if old != nil && old.cfg.DryRun {
		cfg.ToDryRun()
	}
	g, err := BuildWith(cfg, a.Logger, a.Metrics, a.registerer())
	if err != nil {
		return err
	}
	if old != nil {
		if old.cfg.Server.ListenAddress() != cfg.Server.ListenAddress() {
			a.Logger.Warn("server listen address changed; it takes effect at the next restart")
		}
		a.ready.Store(false)
		if err := old.Stop(old.cfg.Server.GracefulShutdownTimeout); err != nil {
			a.Logger.Warn("old config did not drain completely; undelivered entries will be read again", "err", err)
		}
		// The new graph read the positions while the old one still ran;
		// what the old one saved as it stopped is what to resume from.
		if err := g.positions.Reload(cfg.Positions.IgnoreInvalidYAML); err != nil {
			a.Logger.Error("re-reading positions; using those read at build", "err", err)
		}
	}
	a.logNotes(cfg)
	g.Start()
	a.graph = g
	a.ready.Store(true)
	return nil
}

// Stop stops the running graph within its graceful shutdown timeout.
func (a *Agent) Stop() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ready.Store(false)
	if a.graph == nil {
		return nil
	}
	return a.graph.Stop(a.graph.cfg.Server.GracefulShutdownTimeout)
}

// Handler serves /metrics, /ready, /-/healthy and /-/reload (also /reload,
// Promtail's path).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	plain := promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{
		EnableOpenMetrics:  true,
		DisableCompression: true, // gzipMetrics compresses, at a cheaper level
		ErrorLog:           slog.NewLogLogger(a.Logger.Handler(), slog.LevelError),
	})
	mux.Handle("/metrics", gzipMetrics(metricsHandler(a.Registry, &a.exp, a.Logger, plain)))
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "healthy")
	})
	reload := func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST to reload the config", http.StatusMethodNotAllowed)
			return
		}
		if err := a.Reload(); err != nil {
			http.Error(w, "reload failed, previous config still running: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "config reloaded")
	}
	mux.HandleFunc("/-/reload", reload)
	mux.HandleFunc("/reload", reload)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<html><head><title>vigil</title></head><body><h1>vigil</h1><ul>")
		for _, p := range []string{"/metrics", "/ready", "/-/healthy"} {
			fmt.Fprintf(w, `<li><a href="%s">%s</a></li>`, html.EscapeString(p), html.EscapeString(p))
		}
		fmt.Fprintf(w, "</ul><p>POST /-/reload reloads the config.</p></body></html>")
	})
	return mux
}
