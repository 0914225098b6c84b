package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pipeline"
)

func config(include string, extra ...string) string {
	return fmt.Sprintf("include: [%q]\nlabels: {job: test}\n%s", include, strings.Join(extra, "\n"))
}

// checkStrictlyIncreasing checks that every path's entries carry strictly
// increasing timestamps, in the order they were emitted.
func checkStrictlyIncreasing(t *testing.T, entries []rec) {
	t.Helper()
	last := map[string]int64{}
	for _, e := range entries {
		if e.ts <= last[e.file] {
			t.Fatalf("%s: timestamp %d not after %d (line %q)", e.file, e.ts, last[e.file], e.line)
		}
		last[e.file] = e.ts
	}
}

func TestPickupNewFiles(t *testing.T) {
	for _, watch := range []bool{true, false} {
		t.Run(fmt.Sprintf("inotify=%v", watch), func(t *testing.T) {
			dir := t.TempDir()
			cfg := fmt.Sprintf("include: [%q, %q]\nlabels: {job: test}\nsync_period: 1h\n",
				dir+"/**/*.log", dir+"/notyet/deep/*.txt")
			h := start(t, cfg, tune(func(s *Source) {
				if watch {
					// Only directory events can find the files: neither the
					// sync period nor the fallback polling fires.
					s.fastSync = time.Hour
				} else {
					s.noWatch = true
				}
			}))

			a := filepath.Join(dir, "a.log")
			writeFile(t, a, numbered("a", 0, 3))
			waitFor(t, "a.log", func() bool { return h.rec.count(a) == 3 })

			sub := filepath.Join(dir, "sub", "deeper")
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			b := filepath.Join(sub, "b.log")
			writeFile(t, b, numbered("b", 0, 2))
			waitFor(t, "sub/deeper/b.log", func() bool { return h.rec.count(b) == 2 })

			// The static part of this glob did not exist at start.
			deep := filepath.Join(dir, "notyet", "deep")
			if err := os.MkdirAll(deep, 0o755); err != nil {
				t.Fatal(err)
			}
			c := filepath.Join(deep, "c.txt")
			writeFile(t, c, numbered("c", 0, 1))
			waitFor(t, "notyet/deep/c.txt", func() bool { return h.rec.count(c) == 1 })

			// A file that was found keeps being followed.
			appendFile(t, a, numbered("a", 3, 5))
			waitFor(t, "appended lines", func() bool { return h.rec.count(a) == 5 })

			if got := h.rec.lines(a); !reflect.DeepEqual(got, expectLines("a", 0, 5)) {
				t.Errorf("a.log lines %q", got)
			}
			want := pipeline.Labels{{Name: "filename", Value: a}, {Name: "job", Value: "test"}}
			if got := h.rec.all()[0].labels; !reflect.DeepEqual(got, want) {
				t.Errorf("labels %v, want %v", got, want)
			}
			checkStrictlyIncreasing(t, h.rec.all())

			size := float64(len(numbered("a", 0, 5)))
			waitFor(t, "metrics", func() bool {
				lines, _ := series(h.metrics.ReadLines, a)
				read, _ := series(h.metrics.ReadBytes, a)
				fsize, _ := series(h.metrics.FileBytes, a)
				lag, _ := series(h.metrics.FileLag, a)
				return lines == 5 && read == size && fsize == size && lag == 0 && h.filesActive() == 3
			})
			if w := h.logs.warnings(); len(w) > 0 {
				t.Errorf("unexpected warnings: %q", w)
			}
		})
	}
}

