package file

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/pipeline"
)

// tailer follows one path. Source.Run schedules it and its workers poll it.
//
// Files are followed by polling, as Promtail does: when a poll has read
// everything, the next one is due after pollMin, doubling up to pollMax
// while the file stays idle. An idle poll costs an fstat of the open file
// and a stat of the path, which is also how rotation is seen; data is read
// in chunks of up to readMax bytes, so the syscalls per line shrink as the
// file gets busier and a thousand quiet files cost a few thousand stats a
// second. A quiet file keeps no read buffer (see splitter.release).
//
// The path may name a succession of files (generations): when it is
// renamed away or deleted, the open file is drained until it has been
// quiet for drainIdle (the writer may append until it reopens), alongside
// the new file at the path, which is read from offset 0. On start it may
// also drain generations rotated away before the last stop (see tracker).
type tailer struct {
	s      *Source
	path   string
	labels pipeline.Labels

	cur *reader   // the file the path names; nil after a deletion
	old []*reader // rotated-away or deleted files still being drained

	opened  bool  // a file was opened: the tailer did follow the path
	closed  bool  // close ran
	lastTs  int64 // the last entry's timestamp: strictly increasing per path
	avgLine int   // recent bytes per line, to size batches
	backoff time.Duration

	due time.Time // of the next poll; the schedule's, under its lock

	readLines prometheus.Counter
	readBytes prometheus.Gauge
	fileBytes prometheus.Gauge
	lag       prometheus.Gauge
}

// reader is one generation: an open file and its split and checkpoint
// state.
type reader struct {
	f    *os.File
	fi   os.FileInfo
	sp   splitter
	tr   *tracker
	size int64 // last known size

	batch *pipeline.Batch // being filled
	span  *span
	bytes int

	more       bool      // the last pass stopped before the end of the file
	partialAt  time.Time // when the held incomplete line was first seen
	partialOff int64     // its start offset, to tell it from a newer one
	idleSince  time.Time // for a draining generation: quiet since
}

func (s *Source) newTailer(path string, g *group) *tailer {
	m := make(map[string]string, len(g.labels)+1)
	for k, v := range g.labels {
		if v != "" { // an empty value is no label, as in Prometheus
			m[k] = v
		}
	}
	m["filename"] = path
	return &tailer{s: s, path: path, labels: pipeline.LabelsFromMap(m), avgLine: 80}
}

// start opens the path, resuming at its saved position, and reports
// whether there is anything to follow: a file at the path, or generations
// recovered on start (in t.old already), which are drained even if
// nothing is at the path now. Files are opened as soon as they are found,
// not at their first poll, so a file deleted before a worker gets to it
// is still read.
func (t *tailer) start() bool {
	r := t.open(true)
	if r == nil && len(t.old) == 0 {
		return false
	}
	t.opened = true
	m := t.s.metrics
	t.readLines = m.ReadLines.WithLabelValues(t.path)
	t.readBytes = m.ReadBytes.WithLabelValues(t.path)
	t.fileBytes = m.FileBytes.WithLabelValues(t.path)
	t.lag = m.FileLag.WithLabelValues(t.path)
	m.FilesActive.Inc()
	if r != nil {
		t.cur = r
		t.startTracker(r, r.sp.pos)
	}
	t.backoff = t.s.pollMin
	return true
}

// poll reads what the generations hold and returns when the next poll is
// due, or done once the tailer is closed: its file was deleted and
// drained, or ctx ended (Emit took nothing more, positions stay).
func (t *tailer) poll(ctx context.Context, out pipeline.Output) (due time.Time, done bool) {
	progressed, err := t.step(ctx, out)
	if err != nil || (t.cur == nil && len(t.old) == 0) {
		t.close()
		return time.Time{}, true
	}
	now := time.Now()
	if t.behind() {
		return now, false // again at once, after the files already due
	}
	if progressed {
		t.backoff = t.s.pollMin
	} else {
		t.backoff = min(t.backoff*2, t.s.pollMax)
	}
	return t.s.aligned(now, min(t.backoff, t.partialDeadline())), false
}

