package docker

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/pipeline"
)

// Reading json-file logs from disk.
//
// Streaming a log through the Engine API costs the Engine a JSON decode
// and a write per line and vigil a read per HTTP chunk; reading the file
// the Engine writes costs a read per 64 KiB. So when the Engine is local
// and a container logs with json-file, vigil reads its log file (the
// LogPath the Engine reports, under containers_path if that is set) and
// uses the API for discovery and metadata only. The cursor is the same
// nanosecond checkpoint either way, so a container can move between the
// two (the file becomes unreadable, vigil restarts with another setting).
//
// The file is followed by polling, as the file source does. The Engine
// rotates it (max-size, max-file) by closing it and renaming it to .1
// (older ones move up, and with compress they become .N.gz); with max-file
// 1 it truncates it instead. Once the container stopped (its die event, or
// a container list that says so) the Engine has closed the file, so the
// follower ends at its end.

// logFilePollMin and logFilePollMax bound the wait between two looks at an
// idle log: it doubles while the log stays quiet.
const (
	logFilePollMin = 250 * time.Millisecond
	logFilePollMax = time.Second
)

// A follower reads a quiet log with a logReadMin buffer and a busy one
// (a read filled the buffer) with logReadSize, a few hundred entries a
// read. The buffer grows to hold a longer entry, up to logMaxEntry (a 16
// KiB piece escapes to at most 96 KiB). A follower that idles at its
// slowest poll lets its buffers go: a container at rest costs its
// goroutines and an open file.
const (
	logReadMin  = 8 << 10
	logReadSize = 64 << 10
	logMaxEntry = 1 << 20
)

// logSegment is one file of a container's log: a rotated generation, read
// to its end once, or the live file at the path.
type logSegment struct {
	name string
	f    *os.File  // the file on disk
	r    io.Reader // f, or a gzip reader over it
	c    io.Closer
	gz   bool
	live bool
	off  int64 // how far f was read (not for gz)
}

// liveSegment is the file at the log's path.
func liveSegment(path string, f *os.File) *logSegment {
	return &logSegment{name: path, f: f, r: f, c: f, live: true}
}

func (g *logSegment) close() {
	if g.c != nil {
		g.c.Close()
	}
}

// openLog opens a container's log for reading after since (0: from the
// start): the live file, preceded by the rotated generations that may hold
// lines after since, oldest first. The first one read starts near since
// by a binary search; the parser skips what is at or before since.
func openLog(path string, since int64) ([]*logSegment, error) {
	live, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	segs := []*logSegment{liveSegment(path, live)}
	if liveFirst := firstTime(live); since == 0 || liveFirst > since {
		// Older generations may hold lines after since: those that start
		// after it, and the newest one that starts at or before it.
		segs = append(openGenerations(path, since, liveFirst, true), segs...)
	}
	if first := segs[0]; !first.gz && since > 0 {
		off, err := seekBefore(first.f, since)
		if err != nil {
			closeAll(segs)
			return nil, err
		}
		first.off = off
	}
	return segs, nil
}

func closeAll(segs []*logSegment) {
	for _, g := range segs {
		g.close()
	}
}

// generation is a rotated file of a log and the time of its first entry.
type generation struct {
	*logSegment
	first int64
}

// openGenerations opens the rotated generations of a log (path.N, and
// path.N.gz with compress) that start after after and before before (the
// live file opened already, which a rotation meanwhile may have made a
// generation), oldest first; with containing, also the newest one that
// starts at or before after. They are
// ordered by their first entry, not by name: the Engine renames them all
// at each rotation, and a listing taken meanwhile may see a name twice or
// miss one, so the directory is listed until a listing finds nothing new,
// and files are told apart by identity. While the Engine compresses a generation, both its plain file
// and the growing .gz exist: the plain one is read.
func openGenerations(path string, after, before int64, containing bool) []*logSegment {
	dir, base := filepath.Split(path)
	var gens []generation
	seen := map[string]bool{}
	// A pass that opens every name it lists and finds nothing new saw the
	// generations between two rotations.
	for pass := 0; pass < 20; pass++ {
		entries, err := os.ReadDir(dir)
		if err != nil {
			break
		}
		clean := pass > 0
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), base+".")
			if !ok {
				continue
			}
			num, gz := strings.CutSuffix(name, ".gz")
			if _, err := strconv.Atoi(num); err != nil {
				continue
			}
			g := openGeneration(filepath.Join(dir, e.Name()), gz)
			if g.logSegment == nil {
				clean = false // renamed away meanwhile
				continue
			}
			if id := g.identity(); seen[id] {
				g.close()
				continue
			} else {
				seen[id] = true
			}
			clean = false
			gens = append(gens, g)
		}
		if clean {
			break
		}
	}
	// Oldest first; of a plain file and its .gz, the plain one first.
	sort.SliceStable(gens, func(i, j int) bool {
		if gens[i].first != gens[j].first {
			return gens[i].first < gens[j].first
		}
		return !gens[i].gz && gens[j].gz
	})
	var out []*logSegment
	for i, g := range gens {
		dup := i > 0 && g.first == gens[i-1].first
		newestBefore := containing && g.first <= after && (i+1 == len(gens) || gens[i+1].first > after)
		if !dup && g.first < before && (g.first > after || newestBefore) {
			out = append(out, g.logSegment)
		} else {
			g.close()
		}
	}
	return out
}