func TestGlobsExcludesAndTargets(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a.log":          "a\n",
		"b.log.gz":       "gz\n",
		"sub/c.log":      "c\n",
		"sub/skip-d.log": "d\n",
		"x.txt":          "x\n",
		"other/o.out":    "o\n",
		"other/p.log":    "p\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, content)
	}
	// Things a glob may match that are no files to read: a FIFO (opening
	// it would block) and a dangling symlink (a file that vanished between
	// the glob and the open).
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "dangling.log")); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`include: [%q, %q]
exclude: ['**/*.gz', '**/skip*']
labels: {job: main}
targets:
  - include: [%q, %q]
    labels: {job: other, team: ops}
`, dir+"/**/*.log", dir+"/*.txt", dir+"/other/*.out", dir+"/*.log")
	h := start(t, cfg)

	want := map[string]string{ // file -> job
		"a.log":       "main",
		"sub/c.log":   "main",
		"x.txt":       "main",
		"other/p.log": "main",
		"other/o.out": "other",
	}
	waitFor(t, "every included file", func() bool { return len(h.rec.all()) == len(want) })
	got := map[string]string{}
	for _, e := range h.rec.all() {
		rel, _ := filepath.Rel(dir, e.file)
		got[rel] = e.labels.Get("job")
		if rel == "other/o.out" && e.labels.Get("team") != "ops" {
			t.Errorf("o.out labels %v", e.labels)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("files read %v\nwant %v", got, want)
	}
	if n := h.filesActive(); n != float64(len(want)) {
		t.Errorf("files active %v, want %d", n, len(want))
	}
	// Paths that cannot be opened are retried at the next sync, not in a
	// loop: with every directory watched, the globs are left alone.
	before := h.src.syncs.Load()
	time.Sleep(500 * time.Millisecond)
	if n := h.src.syncs.Load() - before; n > 1 {
		t.Errorf("%d glob evaluations in half a second with nothing changing", n)
	}
	if w := h.logs.warnings(); len(w) > 0 {
		t.Errorf("unexpected warnings: %q", w)
	}
}

func TestResumeFromPositions(t *testing.T) {
	content := numbered("l", 0, 5)
	lineLen := int64(len("l-000000\n"))
	size := int64(len(content))
	tests := []struct {
		name  string
		saved int64 // -1: none
		want  []string
	}{
		{"no position", -1, expectLines("l", 0, 5)},
		{"zero", 0, expectLines("l", 0, 5)},
		{"after line 2", 2 * lineLen, expectLines("l", 2, 5)},
		{"at end", size, nil},
		{"beyond end: replaced while down", size + 100, expectLines("l", 0, 5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.log")
			writeFile(t, path, content)
			pos, _ := pipeline.OpenPositions("", false)
			if tt.saved >= 0 {
				pos.PutOffset(path, tt.saved)
			}
			h := start(t, config(dir+"/*.log"), withPositions(pos))
			waitFor(t, "the rest of the file", func() bool {
				read, _ := series(h.metrics.ReadBytes, path)
				return int64(read) == size && h.rec.count(path) == len(tt.want) && h.offset(path) == size
			})
			if got := h.rec.lines(path); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("lines %q, want %q", got, tt.want)
			}
		})
	}
}

