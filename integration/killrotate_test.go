package integration

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type rotKind int

const (
	rotRename       rotKind = iota // logrotate's create: rename, the app reopens a new file
	rotCopyTruncate                // logrotate's copytruncate
)

func (k rotKind) String() string {
	if k == rotRename {
		return "rename"
	}
	return "copytruncate"
}

// rotation rotates file when at lines have been written to it.
type rotation struct {
	file int
	at   int
	kind rotKind
}

// logFile is one file the writer appends to, across its generations.
type logFile struct {
	name     string
	path     string
	f        *os.File
	gen      int // generation, part of every line as the word gen_<name>_<gen>
	genLines int // lines in the current generation
	written  int // lines written to this file over all generations
	rotated  int // rotations so far, the suffix of the next rotated name
}

func (lf *logFile) token(gen int) string { return fmt.Sprintf("gen_%s_%d", lf.name, gen) }

// rotatingWriter appends numbered lines to several files at a steady rate
// and rotates them on schedule.
//
// A rotation holds guard from its start until the lines of the rotated-
// away generation are in VictoriaLogs and two positions sync periods have
// passed; the test's kills take the same guard. That keeps each kill -9
// out of a rotation's window, so this test checks that kills lose nothing
// and that rotations lose nothing. A kill inside the window is the subject
// of TestKillRightAfterRenameRotation.
type rotatingWriter struct {
	t         *testing.T
	vl        *victoriaLogs
	files     []*logFile
	rotations []rotation
	guard     *sync.Mutex
	sync      time.Duration
	total     int
	perTick   int // lines per file per 10ms tick

	mu       sync.Mutex
	lines    []string
	pathOf   map[string]string
	count    int
	log      []string
	stop     chan struct{} // closed when the test ends early
	done     chan struct{}
	failures []string
}

func (w *rotatingWriter) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *rotatingWriter) failed() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.failures...)
}

func (w *rotatingWriter) line(lf *logFile, seq int) string {
	return fmt.Sprintf("rot %s %s seq=%06d level=info msg=\"request served\" dur=%dms", lf.name, lf.token(lf.gen), seq, seq%997)
}

func (w *rotatingWriter) fail(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures = append(w.failures, fmt.Sprintf(format, args...))
}

func (w *rotatingWriter) note(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
}

func (w *rotatingWriter) written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count
}

// write appends lines to f in one write(2) and records them.
func (w *rotatingWriter) write(lf *logFile, f *os.File, lines []string) bool {
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		w.fail("writing %s: %v", lf.path, err)
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, lines...)
	for _, l := range lines {
		w.pathOf[l] = lf.path
	}
	w.count += len(lines)
	return true
}

