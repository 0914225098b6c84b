package loggen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config says what to write, where and how fast.
type Config struct {
	// Paths are the files to write, one line to each in turn. Ignored
	// when Out is set.
	Paths []string
	// Out receives every line instead of Paths, e.g. os.Stdout.
	Out io.Writer
	// Lines is the total to write over all files; 0 means no limit, and
	// then Duration or the context must end the run.
	Lines int64
	// Rate is the target in lines per second over all files; 0 writes as
	// fast as possible.
	Rate float64
	// Duration stops the run after this long; 0 means no limit.
	Duration time.Duration
	// RotateLines rotates a file once this many lines were written to it,
	// the way logrotate's create mode does: path.(k-1) is renamed to
	// path.k, path to path.1, and a new path is created. 0 never rotates.
	RotateLines int64
	// RotateKeep is how many rotated files to keep per path (default 1).
	RotateKeep int
	// CopyTruncate rotates the way logrotate's copytruncate does instead:
	// the file is copied to path.1 and truncated in place, and writing
	// goes on at its start.
	CopyTruncate bool
	// Append keeps what the files already hold instead of truncating them.
	Append bool
	// Format is the kind of line: Access (the default) or JSON.
	Format Format
	// Seed makes the content reproducible (the embedded times are not).
	Seed uint64
	// Now is the clock embedded in each line; time.Now when nil.
	Now func() time.Time
}

// Result is what a run wrote.
type Result struct {
	Lines     int64
	Bytes     int64
	Rotations int64
	Elapsed   time.Duration
}

// LinesPerSecond is the achieved write rate.
func (r Result) LinesPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Lines) / r.Elapsed.Seconds()
}

type target struct {
	path  string
	f     *os.File
	w     *bufio.Writer
	lines int64 // since the last rotation
	dirty bool
}

// bufferSize shares a fixed budget between files so a thousand files do
// not each hold a large buffer.
func bufferSize(files int) int {
	const budget, maxBuf, minBuf = 16 << 20, 256 << 10, 4 << 10
	return max(minBuf, min(maxBuf, budget/max(files, 1)))
}

// Write writes lines as cfg says until the count, the duration or ctx ends
// the run. In rate mode it flushes at every tick so a tailer sees each line
// within about a millisecond of its embedded time; at full speed it only
// flushes full buffers and at the end.
func Write(ctx context.Context, cfg Config) (res Result, err error) {
	if cfg.Out == nil && len(cfg.Paths) == 0 {
		return res, errors.New("loggen: no output: set Paths or Out")
	}
	if cfg.Lines <= 0 && cfg.Duration <= 0 && ctx.Done() == nil {
		return res, errors.New("loggen: unbounded run: set Lines, Duration or a cancellable context")
	}
	if cfg.Rate < 0 {
		return res, fmt.Errorf("loggen: negative rate %v", cfg.Rate)
	}
	if cfg.RotateKeep <= 0 {
		cfg.RotateKeep = 1
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}

	var targets []*target
	if cfg.Out != nil {
		targets = []*target{{w: bufio.NewWriterSize(cfg.Out, bufferSize(1))}}
		cfg.RotateLines = 0
	} else {
		size := bufferSize(len(cfg.Paths))
		for _, p := range cfg.Paths {
			t := &target{path: p}
			if err := t.open(cfg.Append); err != nil {
				closeAll(targets)
				return res, err
			}
			t.w = bufio.NewWriterSize(t.f, size)
			targets = append(targets, t)
		}
	}
	defer func() {
		if cerr := closeAll(targets); err == nil {
			err = cerr
		}
	}()

	gen := NewGenerator(cfg.Seed)
	line := make([]byte, 0, 512)
	start := time.Now()
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	next := 0
	writeOne := func() error {
		t := targets[next]
		next++
		if next == len(targets) {
			next = 0
		}
		line = gen.Append(cfg.Format, line[:0], now())
		line = append(line, '\n')
		if _, err := t.w.Write(line); err != nil {
			return fmt.Errorf("loggen: write %s: %w", t.name(), err)
		}
		t.dirty = true
		res.Lines++
		res.Bytes += int64(len(line))
		t.lines++
		if cfg.RotateLines > 0 && t.lines >= cfg.RotateLines {
			if err := t.rotate(cfg.RotateKeep, cfg.CopyTruncate); err != nil {
				return err
			}
			res.Rotations++
		}
		return nil
	}
	flush := func() error {
		for _, t := range targets {
			if t.dirty {
				if err := t.w.Flush(); err != nil {
					return fmt.Errorf("loggen: flush %s: %w", t.name(), err)
				}
				t.dirty = false
			}
		}
		return nil
	}
	done := func() bool { return cfg.Lines > 0 && res.Lines >= cfg.Lines }

	if cfg.Rate == 0 {
		for !done() {
			// Check the clock and ctx every few thousand lines only.
			if res.Lines%4096 == 0 {
				if ctx.Err() != nil || !deadline.IsZero() && time.Now().After(deadline) {
					break
				}
			}
			if err := writeOne(); err != nil {
				return res, err
			}
		}
		err := flush()
		res.Elapsed = time.Since(start)
		return res, err
	}

	ticker := time.NewTicker(time.Millisecond)
	defer ticker.Stop()
	for !done() {
		elapsed := time.Since(start)
		// The last tick writes what the whole duration is due, so a run
		// of d at rate r writes r*d lines, not whatever the last tick
		// before the deadline had reached.
		last := !deadline.IsZero() && elapsed >= cfg.Duration
		if last {
			elapsed = cfg.Duration
		}
		due := int64(cfg.Rate * elapsed.Seconds())
		if cfg.Lines > 0 {
			due = min(due, cfg.Lines)
		}
		for res.Lines < due {
			if err := writeOne(); err != nil {
				return res, err
			}
		}
		if err := flush(); err != nil {
			return res, err
		}
		if last {
			break
		}
		select {
		case <-ctx.Done():
			res.Elapsed = time.Since(start)
			return res, nil
		case <-ticker.C:
		}
	}
	err = flush()
	res.Elapsed = time.Since(start)
	return res, err
}

