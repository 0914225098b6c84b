// Command vigil is a log shipper and host agent: it tails files, runs them
// through processors and ships them to Loki, and serves its metrics to
// Prometheus. It accepts Promtail's config format and flags.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/components"
	"github.com/vigilhq/vigil/examples"
	"github.com/vigilhq/vigil/pipeline"
	"github.com/vigilhq/vigil/sources/host"
)

type options struct {
	configFile   string
	expandEnv    bool
	format       string
	dryRun       bool
	checkSyntax  bool
	printConfig  bool
	inspect      bool
	listenAddr   string
	listenSet    bool
	logLevel     string
	logFormat    string
	version      bool
	validateOnly bool
	webConfig    string
	hostFlags    *host.Flags
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	components.Link()
	var o options
	if len(args) > 0 && args[0] == "validate" {
		o.validateOnly = true
		args = args[1:]
	}
	if len(args) > 0 && args[0] == "version" {
		fmt.Fprintf(stdout, "vigil %s\n", pipeline.VersionString())
		return 0
	}
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("vigil", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configFile, "config.file", "", "config file, in vigil's format or Promtail's (default: the embedded config)")
	fs.BoolVar(&o.expandEnv, "config.expand-env", false, "expand ${VAR} in a Promtail-format config (native configs are always expanded)")
	fs.StringVar(&o.format, "config.format", "", "config format: native or promtail (default: detected)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print entries instead of sending them, and never write positions")
	fs.BoolVar(&o.checkSyntax, "check-syntax", false, "check the config file and exit")
	fs.BoolVar(&o.printConfig, "print-config-stderr", false, "print the effective config, in vigil's format, to stderr at start")
	fs.BoolVar(&o.inspect, "inspect", false, "write what each processor (pipeline stage) changes in each entry to stderr")
	fs.StringVar(&o.listenAddr, "web.listen-address", ":9100", "address to serve /metrics and the API on; overrides the config's server block")
	fs.StringVar(&o.logLevel, "log.level", "", "log level: debug, info, warn, error (default: the config's, else info)")
	fs.StringVar(&o.logFormat, "log.format", "", "log format: logfmt or json (default: the config's, else logfmt)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&o.webConfig, "web.config.file", "", "exporter-toolkit web config file for TLS and basic auth on the HTTP server (as node_exporter's)")
	// node_exporter's flags: --path.*, --[no-]collector.<name>,
	// --collector.<name>.<option>, --collector.disable-defaults. They
	// override the config's host sources.
	o.hostFlags = host.AddFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage:\n  vigil [flags]\n  vigil validate FILE [flags]\n  vigil healthcheck [-web.listen-address ADDR]\n  vigil version\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "web.listen-address" {
			o.listenSet = true
		}
	})
	if o.version {
		fmt.Fprintf(stdout, "vigil %s\n", pipeline.VersionString())
		return 0
	}
	if o.validateOnly {
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "usage: vigil validate FILE")
			return 2
		}
		o.configFile = fs.Arg(0)
	} else if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	load := func() (*pipeline.Config, error) {
		cfg, err := loadConfig(&o)
		if err == nil && o.inspect {
			cfg.Inspect = stderr
		}
		return cfg, err
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if o.validateOnly || o.checkSyntax {
		if err := validate(cfg); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if err := pipeline.ValidateWebConfig(o.webConfig); err != nil {
			fmt.Fprintf(stderr, "--web.config.file: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: valid %s config\n", cfg.File, cfg.Format)
		return 0
	}
	logger, err := newLogger(stderr, firstNonEmpty(o.logLevel, cfg.Server.LogLevel), firstNonEmpty(o.logFormat, cfg.Server.LogFormat))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if o.printConfig {
		if b, err := cfg.YAML(); err == nil {
			stderr.Write(b)
		}
	}
	return serve(&o, cfg, load, logger)
}

// loadConfig reads the config file, or the embedded default. The default
// runs as a dry run unless LOKI_URL is set.
func loadConfig(o *options) (*pipeline.Config, error) {
	var cfg *pipeline.Config
	var err error
	if o.configFile == "" {
		cfg, err = pipeline.Load("<embedded default>", examples.Default, pipeline.LoadOptions{})
		if err == nil && os.Getenv("LOKI_URL") == "" {
			cfg.ToDryRun()
		}
	} else {
		cfg, err = pipeline.LoadFile(o.configFile, pipeline.LoadOptions{ExpandEnv: o.expandEnv, Format: o.format})
	}
	if err != nil {
		return nil, err
	}
	if err := o.hostFlags.Apply(cfg); err != nil {
		return nil, err
	}
	if o.dryRun {
		cfg.ToDryRun()
	}
	return cfg, nil
}

// validate builds every component without starting any, so every error a
// start would hit is reported.
func validate(cfg *pipeline.Config) error {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := pipeline.Build(cfg, logger, pipeline.NewTestMetrics())
	if err != nil {
		return err
	}
	return g.Discard()
}

func serve(o *options, cfg *pipeline.Config, load func() (*pipeline.Config, error), logger *slog.Logger) int {
	agent := pipeline.NewAgent(logger, load)
	addr := o.listenAddr
	if !o.listenSet && cfg.Server.ListenAddress() != "" {
		addr = cfg.Server.ListenAddress()
	}
	var srv *http.Server
	if !cfg.Server.Disable {
		if err := pipeline.ValidateWebConfig(o.webConfig); err != nil {
			logger.Error("invalid --web.config.file", "err", err)
			return 1
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			logger.Error("cannot listen", "address", addr, "err", err)
			return 1
		}
		srv = &http.Server{
			Handler:           agent.Handler(),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       cfg.Server.HTTPServerReadTimeout,
			WriteTimeout:      cfg.Server.HTTPServerWriteTimeout,
			IdleTimeout:       cfg.Server.HTTPServerIdleTimeout,
		}
		go func() {
			if err := pipeline.ServeHTTP(srv, ln, o.webConfig, logger); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("http server", "err", err)
			}
		}()
		logger.Info("serving", "address", ln.Addr().String())
	}
	if err := agent.Start(cfg); err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	logger.Info("vigil started", "version", pipeline.VersionString(), "config", cfg.File, "format", cfg.Format, "dry_run", cfg.DryRun)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			_ = agent.Reload()
			continue
		}
		logger.Info("shutting down", "signal", sig.String())
		break
	}
	code := 0
	if err := agent.Stop(); err != nil {
		logger.Warn("shutdown did not drain completely; undelivered entries will be read again at the next start", "err", err)
	}
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	logger.Info("stopped")
	return code
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "", "info":
		lv = slog.LevelInfo
	case "debug":
		lv = slog.LevelDebug
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "logfmt", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("unknown log format %q (want logfmt or json)", format)
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// healthcheck asks a running vigil's /-/healthy and exits 0 when it
// answers 200: a probe for images without a shell or an HTTP client (the
// FROM scratch image), as a container runtime's health check.
func healthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("web.listen-address", ":9100", "the address the vigil to check serves on")
	scheme := fs.String("scheme", "http", "http, or https for a vigil with TLS in its --web.config.file (the certificate is not verified)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: invalid address %q: %v\n", *addr, err)
		return 2
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // a local liveness probe
	client := &http.Client{Timeout: *timeout, Transport: tr}
	resp, err := client.Get(*scheme + "://" + net.JoinHostPort(host, port) + "/-/healthy")
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: /-/healthy answered %s\n", resp.Status)
		return 1
	}
	fmt.Fprintln(stdout, "healthy")
	return 0
}