// Rename rotation while a writer appends, including writes to the old file
// after the rename (before the writer reopens): every line arrives once.
func TestRenameRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	writeFile(t, path, "")
	h := start(t, config(path))

	const gens, perGen, late = 6, 3000, 20
	next := 0
	write := func(f *os.File, n int) {
		for i := 0; i < n; i++ {
			if _, err := fmt.Fprintf(f, "line-%06d %s\n", next, strings.Repeat("x", next%97)); err != nil {
				t.Error(err)
			}
			next++
			if i%500 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	for g := 0; g < gens; g++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		first := fmt.Sprintf("line-%06d ", next)
		write(f, perGen)
		// A path tailer can only read a file it has seen at the path:
		// rotate once it has (real rotations are seconds apart, not µs).
		waitFor(t, "the tailer to open "+first, func() bool {
			for _, l := range h.rec.lines(path) {
				if strings.HasPrefix(l+" ", first) {
					return true
				}
			}
			return false
		})
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		write(f, late) // the writer has not reopened yet
		f.Close()
	}
	// The last generation: a fresh file.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	write(f, 10)
	f.Close()

	total := next
	deadline := time.Now().Add(20 * time.Second)
	for h.rec.count(path) < total && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	seen := make(map[string]int, total)
	for _, l := range h.rec.lines(path) {
		seen[strings.Fields(l)[0]]++
	}
	bad := 0
	for i := 0; i < total; i++ {
		if k := fmt.Sprintf("line-%06d", i); seen[k] != 1 {
			if bad < 20 || i == total-1 {
				t.Errorf("%s read %d times", k, seen[k])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d lines not read exactly once", bad, total)
	}
	if len(seen) != total {
		t.Fatalf("%d distinct lines, want %d", len(seen), total)
	}
	checkStrictlyIncreasing(t, h.rec.all())
	// The key follows the newest file; rotated-away ones are closed once
	// quiet.
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the position of the newest file", func() bool { return h.offset(path) == fi.Size() })
	if h.filesActive() != 1 {
		t.Errorf("files active %v, want 1", h.filesActive())
	}
}

func TestCopyTruncate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	writeFile(t, path, numbered("old", 0, 100))
	h := start(t, config(path))
	size := int64(len(numbered("old", 0, 100)))
	waitFor(t, "the old lines", func() bool { return h.offset(path) == size })

	// logrotate copytruncate: copy aside, truncate in place, writer goes on.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path+".1", string(data))
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, numbered("new", 0, 10))
	newSize := int64(len(numbered("new", 0, 10)))

	waitFor(t, "the new lines", func() bool { return h.rec.count(path) == 110 && h.offset(path) == newSize })
	want := append(expectLines("old", 0, 100), expectLines("new", 0, 10)...)
	if got := h.rec.lines(path); !reflect.DeepEqual(got, want) {
		t.Errorf("lines %q", got)
	}
}

// A file rewritten shorter (truncated, then new content) is read from 0;
// a held incomplete line of the old content is emitted first.
func TestTruncation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	writeFile(t, path, numbered("old", 0, 20)+"old-partial")
	h := start(t, config(path, "partial_line_timeout: 1h"))
	waitFor(t, "the old lines", func() bool {
		read, _ := series(h.metrics.ReadBytes, path)
		return h.rec.count(path) == 20 && int(read) == len(numbered("old", 0, 20))+len("old-partial")
	})
	writeFile(t, path, "fresh-1\nfresh-2\n") // O_TRUNC
	waitFor(t, "the new content", func() bool { return h.rec.count(path) == 23 && h.offset(path) == 16 })
	want := append(expectLines("old", 0, 20), "old-partial", "fresh-1", "fresh-2")
	if got := h.rec.lines(path); !reflect.DeepEqual(got, want) {
		t.Errorf("lines %q", got)
	}
}

func TestDeletion(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteString(numbered("l", 0, 10)); err != nil {
		t.Fatal(err)
	}
	// A long drain window: the writes after the unlink must not race it.
	h := start(t, config(path), tune(func(s *Source) { s.drainIdle = 3 * time.Second }))
	waitFor(t, "the lines", func() bool { return h.rec.count(path) == 10 && h.offset(path) > 0 })

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	// The writer still holds the deleted file: what it writes is drained.
	if _, err := w.WriteString(numbered("l", 10, 15)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the tailer to drain and stop", func() bool {
		_, lines := series(h.metrics.ReadLines, path)
		_, lag := series(h.metrics.FileLag, path)
		return h.filesActive() == 0 && !lines && !lag
	})
	if got := h.rec.lines(path); !reflect.DeepEqual(got, expectLines("l", 0, 15)) {
		t.Errorf("lines %q", got)
	}
	if off := h.offset(path); off != -1 {
		t.Errorf("position of a deleted file is %d, want it removed", off)
	}

	// The same path created again is a new file, read from the start.
	writeFile(t, path, "again\n")
	waitFor(t, "the new file", func() bool { return h.rec.count(path) == 16 && h.offset(path) == 6 })
}

func TestPartialLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	writeFile(t, path, "")
	h := start(t, config(path, "partial_line_timeout: 1h"))
	waitFor(t, "the tailer", func() bool { return h.filesActive() == 1 })

	appendFile(t, path, "abc")
	waitFor(t, "the partial line to be read", func() bool {
		read, _ := series(h.metrics.ReadBytes, path)
		return read == 3
	})
	// Let the tailer poll a few more times; the line must stay held.
	for i := 0; i < 5; i++ {
		appendFile(t, path, "")
		time.Sleep(20 * time.Millisecond)
	}
	if n := h.rec.count(path); n != 0 || h.offset(path) != 0 {
		t.Fatalf("held partial line emitted: %d lines, position %d", n, h.offset(path))
	}
	appendFile(t, path, "def\r\nghi")
	waitFor(t, "the completed line", func() bool { return h.rec.count(path) == 1 && h.offset(path) == 8 })
	if got := h.rec.lines(path); !reflect.DeepEqual(got, []string{"abcdef"}) {
		t.Errorf("lines %q", got)
	}

	t.Run("flushed after the timeout", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "app.log")
		writeFile(t, path, "one\ntwo-without-newline")
		h := start(t, config(path, "partial_line_timeout: 100ms"))
		waitFor(t, "the flushed line", func() bool { return h.rec.count(path) == 2 && h.offset(path) == 23 })
		if got := h.rec.lines(path); !reflect.DeepEqual(got, []string{"one", "two-without-newline"}) {
			t.Errorf("lines %q", got)
		}
		// What follows is a line of its own.
		appendFile(t, path, "-more\n")
		waitFor(t, "the next line", func() bool { return h.rec.count(path) == 3 })
		if got := h.rec.lines(path)[2]; got != "-more" {
			t.Errorf("next line %q", got)
		}
	})
}

func TestLongLineBoundedMemory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte(strings.Repeat("0123456789abcdef", 1<<16)) // 1 MiB
	for i := 0; i < 50; i++ {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WriteString("\nshort\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	size := int64(50<<20 + 7)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h := start(t, config(path, "max_line_size: 64KiB"))
	waitFor(t, "both lines", func() bool { return h.rec.count(path) == 2 && h.offset(path) == size })
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	lines := h.rec.lines(path)
	if lines[0] != string(chunk[:64<<10]) || lines[1] != "short" {
		t.Errorf("got lines of %d and %d bytes", len(lines[0]), len(lines[1]))
	}
	if n, _ := series(h.metrics.Truncated, "files"); n != 1 {
		t.Errorf("truncated lines %v, want 1", n)
	}
	// Reading a 50 MiB line allocates a few chunks, not the line.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("allocated %d MiB reading one 50 MiB line", alloc>>20)
	}
}

func TestInvalidUTF8AndCRLF(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bin.log")
	writeFile(t, path, "\xff\xfe\x00bad\r\n\xc3\x28\r\n\r\nok\n")
	h := start(t, config(path))
	waitFor(t, "the lines", func() bool { return h.rec.count(path) == 4 })
	want := []string{"\xff\xfe\x00bad", "\xc3\x28", "", "ok"}
	if got := h.rec.lines(path); !reflect.DeepEqual(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}

// The position moves only over the settled prefix of what was emitted,
// whatever order batches settle in.
func TestCheckpointMovesOnlyOnSettle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	writeFile(t, path, numbered("l", 0, 6))
	lineLen := int64(len("l-000000\n"))
	h := start(t, config(path, "batch_lines: 2"), holding())
	waitFor(t, "three batches", func() bool { return len(h.rec.heldBatches()) == 3 })
	batches := h.rec.heldBatches()
	lag := func() float64 { v, _ := series(h.metrics.FileLag, path); return v }

	steps := []struct {
		settle int
		want   int64
	}{
		{2, 0},           // the last batch: nothing before it has settled
		{0, 2 * lineLen}, // the first: the prefix is batch 0
		{1, 6 * lineLen}, // the middle: everything
	}
	if h.offset(path) != 0 || lag() != float64(6*lineLen) {
		t.Fatalf("before any settle: position %d lag %v", h.offset(path), lag())
	}
	for _, s := range steps {
		batches[s.settle].Settle()
		if got := h.offset(path); got != s.want {
			t.Fatalf("after settling batch %d: position %d, want %d", s.settle, got, s.want)
		}
		if got := lag(); got != float64(6*lineLen-s.want) {
			t.Fatalf("after settling batch %d: lag %v, want %d", s.settle, got, 6*lineLen-s.want)
		}
	}
}