// openGeneration opens one rotated file and reads the time of its first
// entry.
func openGeneration(name string, gz bool) generation {
	f, err := os.Open(name)
	if err != nil {
		return generation{}
	}
	if !gz {
		return generation{logSegment: &logSegment{name: name, f: f, r: f, c: f}, first: firstTime(f)}
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return generation{}
	}
	br := bufio.NewReaderSize(zr, 128<<10)
	head, _ := br.Peek(4096)
	if bytes.IndexByte(head, '\n') < 0 {
		head, _ = br.Peek(128 << 10)
	}
	return generation{logSegment: &logSegment{name: name, f: f, r: br, c: multiCloser{zr, f}, gz: true}, first: headTime(head)}
}

// identity tells files apart across renames.
func (g generation) identity() string {
	fi, err := g.f.Stat()
	if err != nil {
		return g.name
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return g.name
}

type multiCloser []io.Closer

func (m multiCloser) Close() error {
	for _, c := range m {
		c.Close()
	}
	return nil
}

// firstTime is the time of a file's first entry.
func firstTime(f *os.File) int64 {
	buf := make([]byte, 4096)
	n, _ := f.ReadAt(buf, 0)
	return headTime(buf[:n])
}

// headTime is the time of the first entry in head, or MaxInt64 when it
// holds none (an empty file is younger than any cursor).
func headTime(head []byte) int64 {
	if i := bytes.IndexByte(head, '\n'); i > 0 {
		if ts, ok := jsonLogTime(head[:i]); ok {
			return ts
		}
	}
	return 1<<63 - 1
}

// seekReorder is how far back from since the binary search lands: the
// Engine stamps a message when its copier reads it and writes it after,
// so entries of the two streams may be out of order by a little.
const seekReorder = 5 * time.Second

// seekBefore moves f to the start of a line at or before which every
// entry is older than since minus seekReorder, and returns its offset:
// lines between there and since are read and skipped by the parser.
func seekBefore(f *os.File, since int64) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	target := since - int64(seekReorder)
	lo, hi := int64(0), fi.Size() // the answer is a line start in [lo, hi]
	buf := make([]byte, 64<<10)
	for hi-lo > 1<<20 {
		mid := lo + (hi-lo)/2
		n, _ := f.ReadAt(buf, mid)
		i := bytes.IndexByte(buf[:n], '\n')
		if i < 0 {
			break // a line longer than the buffer: stop narrowing
		}
		j := bytes.IndexByte(buf[i+1:n], '\n')
		if j < 0 {
			break
		}
		ts, ok := jsonLogTime(buf[i+1 : i+1+j])
		if !ok {
			break
		}
		if ts < target {
			lo = mid + int64(i) + 1
		} else {
			hi = mid
		}
	}
	_, err = f.Seek(lo, io.SeekStart)
	return lo, err
}

// logTail follows a container's json-file log into a parser. It runs on
// pump's reader goroutine.
type logTail struct {
	s    *Source
	t    *tracked
	p    *parser
	path string
	segs []*logSegment // segs[0] is being read; the last one is the live file
	tty  bool

	buf      []byte
	r, w     int
	slab     []byte
	skipping bool  // lines may still be at or before the resume cursor
	last     int64 // the time of the last entry read
}