// open opens the path. With resume, a saved position is used unless it is
// beyond the end of the file (which was then replaced or truncated while
// vigil was down). A path that vanished, or is not a regular file, gives
// nil. The caller starts the tracker.
func (t *tailer) open(resume bool) *reader {
	log := t.s.log
	fi, err := os.Stat(t.path)
	if err == nil && !fi.Mode().IsRegular() {
		// Never open a FIFO or device: the open itself may block.
		log.Debug("not a regular file; skipped", "path", t.path, "mode", fi.Mode().String())
		return nil
	}
	var f *os.File
	if err == nil {
		f, err = os.Open(t.path)
	}
	if err == nil {
		fi, err = f.Stat()
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			log.Debug("file vanished before it could be opened", "path", t.path)
		} else {
			t.s.warn.Warn("open:"+t.path, "cannot open file; will retry", "path", t.path, "err", err)
		}
		return nil
	}
	size := fi.Size()
	var off int64
	if resume {
		if saved, ok := t.s.positions.GetOffset(t.path); ok {
			if saved <= size {
				off = saved
			} else {
				log.Info("saved position is beyond the end of the file; reading it from the start",
					"path", t.path, "position", saved, "size", size)
			}
		}
	}
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			t.s.warn.Warn("open:"+t.path, "cannot seek to saved position; will retry", "path", t.path, "err", err)
			return nil
		}
	}
	return &reader{f: f, fi: fi, sp: newSplitter(t.s.cfg.maxLine, off), size: size}
}

func (t *tailer) startTracker(r *reader, offset int64) {
	r.tr = newTracker(t.path, t.s.positions, t.lag, offset, r.size)
	t.fileBytes.Set(float64(r.size))
	t.readBytes.Set(float64(offset))
}

// step polls every generation once. It reports whether anything was read.
func (t *tailer) step(ctx context.Context, out pipeline.Output) (bool, error) {
	now := time.Now()
	progressed := false

	// Rotated-away files first: what they hold was written before what
	// the new file holds.
	if len(t.old) > 0 {
		kept := make([]*reader, 0, len(t.old))
		for i, g := range t.old {
			n, err := t.follow(ctx, out, g, now)
			if err != nil {
				return progressed, err
			}
			if n > 0 {
				progressed = true
				g.idleSince = time.Time{}
			} else if g.idleSince.IsZero() {
				g.idleSince = now
			}
			if n > 0 || now.Sub(g.idleSince) < t.s.drainIdle {
				kept = append(kept, g)
				continue
			}
			err = t.flush(ctx, out, g, true)
			g.f.Close()
			if err != nil {
				t.old = append(kept, t.old[i+1:]...)
				return progressed, err
			}
			g.tr.finish()
		}
		t.old = kept
	}

	if t.cur == nil {
		// The path was deleted; a file created there since is new.
		if _, err := os.Stat(t.path); err != nil {
			return progressed, nil
		}
		r := t.open(false)
		if r == nil {
			return progressed, nil
		}
		t.s.log.Info("file created again; reading it from the start", "path", t.path)
		t.cur = r
		t.startTracker(r, 0)
	}

	g := t.cur
	before := g.sp.readOffset()
	if fi, err := g.f.Stat(); err == nil {
		g.size = fi.Size()
	}
	if g.size < before {
		t.s.log.Info("file truncated; reading it again from the start", "path", t.path, "size", g.size, "position", before)
		if err := t.restart(ctx, out, g); err != nil {
			return true, err
		}
		progressed = true
	}
	n, err := t.follow(ctx, out, g, now)
	if err != nil {
		return true, err
	}
	if n > 0 {
		progressed = true
	} else if g.size == g.sp.readOffset() {
		// Quiet: does the path still name this file?
		if t.checkPath(now) {
			// Read the new file, or keep draining, without backing off.
			return true, nil
		}
	}
	t.fileBytes.Set(float64(g.size))
	g.tr.setSize(g.size)
	return progressed, nil
}

// follow reads what g has beyond its read offset and deals with a held
// incomplete line. It returns the bytes read.
func (t *tailer) follow(ctx context.Context, out pipeline.Output, g *reader, now time.Time) (int64, error) {
	if g != t.cur {
		if fi, err := g.f.Stat(); err == nil {
			g.size = fi.Size()
		}
	}
	var n int64
	if g.size > g.sp.readOffset() {
		var err error
		if n, err = t.pass(ctx, out, g); err != nil {
			return n, err
		}
	}
	// Timing the incomplete line from when it was first seen bounds its
	// delay, even if its writer keeps adding to it without a newline.
	if !g.sp.partial() {
		g.partialAt = time.Time{}
		return n, nil
	}
	if g.partialAt.IsZero() || g.partialOff != g.sp.pos {
		g.partialAt, g.partialOff = now, g.sp.pos
		return n, nil
	}
	if now.Sub(g.partialAt) < t.s.cfg.partialLineTimeout {
		return n, nil
	}
	g.partialAt = time.Time{}
	return n, t.flush(ctx, out, g, false)
}

