// Command loggen writes nginx combined-format access-log lines of about 130
// bytes, or with -format json JSON lines of about 190 bytes, each ending
// with t=<unix ns> of its write time, to files or to stdout, at full speed
// or at a fixed rate, optionally rotating.
//
//	loggen -o /tmp/access.log -n 2000000
//	loggen -o /tmp/app.log -format json -n 2000000
//	loggen -o /tmp/logs/access.log -files 1000 -n 2000000
//	loggen -o /tmp/access.log -rate 10000 -duration 30s -rotate-lines 100000
//	loggen -o /tmp/access.log -rate 1000 -n 10000 -rotate-lines 3000 -copytruncate
//	loggen -o - -rate 100 -n 0        # stdout until SIGTERM, for a container
//	loggen -q -n 100000 -hold 1h -done /done/c1   # a container whose log stays followed
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/bench/internal/loggen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loggen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "-", "output file, or - for stdout; with -files N > 1, files are named <name>-<i><ext>")
	files := fs.Int("files", 1, "number of files to spread the lines over, one line to each in turn")
	lines := fs.Int64("n", 1_000_000, "total lines to write; 0 means no limit (stop with -duration or SIGTERM)")
	rate := fs.Float64("rate", 0, "lines per second over all files; 0 writes as fast as possible")
	duration := fs.Duration("duration", 0, "stop after this long; 0 means no limit")
	rotateLines := fs.Int64("rotate-lines", 0, "rotate each file after this many lines (rename to .1, .2, ...); 0 never rotates")
	rotateKeep := fs.Int("rotate-keep", 1, "rotated files to keep per file")
	copyTruncate := fs.Bool("copytruncate", false, "rotate by copying to .1 and truncating in place instead of renaming")
	appendTo := fs.Bool("append", false, "append to existing files instead of truncating them")
	seed := fs.Uint64("seed", 1, "random seed for the line content")
	format := fs.String("format", "access", "line format: access (nginx combined) or json")
	quiet := fs.Bool("q", false, "do not print the summary on stderr")
	hold := fs.Duration("hold", 0, "after writing, stay alive this long or until SIGTERM, so a container keeps running with its log complete")
	done := fs.String("done", "", "create this file once every line is written (a harness waits for it before reading a container's log)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loggen: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	f, err := loggen.ParseFormat(*format)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := loggen.Config{
		Lines: *lines, Rate: *rate, Duration: *duration,
		RotateLines: *rotateLines, RotateKeep: *rotateKeep, CopyTruncate: *copyTruncate, Append: *appendTo, Seed: *seed, Format: f,
	}
	if *out == "-" {
		if *files > 1 || *rotateLines > 0 {
			fmt.Fprintln(stderr, "loggen: -files and -rotate-lines need a file output (-o)")
			return 2
		}
		cfg.Out = stdout
	} else {
		cfg.Paths = loggen.Paths(*out, *files)
	}
	res, err := loggen.Write(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if !*quiet {
		fmt.Fprintf(stderr, "loggen: %d lines, %d bytes (%.1f bytes/line), %d rotations in %v: %.0f lines/s\n",
			res.Lines, res.Bytes, float64(res.Bytes)/float64(max(res.Lines, 1)), res.Rotations,
			res.Elapsed.Round(time.Millisecond), res.LinesPerSecond())
	}
	if *done != "" {
		if err := os.WriteFile(*done, nil, 0o644); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	if *hold > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(*hold):
		}
	}
	return 0
}