// blockingOutput is a sink that never has room: Emit blocks until ctx ends.
type blockingOutput struct {
	mu    sync.Mutex
	calls int
}

func (b *blockingOutput) Emit(ctx context.Context, _ *pipeline.Batch) error {
	b.mu.Lock()
	b.calls++
	b.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

func (b *blockingOutput) n() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// With the output full the reader stops; cancelled, Run returns, every
// goroutine ends and the position has not moved.
func TestRunStopsOnCancel(t *testing.T) {
	baseline := runtime.NumGoroutine()
	dir := t.TempDir()
	for i := 0; i < 20; i++ {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%02d.log", i)), numbered("l", 0, 100))
	}
	out := &blockingOutput{}
	h := start(t, config(dir+"/*.log", "batch_lines: 1"), withOutput(out))
	// A worker blocked in Emit polls nothing else: with the output full,
	// only as many files as there are workers have a chunk in memory, yet
	// every file is opened when found.
	slots := h.src.workers
	waitFor(t, "the readers to block in Emit", func() bool { return out.n() == slots })
	waitFor(t, "every file to be opened", func() bool { return h.filesActive() == 20 })

	stopped := time.Now()
	h.stop()
	if d := time.Since(stopped); d > 5*time.Second {
		t.Errorf("Run took %v to return", d)
	}
	if out.n() != slots {
		t.Errorf("%d Emit calls, want %d (one per worker): blocked readers must stop reading", out.n(), slots)
	}
	for i := 0; i < 20; i++ {
		if off := h.offset(filepath.Join(dir, fmt.Sprintf("f%02d.log", i))); off != 0 {
			t.Errorf("position moved to %d without a settle", off)
		}
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= baseline })
	if h.filesActive() != 0 {
		t.Errorf("files active %v after stop", h.filesActive())
	}
}

// Many files, each appended to: every line arrives, each file in order.
func TestManyFiles(t *testing.T) {
	dir := t.TempDir()
	const files, perFile = 50, 200
	h := start(t, config(dir+"/*.log"))
	var wg sync.WaitGroup
	for i := 0; i < files; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := filepath.Join(dir, fmt.Sprintf("f%02d.log", i))
			for j := 0; j < perFile; j += 20 {
				appendFile(t, p, numbered("l", j, j+20))
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every line", func() bool { return h.rec.count("") == files*perFile })
	byFile := map[string][]string{}
	for _, e := range h.rec.all() {
		byFile[e.file] = append(byFile[e.file], e.line)
	}
	names := make([]string, 0, len(byFile))
	for f, lines := range byFile {
		names = append(names, f)
		if !reflect.DeepEqual(lines, expectLines("l", 0, perFile)) {
			t.Errorf("%s: lines out of order or missing", f)
		}
	}
	sort.Strings(names)
	if len(names) != files {
		t.Errorf("%d files read, want %d", len(names), files)
	}
	checkStrictlyIncreasing(t, h.rec.all())
}

// A watched directory removed and created again is watched again: only
// directory events can find the new file here.
func TestWatchedDirectoryRecreated(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(sub, "a.log")
	writeFile(t, a, "one\n")
	h := start(t, config(sub+"/*.log", "sync_period: 1h"), tune(func(s *Source) {
		s.fastSync = time.Hour
		s.drainIdle = 50 * time.Millisecond
	}))
	waitFor(t, "a.log", func() bool { return h.rec.count(a) == 1 })

	if err := os.RemoveAll(sub); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the tailer to stop", func() bool { return h.filesActive() == 0 })
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, a, "two\n")
	waitFor(t, "the new a.log", func() bool { return h.rec.count(a) == 2 })
	if got := h.rec.lines(a); !reflect.DeepEqual(got, []string{"one", "two"}) {
		t.Errorf("lines %q", got)
	}
	// And files created later in it still arrive through its new watch.
	b := filepath.Join(sub, "b.log")
	writeFile(t, b, "three\n")
	waitFor(t, "b.log", func() bool { return h.rec.count(b) == 1 })
}