func (t *target) name() string {
	if t.path == "" {
		return "output"
	}
	return t.path
}

func (t *target) open(appendTo bool) error {
	flags := os.O_CREATE | os.O_WRONLY
	if appendTo {
		flags |= os.O_APPEND
	} else {
		flags |= os.O_TRUNC
	}
	if err := os.MkdirAll(filepath.Dir(t.path), 0o755); err != nil {
		return fmt.Errorf("loggen: %w", err)
	}
	f, err := os.OpenFile(t.path, flags, 0o644)
	if err != nil {
		return fmt.Errorf("loggen: %w", err)
	}
	t.f = f
	return nil
}

func (t *target) rotate(keep int, copyTruncate bool) error {
	if err := t.w.Flush(); err != nil {
		return fmt.Errorf("loggen: flush %s: %w", t.path, err)
	}
	for k := keep; k > 1; k-- {
		if err := os.Rename(fmt.Sprintf("%s.%d", t.path, k-1), fmt.Sprintf("%s.%d", t.path, k)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("loggen: rotate: %w", err)
		}
	}
	if copyTruncate {
		if err := copyFile(t.path, t.path+".1"); err != nil {
			return fmt.Errorf("loggen: rotate: %w", err)
		}
		if err := t.f.Truncate(0); err != nil {
			return fmt.Errorf("loggen: rotate: %w", err)
		}
		// Without O_APPEND the next write would land at the old offset and
		// leave a hole; writers that use O_APPEND start over at 0.
		if _, err := t.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("loggen: rotate: %w", err)
		}
		t.lines, t.dirty = 0, false
		return nil
	}
	if err := t.f.Close(); err != nil {
		return fmt.Errorf("loggen: close %s: %w", t.path, err)
	}
	if err := os.Rename(t.path, t.path+".1"); err != nil {
		return fmt.Errorf("loggen: rotate: %w", err)
	}
	if err := t.open(false); err != nil {
		return err
	}
	t.w.Reset(t.f)
	t.lines, t.dirty = 0, false
	return nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

func closeAll(targets []*target) error {
	var errs []error
	for _, t := range targets {
		if t.w != nil {
			if err := t.w.Flush(); err != nil {
				errs = append(errs, fmt.Errorf("loggen: flush %s: %w", t.name(), err))
			}
		}
		if t.f != nil {
			if err := t.f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("loggen: close %s: %w", t.path, err))
			}
			t.f = nil
		}
	}
	return errors.Join(errs...)
}

// Paths names n files after path: path itself when n is 1, otherwise
// access.log becomes access-0000.log, access-0001.log, ...
func Paths(path string, n int) []string {
	if n <= 1 {
		return []string{path}
	}
	ext := filepath.Ext(path)
	base := strings.TrimSuffix(path, ext)
	width := len(strconv.Itoa(n - 1))
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%0*d%s", base, width, i, ext)
	}
	return out
}
