// Command receiver is a Loki push endpoint that counts what it receives and
// measures end-to-end latency from the t=<unix ns> token loggen embeds in
// each line. GET /stats returns the counts as JSON; POST /reset zeroes them.
//
//	receiver -listen 127.0.0.1:3100
//	receiver -listen 127.0.0.1:3100 -expect 2000000 -timeout 5m   # exit once all lines arrived
//	receiver -fail-first 5 -throttle-first 5 -retry-after 2s -delay 100ms
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/bench/internal/receiver"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:3100", "address to listen on")
	var opts receiver.Options
	fs.IntVar(&opts.FailFirst, "fail-first", 0, "answer the first N pushes with 503")
	fs.IntVar(&opts.ThrottleFirst, "throttle-first", 0, "answer the N pushes after those with 429 and Retry-After")
	fs.DurationVar(&opts.RetryAfter, "retry-after", time.Second, "Retry-After sent with 429s (whole seconds, rounded up)")
	fs.DurationVar(&opts.Delay, "delay", 0, "wait this long before answering each push")
	expect := fs.Int64("expect", 0, "exit once this many lines were received, printing the stats; 0 runs until SIGTERM")
	timeout := fs.Duration("timeout", 0, "with -expect, give up after this long (exit 1); 0 waits forever")
	every := fs.Duration("report-every", 10*time.Second, "log progress this often; 0 disables")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	opts.Logger = logger
	srv, err := receiver.Listen(*listen, opts)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	defer srv.Close()
	logger.Info("receiving", "push_url", srv.PushURL(), "stats_url", srv.URL+"/stats")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *timeout > 0 && *expect > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	if *every > 0 {
		go report(ctx, srv.Receiver, *every, logger)
	}
	code := 0
	if *expect > 0 {
		if err := srv.WaitLines(ctx, *expect); err != nil {
			logger.Error("gave up", "err", err)
			code = 1
		}
	} else {
		<-ctx.Done()
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(srv.Stats()); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return code
}

func report(ctx context.Context, r *receiver.Receiver, every time.Duration, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := r.Lines()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n := r.Lines()
			st := r.Stats()
			logger.Info("progress", "lines", n, "lines_per_s", float64(n-last)/every.Seconds(),
				"streams", st.Streams, "p99_ms", st.Latency.P99Ms)
			last = n
		}
	}
}