// waitDelivered waits until n distinct lines carrying token are stored.
func (w *rotatingWriter) waitDelivered(token string, n int) bool {
	deadline := time.Now().Add(deliveryTimeout)
	got := 0
	var err error
	for time.Now().Before(deadline) && !w.stopped() {
		got, err = w.vl.countUniq(token)
		if err == nil && got >= n {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	w.fail("generation %s: %d of %d lines reached VictoriaLogs within %s (err %v)", token, got, n, deliveryTimeout, err)
	return false
}

func (w *rotatingWriter) run() {
	defer close(w.done)
	defer func() {
		for _, lf := range w.files {
			lf.f.Close()
		}
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for seq := 0; seq < w.total; {
		select {
		case <-tick.C:
		case <-w.stop:
			return
		}
		for _, lf := range w.files {
			n := min(w.perTick, w.total-seq)
			if n <= 0 {
				break
			}
			batch := make([]string, n)
			for i := range batch {
				batch[i] = w.line(lf, seq)
				seq++
			}
			if !w.write(lf, lf.f, batch) {
				return
			}
			lf.written += n
			lf.genLines += n
			for _, r := range w.rotations {
				if w.files[r.file] == lf && lf.written-n < r.at && lf.written >= r.at {
					if !w.rotate(lf, r.kind, &seq) {
						return
					}
				}
			}
		}
	}
}

func (w *rotatingWriter) rotate(lf *logFile, kind rotKind, seq *int) bool {
	w.guard.Lock()
	if w.stopped() {
		w.guard.Unlock()
		return false
	}
	lf.rotated++
	rotated := fmt.Sprintf("%s.%d", lf.path, lf.rotated)
	oldToken, oldLines := lf.token(lf.gen), lf.genLines
	switch kind {
	case rotRename:
		if err := os.Rename(lf.path, rotated); err != nil {
			w.fail("rotating %s: %v", lf.path, err)
			w.guard.Unlock()
			return false
		}
		// The app keeps writing to the old file until it reopens.
		late := make([]string, 30)
		for i := range late {
			late[i] = w.line(lf, *seq)
			*seq++
		}
		if !w.write(lf, lf.f, late) {
			w.guard.Unlock()
			return false
		}
		lf.written += len(late)
		oldLines += len(late)
		lf.f.Close()
		f, err := os.OpenFile(lf.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			w.fail("reopening %s: %v", lf.path, err)
			w.guard.Unlock()
			return false
		}
		lf.f = f
	case rotCopyTruncate:
		// The writer is paused (this is its goroutine), so no line falls
		// between the copy and the truncation. A line the tailer has not
		// read when the file is truncated is lost to any tailer, so wait
		// until everything written is delivered first.
		if !w.waitDelivered(oldToken, oldLines) {
			w.guard.Unlock()
			return false
		}
		if err := copyFile(lf.path, rotated); err != nil {
			w.fail("copying %s: %v", lf.path, err)
			w.guard.Unlock()
			return false
		}
		if err := lf.f.Truncate(0); err != nil {
			w.fail("truncating %s: %v", lf.path, err)
			w.guard.Unlock()
			return false
		}
	}
	lf.gen++
	lf.genLines = 0
	w.note("%s %s after %d lines; generation %s had %d lines", kind, lf.path, lf.written, oldToken, oldLines)
	go func() {
		defer w.guard.Unlock()
		if kind == rotRename && !w.waitDelivered(oldToken, oldLines) {
			return
		}
		// Let the positions file catch up with the new generation.
		time.Sleep(2 * w.sync)
	}()
	return true
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// TestKillAndRotate appends 51,000+ numbered lines to three files at a
// steady rate, rotating them by rename and by copytruncate, while vigil is
// killed with SIGKILL and restarted three times on the same positions
// file. Every line must reach VictoriaLogs, with its file's label, and the
// duplicates must stay within what the kills can re-send: the lines of
// about one positions sync period each.
func TestKillAndRotate(t *testing.T) {
	needVigil(t)
	vl := startVictoriaLogs(t)
	dir, glob := logDir(t)
	const (
		syncPeriod = time.Second
		rate       = 4000 // lines per second, over all files
		total      = 51000
	)
	cfg := cfgOpts{
		Positions:  filepath.Join(t.TempDir(), "positions.yaml"),
		SyncPeriod: syncPeriod.String(),
		Include:    []string{glob},
		Labels:     map[string]string{"job": "rotate"},
		URL:        vl.pushURL(),
	}.write(t, t.TempDir())

	w := &rotatingWriter{
		t: t, vl: vl, guard: &sync.Mutex{}, sync: syncPeriod, total: total,
		perTick: rate / 100 / 3, pathOf: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{}),
		rotations: []rotation{
			{file: 0, at: 4000, kind: rotRename},
			{file: 1, at: 5000, kind: rotCopyTruncate},
			{file: 2, at: 6000, kind: rotRename},
			{file: 0, at: 11000, kind: rotRename},
			{file: 1, at: 12000, kind: rotCopyTruncate},
			{file: 2, at: 13000, kind: rotCopyTruncate},
		},
	}
	for _, name := range []string{"a", "b", "c"} {
		lf := &logFile{name: name, path: filepath.Join(dir, name+".log")}
		f, err := os.OpenFile(lf.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		lf.f = f
		w.files = append(w.files, lf)
	}

	v := startVigil(t, cfg)
	go w.run()
	t.Cleanup(func() {
		close(w.stop)
		<-w.done
	})

	kills := 0
	killAndRestart := func() {
		w.guard.Lock()
		defer w.guard.Unlock() // also when a failed start ends the test
		v.kill9()
		kills++
		w.note("kill -9 at %d lines written", w.written())
		time.Sleep(500 * time.Millisecond) // the writer goes on meanwhile
		v = startVigil(t, cfg)
		w.note("restarted at %d lines written", w.written())
	}
	for _, at := range []int{total * 22 / 100, total * 49 / 100, total * 76 / 100} {
		waitFor(t, 2*deliveryTimeout, func() string {
			return fmt.Sprintf("writer stuck at %d lines, waiting for %d: %v", w.written(), at, w.failed())
		}, func() bool { return w.written() >= at })
		killAndRestart()
	}
	select {
	case <-w.done:
	case <-time.After(3 * deliveryTimeout):
		t.Fatalf("writer did not finish; at %d lines", w.written())
	}
	w.mu.Lock()
	lines, pathOf, failures, notes := w.lines, w.pathOf, w.failures, w.log
	w.mu.Unlock()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("schedule:\n%s", strings.Join(notes, "\n"))

	var uniq int
	var err error
	waitFor(t, deliveryTimeout, func() string {
		return fmt.Sprintf("VictoriaLogs has %d distinct lines, want %d (err %v)", uniq, len(lines), err)
	}, func() bool {
		uniq, err = vl.countUniq("*")
		return err == nil && uniq >= len(lines)
	})
	time.Sleep(2 * syncPeriod) // room for stray duplicates
	rows, err := vl.query("* | fields _msg, filename", 10*len(lines))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, r := range rows {
		counts[r["_msg"]]++
		if want := pathOf[r["_msg"]]; want != "" && r["filename"] != want {
			t.Errorf("line %q arrived with filename %q, want %q", r["_msg"], r["filename"], want)
		}
	}
	var missing []string
	dups := 0
	for _, l := range lines {
		switch n := counts[l]; {
		case n == 0:
			missing = append(missing, l)
		case n > 1:
			dups += n - 1
		}
	}
	if len(counts) != len(lines)-len(missing) {
		t.Errorf("VictoriaLogs holds %d distinct lines that were never written", len(counts)-(len(lines)-len(missing)))
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d lines lost, first: %q", len(missing), len(lines), firstN(missing, 5))
	}
	// Each kill may re-send what was delivered since the last positions
	// sync: at most about a sync period of writing, with slack for one more.
	bound := kills * int(2*syncPeriod/time.Second) * rate
	t.Logf("%d lines written, %d stored, %d duplicates after %d kills (bound %d)", len(lines), len(rows), dups, kills, bound)
	if dups > bound {
		t.Errorf("%d duplicates after %d kills: more than %d, two sync periods of writing per kill", dups, kills, bound)
	}

	// Once everything is delivered, the positions catch up with the files.
	for _, lf := range w.files {
		v.waitMetric("vigil_file_lag_bytes", map[string]string{"path": lf.path}, "lag of "+lf.path, deliveryTimeout, func(x float64) bool { return x == 0 })
	}
}

// TestKillRightAfterRenameRotation kills vigil while the lines of a file
// that was just rotated by rename are read but not yet delivered (batchwait
// is a minute), after the positions of the new file were saved. On restart
// those lines are only in the rotated file; the delivery contract says a
// kill -9 loses nothing, so they must still arrive.
func TestKillRightAfterRenameRotation(t *testing.T) {
	needVigil(t)
	vl := startVictoriaLogs(t)
	dir, glob := logDir(t)
	file := filepath.Join(dir, "app.log")
	opts := cfgOpts{
		Positions:  filepath.Join(t.TempDir(), "positions.yaml"),
		SyncPeriod: "1s",
		Include:    []string{glob},
		Labels:     map[string]string{"job": "rotate"},
		URL:        vl.pushURL(),
		BatchWait:  "1m",
	}
	v := startVigil(t, opts.write(t, t.TempDir()))
	old := numbered("before-rotation", 0, 500)
	appendLines(t, file, old...)
	v.waitMetric("promtail_read_lines_total", nil, "the lines before the rotation read", deliveryTimeout, func(x float64) bool { return x >= float64(len(old)) })
	if err := os.Rename(file, file+".1"); err != nil {
		t.Fatal(err)
	}
	late := numbered("late-into-rotated", 0, 20) // the app has not reopened yet
	appendLines(t, file+".1", late...)
	fresh := numbered("after-rotation", 0, 500)
	appendLines(t, file, fresh...)
	all := append(append(append([]string{}, old...), late...), fresh...)
	v.waitMetric("promtail_read_lines_total", nil, "every line read", deliveryTimeout, func(x float64) bool { return x >= float64(len(all)) })
	if sent := v.scrape().sum("promtail_sent_entries_total", nil); sent != 0 {
		t.Fatalf("%v entries sent before the kill; with batchwait 1m they should be pending", sent)
	}
	time.Sleep(2500 * time.Millisecond) // two sync periods: the new file's position is saved
	v.kill9()

	opts.BatchWait = "100ms"
	startVigil(t, opts.write(t, t.TempDir()))
	vl.waitCount("*", len(fresh), deliveryTimeout)
	// The rest is read at the same start; give it a little longer before
	// reporting what is missing.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if n, err := vl.countUniq("*"); err == nil && n >= len(all) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	checkCounts(t, vl.msgCounts("*", 10*len(all)), all)
}