// run reads until the container stopped and its log was read to the end
// (io.EOF), or the consumer stopped.
func (lt *logTail) run() error {
	defer func() { closeAll(lt.segs) }()
	lt.skipping = lt.p.since > 0
	poll := logFilePollMin
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	heldPasses := 0
	for {
		g := lt.segs[0]
		if lt.buf == nil {
			lt.buf = make([]byte, logReadMin)
		}
		n, err := g.r.Read(lt.buf[lt.w:])
		if lt.w+n == len(lt.buf) && len(lt.buf) < logReadSize {
			lt.buf = append(lt.buf, make([]byte, logReadSize-len(lt.buf))...)
		}
		if n > 0 {
			lt.w += n
			g.off += int64(n)
			if !lt.lines(g) {
				return errStopped
			}
			poll, heldPasses = logFilePollMin, 0
			continue
		}
		if err != nil && err != io.EOF {
			if g.live {
				return fmt.Errorf("reading %s: %w", g.name, err)
			}
			// A damaged rotated file (a compressed one cut short) would
			// fail every resume: what it held is skipped.
			lt.s.log.Warn("a rotated container log file cannot be read to its end; the rest of it is skipped",
				"source", lt.s.name, "id", lt.t.id, "file", g.name, "err", err)
		}
		// At the end of this file. A generation, or a live file that
		// was renamed away (and read to its end after that was seen), is
		// done: what is left of a line in it passes as malformed.
		if !g.live {
			if !lt.rest(g) {
				return errStopped
			}
			g.close()
			lt.segs = lt.segs[1:]
			for len(lt.segs) == 0 && !lt.successors() {
				// Between the rename and the new file, or the log is
				// gone with its container.
				if lt.t.stopped.Load() {
					lt.p.flushPartials()
					return io.EOF
				}
				if !lt.sleep(timer, 10*time.Millisecond) {
					return errStopped
				}
			}
			continue
		}
		if !lt.p.drained() {
			return errStopped
		}
		if moved, err := lt.rotatedAway(g); err != nil {
			return err
		} else if moved {
			// The Engine closed the file before renaming it: one more
			// read takes whatever it wrote since the last one.
			continue
		}
		if lt.t.stopped.Load() {
			// The Engine closed the log before the die event. A line
			// left open is the container's last words without their
			// newline: look again a few times, then send it as it is.
			if lt.p.openLines() && heldPasses < 3 {
				heldPasses++
				if !lt.sleep(timer, time.Duration(heldPasses)*100*time.Millisecond) {
					return errStopped
				}
				continue
			}
			if !lt.rest(g) {
				return errStopped
			}
			lt.p.flushPartials()
			return io.EOF
		}
		if poll == logFilePollMax && lt.buf != nil && lt.r == lt.w {
			lt.buf, lt.slab, lt.r, lt.w = nil, nil, 0, 0
			lt.p.trim()
		}
		if !lt.sleep(timer, poll) {
			return errStopped
		}
		poll = min(2*poll, logFilePollMax)
	}
}

// sleep waits d, or less when the container's state changed. false: the
// consumer stopped.
func (lt *logTail) sleep(timer *time.Timer, d time.Duration) bool {
	timer.Reset(d)
	select {
	case <-lt.p.ctx.Done():
		timer.Stop()
		return false
	case <-lt.t.wake:
		timer.Stop()
	case <-timer.C:
	}
	return true
}

// rotatedAway reports whether the path names another file than the live
// one being read, which is then read to its end before its successors. A
// live file truncated in place (max-file 1) is read again from its start.
func (lt *logTail) rotatedAway(g *logSegment) (bool, error) {
	fi, err := g.f.Stat()
	if err != nil {
		return false, err
	}
	if fi.Size() < g.off {
		lt.s.warn.Warn("truncated:"+lt.t.id, "container log was truncated (max-file 1 rotates by truncating); reading it again from its start",
			"source", lt.s.name, "id", lt.t.id, "file", g.name)
		if _, err := g.f.Seek(0, io.SeekStart); err != nil {
			return false, err
		}
		lt.r, lt.w, g.off = 0, 0, 0
		return false, nil
	}
	pfi, err := os.Stat(lt.path)
	if err != nil || os.SameFile(fi, pfi) {
		// The same file; or between the rename and the new file, or
		// removed with the container: the next look tells.
		return false, nil
	}
	g.live = false
	return true, nil
}

// successors opens what the Engine wrote after the file just read to its
// end was renamed away: the generations it rotated meanwhile (when vigil
// fell behind by more than one rotation), which start after the last entry
// read, oldest first, then the live file. false: there is no live file
// (yet).
func (lt *logTail) successors() bool {
	f, err := os.Open(lt.path)
	if err != nil {
		return false
	}
	segs := openGenerations(lt.path, max(lt.last, lt.p.since), firstTime(f), false)
	lt.segs = append(segs, liveSegment(lt.path, f))
	return true
}