// aligned returns when a wait of d from now ends, stretched to the next
// multiple of a tenth of pollMin. Tailers due at the same instant are
// polled in one go; a thousand tailers due each at its own moment would
// each wake a worker, which costs more than their poll. The grid is found
// on the wall clock, but the result keeps now's monotonic reading, so a
// step of the clock does not move the polls.
func (s *Source) aligned(now time.Time, d time.Duration) time.Time {
	grid := max(s.pollMin/10, time.Millisecond)
	at := now.Add(d)
	return at.Add(at.Truncate(grid).Add(grid).Sub(at))
}

// behind reports whether a pass stopped before the end of its file.
func (t *tailer) behind() bool {
	if t.cur != nil && t.cur.more {
		return true
	}
	for _, g := range t.old {
		if g.more {
			return true
		}
	}
	return false
}

// partialDeadline is how long until a held incomplete line is due.
func (t *tailer) partialDeadline() time.Duration {
	d := time.Duration(1<<63 - 1)
	check := func(g *reader) {
		if g != nil && !g.partialAt.IsZero() {
			d = min(d, max(time.Until(g.partialAt.Add(t.s.cfg.partialLineTimeout)), time.Millisecond))
		}
	}
	check(t.cur)
	for _, g := range t.old {
		check(g)
	}
	return d
}

// pass reads until the end of the file, emitting full batches as it goes
// and the rest at the end. It returns the bytes read.
func (t *tailer) pass(ctx context.Context, out pipeline.Output, g *reader) (int64, error) {
	// A pass is bounded so files with a backlog take turns at the workers.
	g.more = false
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		if total >= passBytes {
			g.more = true
			break
		}
		want := g.size - g.sp.readOffset()
		if want <= 0 && total > 0 {
			want = int64(t.s.readMax) // it grew since the fstat
		}
		buf := g.sp.space(int(min(want, int64(t.s.readMax))))
		n, err := g.f.Read(buf)
		if n > 0 {
			g.sp.wrote(n)
			total += int64(n)
			if err := t.split(ctx, out, g); err != nil {
				return total, err
			}
		}
		if err != nil {
			if err != io.EOF {
				t.s.warn.Warn("read:"+t.path, "reading file; will retry", "path", t.path, "err", err)
			}
			break
		}
		if n < len(buf) {
			break // a short read of a regular file is its end, for now
		}
	}
	if !g.more {
		g.sp.release()
	}
	off := g.sp.readOffset()
	g.size = max(g.size, off)
	if g.batch != nil {
		return total, t.emit(ctx, out, g)
	}
	t.setRead(g)
	return total, nil
}

// setRead moves the read position gauge, before an Emit that may block
// for long under backpressure. The gauge describes the file at the path,
// as the size and lag gauges do, so rotated-away files leave it alone.
func (t *tailer) setRead(g *reader) {
	if g == t.cur {
		t.readBytes.Set(float64(g.sp.readOffset()))
	}
}

// stamp returns the timestamp for the first of a run of lines: the read
// time, bumped so it stays after the previous line's.
func (t *tailer) stamp() int64 {
	return max(time.Now().UnixNano(), t.lastTs+1)
}

// split turns what g holds into entries, emitting each batch once full.
func (t *tailer) split(ctx context.Context, out pipeline.Output, g *reader) error {
	ts := t.stamp()
	cfg := &t.s.cfg
	for {
		line, truncated, ok := g.sp.next()
		if !ok {
			break
		}
		if truncated {
			t.s.truncated.Inc()
		}
		if g.batch == nil {
			t.newBatch(g, len(line))
		}
		g.batch.Entries = append(g.batch.Entries, pipeline.Entry{Time: ts, Line: line, Labels: t.labels})
		ts++
		g.bytes += len(line)
		if len(g.batch.Entries) >= cfg.batchLines || g.bytes >= cfg.batchBytes {
			t.lastTs = ts - 1
			if err := t.emit(ctx, out, g); err != nil {
				return err
			}
		}
	}
	t.lastTs = ts - 1
	return nil
}

