// Command loggen writes numbered log lines for the docker source's tests.
// It is built static and run in a FROM scratch image.
//
//	loggen -n 100 -prefix p -stderr -size 40000 -interval 5ms -hold 1m
//	loggen -n 60000 -rate 1000 -prefix web-3
//
// Each line is "<prefix> run=<run> seq=<n>" padded with x to -size bytes.
// run is unique per process start, so the lines of a restarted container
// differ from the first run's. -n 0 writes until stopped. -rate paces the
// lines to a schedule (line i is due i/rate seconds after the start), so a
// run of -n N lasts N/rate seconds whatever the sleeps' jitter. SIGTERM exits at
// once (a PID 1 ignores it unless handled).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 10, "lines to write; 0 writes until stopped")
	prefix := flag.String("prefix", "line", "line prefix")
	stderr := flag.Bool("stderr", false, "write every odd line to stderr")
	size := flag.Int("size", 0, "pad lines with x to this many bytes")
	interval := flag.Duration("interval", 0, "pause between lines")
	hold := flag.Duration("hold", 0, "stay alive this long after writing")
	rate := flag.Float64("rate", 0, "lines per second, paced to a schedule; 0: no pacing")
	flag.Parse()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		os.Exit(0)
	}()

	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	out := bufio.NewWriter(os.Stdout)
	errw := bufio.NewWriter(os.Stderr)
	start := time.Now()
	for i := 0; *n == 0 || i < *n; i++ {
		if *rate > 0 {
			// Sleep until line i is due; lines that fell behind are
			// written at once, so the average rate holds.
			due := start.Add(time.Duration(float64(i) / *rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		l := fmt.Sprintf("%s run=%s seq=%d", *prefix, run, i)
		if len(l) < *size {
			l += " " + strings.Repeat("x", *size-len(l)-1)
		}
		w := out
		if *stderr && i%2 == 1 {
			w = errw
		}
		w.WriteString(l)
		w.WriteByte('\n')
		// Flush per line: the test compares the order of stdout and
		// stderr as Docker recorded them, and a stopped container must
		// not lose buffered lines.
		out.Flush()
		errw.Flush()
		if *interval > 0 {
			time.Sleep(*interval)
		}
	}
	if *hold > 0 {
		time.Sleep(*hold)
	}
}