// A file read to its end keeps no read buffer while it is quiet, and is
// read again, from where it stopped, once it grows; an incomplete line
// waits in a buffer of its own size.
func TestQuietFileKeepsNoBuffer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	writeFile(t, path, numbered("a", 0, 2000))
	positions, _ := pipeline.OpenPositions("", false)
	env := pipeline.Env{Name: "files", Decoder: pipeline.Decoder{File: "test.yaml"}, Positions: positions}
	src, err := New(env, parseNode(t, config(path)))
	if err != nil {
		t.Fatal(err)
	}
	tl := src.newTailer(path, &src.cfg.groups[0])
	if !tl.start() {
		t.Fatal("start: nothing to follow")
	}
	defer tl.close()
	rec := &recorder{}
	poll := func(what string) {
		t.Helper()
		if _, done := tl.poll(context.Background(), rec); done {
			t.Fatalf("%s: the tailer finished", what)
		}
	}

	poll("first read")
	if rec.count(path) != 2000 {
		t.Fatalf("%d lines, want 2000", rec.count(path))
	}
	if tl.cur.sp.buf != nil {
		t.Errorf("read to the end, the file keeps a chunk of %d bytes", len(tl.cur.sp.buf))
	}
	poll("idle poll")
	if tl.cur.sp.buf != nil {
		t.Errorf("quiet, the file keeps a chunk of %d bytes", len(tl.cur.sp.buf))
	}

	appendFile(t, path, numbered("a", 2000, 2100)+"a-incomplete")
	poll("read after being quiet")
	if got := len(tl.cur.sp.buf); got == 0 || got > len("a-incomplete")+minRead {
		t.Errorf("holding an incomplete line in %d bytes", got)
	}
	appendFile(t, path, "-line\n")
	poll("the line completed")
	if tl.cur.sp.buf != nil {
		t.Errorf("read to the end again, the file keeps a chunk of %d bytes", len(tl.cur.sp.buf))
	}
	want := append(expectLines("a", 0, 2100), "a-incomplete-line")
	if got := rec.lines(path); !reflect.DeepEqual(got, want) {
		t.Errorf("%d lines, want %d in order", len(got), len(want))
	}
	if off, _ := positions.GetOffset(path); off != int64(len(numbered("a", 0, 2100))+len("a-incomplete-line\n")) {
		t.Errorf("position %d, want the end of the file", off)
	}
}

// Files have no goroutine of their own: a few workers poll them all.
func TestGoroutinesDoNotGrowWithFiles(t *testing.T) {
	baseline := runtime.NumGoroutine()
	dir := t.TempDir()
	const files = 300
	for i := 0; i < files; i++ {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%03d.log", i)), numbered("l", 0, 10))
	}
	h := start(t, config(dir+"/*.log"))
	waitFor(t, "every line", func() bool { return h.rec.count("") == files*10 })
	if h.filesActive() != files {
		t.Fatalf("files active %v, want %d", h.filesActive(), files)
	}
	// Run, its workers, the watcher and the test's own: nothing per file.
	if n := runtime.NumGoroutine() - baseline; n > h.src.workers+4 {
		t.Errorf("%d more goroutines while following %d files", n, files)
	}
	for i := 0; i < files; i += 37 {
		appendFile(t, filepath.Join(dir, fmt.Sprintf("f%03d.log", i)), numbered("m", 0, 5))
	}
	waitFor(t, "the appended lines", func() bool { return h.rec.count("") == files*10+5*((files+36)/37) })
}