// newBatch starts a batch sized for what is buffered and still unread.
// Guessing a third more lines than the recent line length predicts spares
// most batches a growing copy, at the price of some unused capacity.
func (t *tailer) newBatch(g *reader, first int) {
	ahead := int64(first+g.sp.w-g.sp.r) + max(g.size-g.sp.readOffset(), 0)
	n := min(int64(t.s.cfg.batchLines), ahead*4/int64(3*t.avgLine)+8)
	g.span = g.tr.open()
	g.batch = pipeline.NewBatch(int(n), g.span.settle)
}

// emit hands g's batch on. Its span is queued first: a sink may settle the
// batch before Emit returns.
func (t *tailer) emit(ctx context.Context, out pipeline.Output, g *reader) error {
	b := g.batch
	n := len(b.Entries)
	t.avgLine = max((g.bytes+n)/n, 1)
	g.tr.push(g.span, g.sp.done)
	g.batch, g.span, g.bytes = nil, nil, 0
	t.readLines.Add(float64(n))
	t.setRead(g)
	return out.Emit(ctx, b)
}

// flush emits g's held incomplete line, and whatever batch is pending.
func (t *tailer) flush(ctx context.Context, out pipeline.Output, g *reader, final bool) error {
	if line, truncated, ok := g.sp.flush(final); ok {
		if truncated {
			t.s.truncated.Inc()
		}
		if g.batch == nil {
			t.newBatch(g, len(line))
		}
		ts := t.stamp()
		t.lastTs = ts
		g.batch.Entries = append(g.batch.Entries, pipeline.Entry{Time: ts, Line: line, Labels: t.labels})
		g.bytes += len(line)
	}
	if g.batch != nil {
		return t.emit(ctx, out, g)
	}
	return nil
}

// restart reads g's file again from 0 after it was truncated in place
// (copytruncate): what was held is emitted, and a new generation takes the
// key over.
func (t *tailer) restart(ctx context.Context, out pipeline.Output, g *reader) error {
	if err := t.flush(ctx, out, g, true); err != nil {
		return err
	}
	g.tr.disown()
	if _, err := g.f.Seek(0, io.SeekStart); err != nil {
		t.s.warn.Warn("read:"+t.path, "cannot seek to the start of a truncated file", "path", t.path, "err", err)
	}
	g.sp.reset(0)
	g.partialAt = time.Time{}
	t.startTracker(g, 0)
	return nil
}

// checkPath looks whether the path still names the current file. If it
// was renamed away or deleted, the file joins the drained generations and
// its key passes to the file now at the path, or is removed. It reports
// whether the current file changed.
func (t *tailer) checkPath(now time.Time) bool {
	g := t.cur
	fi, err := os.Stat(t.path)
	if err == nil && os.SameFile(fi, g.fi) {
		return false
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.s.warn.Warn("stat:"+t.path, "cannot stat file; keeping the open one", "path", t.path, "err", err)
		return false
	}
	// Record the old generation under a key of its own before the path key
	// is handed on, so no saved positions lack both (see tracker).
	if id, ok := idOf(g.fi); ok {
		g.tr.rotate(rotatedKey(id))
	} else {
		g.tr.disown()
	}
	g.idleSince = now
	t.old = append(t.old, g)
	t.cur = nil
	if err == nil {
		if r := t.open(false); r != nil {
			t.s.log.Info("file rotated; reading the new file from the start", "path", t.path)
			t.cur = r
			t.startTracker(r, 0)
			return true
		}
	}
	t.s.log.Info("file deleted; draining what is left of it", "path", t.path)
	t.s.positions.Remove(t.path)
	return true
}

// close releases the files and the path's metric series, once. Trackers
// live on in their batches' callbacks: batches settled after shutdown still
// move the positions the runner saves last.
func (t *tailer) close() {
	if t.closed || !t.opened {
		return
	}
	t.closed = true
	for _, g := range append(t.old, t.cur) {
		if g != nil {
			g.f.Close()
			g.tr.dropMetrics()
		}
	}
	m := t.s.metrics
	m.ReadLines.DeleteLabelValues(t.path)
	m.ReadBytes.DeleteLabelValues(t.path)
	m.FileBytes.DeleteLabelValues(t.path)
	m.FileLag.DeleteLabelValues(t.path)
	m.FilesActive.Dec()
}