// lines parses the complete lines buffered and keeps the rest at the start
// of the buffer. false: the consumer stopped.
func (lt *logTail) lines(g *logSegment) bool {
	for {
		i := bytes.IndexByte(lt.buf[lt.r:lt.w], '\n')
		if i < 0 {
			break
		}
		if !lt.entry(g, lt.buf[lt.r:lt.r+i]) {
			return false
		}
		lt.r += i + 1
	}
	if lt.r == 0 && lt.w == len(lt.buf) && len(lt.buf) < logMaxEntry {
		lt.buf = append(lt.buf, make([]byte, len(lt.buf))...)
		return true
	}
	if lt.r == 0 && lt.w == len(lt.buf) {
		// No newline in logMaxEntry bytes: no entry is that long. It
		// passes as malformed, in pieces of the buffer's size.
		if !lt.entry(g, lt.buf[:lt.w]) {
			return false
		}
		lt.r = lt.w
	}
	lt.w = copy(lt.buf, lt.buf[lt.r:lt.w])
	lt.r = 0
	return true
}

// rest passes what is left of a line at the end of a file that is done.
func (lt *logTail) rest(g *logSegment) bool {
	if lt.w == lt.r {
		return true
	}
	ok := lt.entry(g, lt.buf[lt.r:lt.w])
	lt.r, lt.w = 0, 0
	return ok
}

// entry decodes one line of the log into the parser. A line that is no
// log entry (a crash cut it, the file was edited) is passed on as it is,
// on stdout at the time of the entry before it, and counted.
func (lt *logTail) entry(g *logSegment, b []byte) bool {
	if lt.skipping {
		if ts, ok := jsonLogTime(b); ok && ts <= lt.p.since {
			return true
		}
		lt.skipping = false
	}
	if len(b) > cap(lt.slab)-len(lt.slab) {
		// Sized like the read buffer: a quiet log's lines do not each
		// hold a busy log's slab.
		lt.slab = make([]byte, 0, max(min(slabSize, 2*len(lt.buf)), len(b)+1))
	}
	stream, ts, text, slab, err := decodeJSONLog(b, lt.slab)
	if err != nil {
		lt.s.malformed.Inc()
		lt.s.warn.Warn("malformed:"+lt.t.id, "a line of a container's json-file log is no log entry; it is passed on as it is",
			"source", lt.s.name, "id", lt.t.id, "file", g.name)
		start := len(lt.slab)
		lt.slab = append(append(lt.slab, b...), '\n')
		ts := lt.last // keeps the entries of the stream in order
		if ts == 0 {
			ts = time.Now().UnixNano()
		}
		return lt.p.piece(streamStdout, ts, 0, lt.slab[start:len(lt.slab):len(lt.slab)], false)
	}
	lt.slab, lt.last = slab, ts
	if n := len(text); lt.tty && n >= 2 && text[n-2] == '\r' && text[n-1] == '\n' {
		// A TTY writes CRLF; the CR is no part of the line.
		text[n-2] = '\n'
		text = text[:n-1]
	}
	return lt.p.piece(stream, ts, 0, text, true)
}

// followFile follows the container through its log file until it stopped
// and the file was read to its end. ok is false when the file cannot be
// opened: the caller reads through the API.
func (s *Source) followFile(ctx context.Context, out pipeline.Output, t *tracked, path string) (n int, ok bool, err error) {
	since := t.resumeFrom()
	segs, err := openLog(path, since)
	for try := 0; errors.Is(err, fs.ErrNotExist) && try < 10 && !t.stopped.Load(); try++ {
		// The Engine may be between renaming the log and creating the
		// next one.
		time.Sleep(10 * time.Millisecond)
		segs, err = openLog(path, since)
	}
	if err != nil {
		return 0, false, err
	}
	p := s.newParser(t, since)
	lt := &logTail{s: s, t: t, p: p, path: path, segs: segs, tty: t.meta.Load().tty}
	n, err = s.pump(ctx, out, t, p, lt.run, func() {})
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, true, err
}

// logPath is where vigil reads a container's json-file log, or "" when it
// reads through the API.
func (s *Source) logPath(driver, enginePath, id string) string {
	if driver != "json-file" || enginePath == "" || !s.cfg.logFiles {
		return ""
	}
	if s.cfg.containersPath != "" {
		return filepath.Join(s.cfg.containersPath, id, filepath.Base(enginePath))
	}
	if !s.cfg.localEngine {
		return ""
	}
	return enginePath
}
