package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/vigilhq/vigil/internal/engineapi"
	"github.com/vigilhq/vigil/pipeline"
)

// Stream numbers of the Engine's multiplexed log stream (stdcopy).
const (
	streamStdout = 1
	streamStderr = 2
)

// line is one complete log line read from a container.
type line struct {
	time   int64 // the first chunk's timestamp
	cursor int64 // where a resume may start after this line is delivered
	stream byte
	data   []byte
}

// follow reads the container's log until it stopped and no start came in
// meanwhile: from its log file when vigil can read it, else through the
// Engine API.
func (s *Source) follow(ctx context.Context, cli *engineapi.Client, out pipeline.Output, t *tracked) {
	final, heldPasses := false, 0
	for {
		if path := t.meta.Load().logPath; path != "" && !s.filesDenied.Load() {
			_, ok, err := s.followFile(ctx, out, t, path)
			if ctx.Err() != nil {
				return
			}
			if ok {
				if err != nil {
					s.warn.Warn("logfile:"+t.id, "reading a container's log file failed; it is read again on the next start",
						"source", s.name, "id", t.id, "file", path, "err", err)
				}
				if s.finish(t) {
					return
				}
				continue
			}
			if errors.Is(err, fs.ErrPermission) {
				// Not one container's problem: say it once, and read
				// every log through the API from now on.
				if !s.filesDenied.Swap(true) {
					s.log.Warn("cannot read the containers' log files; reading every log through the Docker API, which costs more CPU. "+
						"Give vigil read access to the Engine's containers directory (root, or CAP_DAC_READ_SEARCH), or set read_log_files: false",
						"source", s.name, "err", err)
				}
			} else {
				s.warn.Warn("logfile:"+t.id, "cannot open a container's log file; reading it through the Docker API",
					"source", s.name, "id", t.id, "err", err)
			}
		}
		n, held, err := s.stream(ctx, cli, out, t, final)
		if ctx.Err() != nil {
			return
		}
		if err == nil && n > 0 {
			// Engines before 23.0 may end a follow as the container stops
			// before every line was sent; read again until a pass brings
			// nothing new.
			final, heldPasses = false, 0
			continue
		}
		if err == nil && held && !final {
			// The stream ended inside a split line and a re-read brought
			// nothing new. The Engine's log copier may still be writing
			// the line's last pieces after the container stopped: read
			// again a few times, spaced out, before a last pass sends the
			// open line as it is (the container stopped while writing it).
			heldPasses++
			final = heldPasses >= 3
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(heldPasses) * 100 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			s.warn.Warn("logs", "reading container logs failed; it is retried on the next refresh or start",
				"source", s.name, "id", t.id, "err", err)
		}
		if s.finish(t) {
			return
		}
	}
}

// finish ends a follower unless the container started again while it
// read; then it reads on.
func (s *Source) finish(t *tracked) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.again {
		t.again = false
		return false
	}
	t.following = false
	return true
}

// stream reads one logs request. Lines at or before the resume cursor were
// delivered already (the Engine's since is inclusive) and are skipped.
// It returns the number of lines emitted, and whether the stream ended
// inside a split line, which is then held back (read again from its first
// piece by the next pass) unless final is set.
func (s *Source) stream(ctx context.Context, cli *engineapi.Client, out pipeline.Output, t *tracked, final bool) (int, bool, error) {
	since := t.resumeFrom()
	opts := engineapi.LogsOptions{Stdout: true, Stderr: true, Follow: true, Timestamps: true}
	if since > 0 {
		opts.Since = time.Unix(0, since)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := cli.ContainerLogs(ctx, t.id, opts)
	if err != nil {
		return 0, false, fmt.Errorf("opening logs of %s: %w", t.id, err)
	}
	defer rc.Close()
	p := s.newParser(t, since)
	p.flushAtEOF = final
	tty := t.meta.Load().tty
	n, err := s.pump(ctx, out, t, p, func() error {
		if tty {
			return p.readRaw(rc)
		}
		return p.readMux(rc)
	}, func() { rc.Close() })
	if err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
		return n, false, err
	}
	return n, p.held, nil
}

// resumeFrom is the cursor a new read of the container starts after: the
// last line handed to Emit in this process, else the saved checkpoint.
func (t *tracked) resumeFrom() int64 {
	if t.read != 0 {
		return t.read
	}
	return t.ck.load()
}

func (s *Source) newParser(t *tracked, since int64) *parser {
	return &parser{maxLine: s.cfg.maxLine, since: since, done: t.done, truncated: s.truncated.Inc}
}

// pump runs read (which feeds p) on a goroutine of its own and batches
// what it parses into out, until read returns or ctx ends; unblock makes a
// read blocked in a system call return. It returns the lines emitted and
// read's error; when ctx ended, the error is nil and nothing more was
// emitted.
//
// Lines cross to the batching goroutine in chunks, not one by one: a
// channel operation per line cost more than parsing the line. A chunk is
// handed over when it is full or when the reader has nothing more buffered
// (its next read may block), so a quiet container's line is not held
// back. Chunk arrays go back through free and are reused.
func (s *Source) pump(ctx context.Context, out pipeline.Output, t *tracked, p *parser, read func() error, unblock func()) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []line, 2)
	free := make(chan []line, 3)
	var cur []line
	send := func() bool {
		if len(cur) == 0 {
			return true
		}
		select {
		case chunks <- cur:
		case <-ctx.Done():
			return false
		}
		cur = nil
		return true
	}
	p.emit = func(l line) bool {
		if cur == nil {
			select {
			case cur = <-free:
			default:
				cur = make([]line, 0, chunkLines)
			}
		}
		cur = append(cur, l)
		return len(cur) < chunkLines || send()
	}
	p.idle = send
	p.trim = func() {
		for {
			select {
			case <-free:
			default:
				return
			}
		}
	}
	p.ctx = ctx
	errc := make(chan error, 1)
	go func() {
		defer close(chunks)
		err := read()
		if !send() && err == nil {
			err = errStopped
		}
		errc <- err
	}()
	n, err := s.batch(ctx, out, t, chunks, free)
	if err != nil {
		// ctx ended: nothing more is taken. Unblock the reader and wait
		// for it, so no goroutine outlives Run.
		cancel()
		unblock()
		<-errc
		return n, nil
	}
	rerr := <-errc
	// Every line the parser emitted is in a batch handed to Emit now.
	t.done = p.done
	return n, rerr
}

// chunkLines is the most lines the reader hands over at once.
const chunkLines = 256

// batch groups lines into batches of up to batchLines lines or batchBytes
// bytes, or what arrived within batchWait of a batch's first line. Chunk
// arrays are returned on free once their lines are in a batch.
func (s *Source) batch(ctx context.Context, out pipeline.Output, t *tracked, chunks <-chan []line, free chan<- []line) (emitted int, _ error) {
	var (
		b      *pipeline.Batch
		ref    *settleRef
		size   int
		cursor int64
		timer  = time.NewTimer(time.Hour)
		wait   <-chan time.Time
	)
	timer.Stop()
	defer timer.Stop()
	flush := func() error {
		if b == nil {
			return nil
		}
		// The pending record is made only now, in emit order, once the
		// batch's last cursor is known; the batch cannot settle before
		// Emit takes it.
		ref.p = t.ck.add(cursor)
		n := len(b.Entries)
		err := out.Emit(ctx, b)
		b, ref, size, wait = nil, nil, 0, nil
		if err != nil {
			return err
		}
		t.read = cursor
		emitted += n
		return nil
	}
	for {
		var chunk []line
		var ok bool
		select {
		case chunk, ok = <-chunks:
		case <-wait:
			if err := flush(); err != nil {
				return emitted, err
			}
			continue
		case <-ctx.Done():
			return emitted, ctx.Err()
		}
		if !ok {
			return emitted, flush()
		}
		md := t.meta.Load()
		for _, l := range chunk {
			if b == nil {
				r := &settleRef{ck: t.ck}
				ref = r
				// A busy container fills its batches: start with a
				// full-size (pooled) entry array rather than growing one.
				capacity := min(s.cfg.batchLines, 64)
				if len(chunk) >= 64 {
					capacity = s.cfg.batchLines
				}
				b = pipeline.NewBatch(capacity, func() { r.ck.settle(r.p) })
				timer.Reset(s.cfg.batchWait)
				wait = timer.C
			}
			if ls, keep := md.labelsFor(l.stream); keep {
				b.Entries = append(b.Entries, pipeline.Entry{Time: l.time, Line: l.data, Labels: ls, Tenant: md.tenant})
			}
			size += len(l.data)
			cursor = max(cursor, l.cursor)
			if len(b.Entries) >= s.cfg.batchLines || size >= s.cfg.batchBytes {
				timer.Stop()
				if err := flush(); err != nil {
					return emitted, err
				}
			}
		}
		clear(chunk) // drop the line data: the batches own it now
		select {
		case free <- chunk[:0]:
		default:
		}
	}
}

// settleRef ties a batch to the pending record made when it is emitted.
type settleRef struct {
	ck *checkpoint
	p  *pending
}

// parser turns the Engine's log stream into lines: it demultiplexes
// stdcopy frames (or reads a TTY container's raw stream), strips the
// timestamp each message starts with, and joins the 16 KiB pieces Docker
// splits long lines into (a piece without a trailing newline continues).
type parser struct {
	ctx       context.Context // ends when the consumer stops; nil: never
	maxLine   int
	since     int64 // messages at or before it are skipped
	emit      func(line) bool
	truncated func()
	// idle, when set, runs before a read that may block because nothing
	// more is buffered; false stops the reader. trim, when set, lets the
	// chunk arrays kept for reuse go, for a reader that rests.
	idle func() bool
	trim func()
	// flushAtEOF sends lines left open when the stream ends; otherwise
	// they are dropped from this pass and held reports them.
	flushAtEOF  bool
	held        bool
	lastDrain   time.Time
	read        int64 // bytes read from the stream
	readAtDrain int64

	partial [3]partialLine // per stream
	// done is, per stream, the end (last piece's time) of the last line
	// emitted, by this parser or an earlier pass: pieces at or before it
	// belong to lines already sent.
	done [3]int64
}

type partialLine struct {
	active bool
	first  int64 // the first piece's timestamp: the line's time
	last   int64 // the latest piece's timestamp
	buf    []byte
	trunc  bool
}

var errStopped = errors.New("consumer stopped")

// slabSize is the size of the blocks messages are read into. A message
// becomes an entry's line without a copy, so a block is shared by the
// lines of a few batches and freed with the last of them: one allocation
// per few hundred lines instead of one per line.
const slabSize = 64 << 10

// readMux reads stdcopy frames: an 8-byte header (stream, 3 zero bytes,
// big-endian payload size) and the payload, one log message per frame.
func (p *parser) readMux(r io.Reader) error {
	br := bufio.NewReaderSize(p.measure(r), 32<<10)
	var hdr [8]byte
	var slab []byte
	for {
		if br.Buffered() == 0 && !p.drained() {
			return errStopped
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.ErrUnexpectedEOF {
				return fmt.Errorf("truncated frame header: %w", err)
			}
			if err == io.EOF {
				p.endOfStream()
			}
			return err
		}
		stream := hdr[0]
		n := int(binary.BigEndian.Uint32(hdr[4:]))
		if stream != streamStdout && stream != streamStderr {
			if stream == 3 { // the Engine reports an error in-band
				msg := make([]byte, n)
				_, _ = io.ReadFull(br, msg)
				return fmt.Errorf("docker engine: %s", bytes.TrimSpace(msg))
			}
			if _, err := br.Discard(n); err != nil {
				return err
			}
			continue
		}
		if n > cap(slab)-len(slab) {
			slab = make([]byte, 0, max(slabSize, n))
		}
		start := len(slab)
		slab = slab[:start+n]
		// The full slice expression keeps a later message from being
		// appended into this one.
		msg := slab[start : start+n : start+n]
		if _, err := io.ReadFull(br, msg); err != nil {
			return fmt.Errorf("truncated frame: %w", err)
		}
		if !p.message(stream, msg) {
			return errStopped
		}
	}
}

// readRaw reads a TTY container's stream: no frames, one message a line.
func (p *parser) readRaw(r io.Reader) error {
	br := bufio.NewReaderSize(p.measure(r), 64<<10)
	var acc []byte
	for {
		if br.Buffered() == 0 && !p.drained() {
			return errStopped
		}
		frag, err := br.ReadSlice('\n')
		// Keep a bounded line; message truncates it to maxLine and counts.
		if room := p.maxLine + 64 + 2*dockerPieceSize - len(acc); len(frag) <= room {
			acc = append(acc, frag...)
		} else if room > 0 {
			acc = append(acc, frag[:room]...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if len(acc) > 0 {
			msg := acc
			acc = nil
			if msg[len(msg)-1] == '\n' {
				// A TTY writes CRLF; the CR is no part of the line.
				msg = append(bytes.TrimSuffix(msg[:len(msg)-1], []byte("\r")), '\n')
			}
			joined, last := joinRawPieces(msg)
			if !p.messageAt(streamStdout, joined, last) {
				return errStopped
			}
		}
		if err != nil {
			if err == io.EOF {
				p.endOfStream()
			}
			return err
		}
	}
}

// dockerPieceSize is the size of the pieces Docker's log copier splits a
// long line into.
const dockerPieceSize = 16 << 10

// joinRawPieces removes the timestamps of continuation pieces from a raw
// (TTY) message. Raw streams have no frames, so a split line arrives as
// "<ts> <16 KiB piece><ts> <next piece>...\n"; a timestamp exactly one
// piece into the text marks a continuation.
func joinRawPieces(msg []byte) (joined []byte, last int64) {
	i := bytes.IndexByte(msg, ' ')
	if i < 0 {
		return msg, 0
	}
	var out []byte
	head, text := msg[:i+1], msg[i+1:]
	for len(text) > dockerPieceSize {
		ts, rest := splitTimestamp(text[dockerPieceSize:])
		if ts == 0 {
			break
		}
		if out == nil {
			out = make([]byte, 0, len(msg))
			out = append(out, head...)
		}
		out = append(out, text[:dockerPieceSize]...)
		text, last = rest, ts
	}
	if out == nil {
		return msg, 0
	}
	return append(out, text...), last
}

// message handles one message: "<RFC3339Nano> <text>", with a trailing
// newline unless Docker split the line and more pieces follow.
func (p *parser) message(stream byte, msg []byte) bool { return p.messageAt(stream, msg, 0) }

// messageAt is message for a raw message that holds joined pieces, the
// last of which was written at last (0: there is one piece).
func (p *parser) messageAt(stream byte, msg []byte, last int64) bool {
	ts, text := splitTimestamp(msg)
	if ts == 0 {
		return p.piece(stream, time.Now().UnixNano(), last, text, false)
	}
	return p.piece(stream, ts, last, text, true)
}

// piece handles one piece of a line, written at ts (last: the time of the
// last of several pieces joined already, else 0), with a trailing newline
// if it ends its line. With check, pieces at or before the resume cursor,
// or before the end of the last line sent of their stream, were delivered
// already and are skipped; without, ts is made up (the message had none)
// and moves no cursor.
func (p *parser) piece(stream byte, ts, last int64, text []byte, check bool) bool {
	if check && (max(ts, last) <= p.since || (stream < 3 && ts <= p.done[stream])) {
		return true
	}
	end := max(ts, last)
	complete := len(text) > 0 && text[len(text)-1] == '\n'
	if complete {
		text = text[:len(text)-1]
	}
	pl := &p.partial[stream]
	if !pl.active && complete {
		if len(text) > p.maxLine {
			text = text[:p.maxLine]
			p.truncated()
		}
		if !check {
			// A time vigil made up is no place in the log to resume
			// from: the cursor stays.
			return p.emit(line{time: ts, stream: stream, data: text})
		}
		p.done[stream] = end
		return p.emit(line{time: ts, cursor: p.cursor(stream, end), stream: stream, data: text})
	}
	if !pl.active {
		pl.active, pl.first, pl.trunc = true, ts, false
		pl.buf = make([]byte, 0, min(p.maxLine, 2*len(text)+64))
	}
	if room := p.maxLine - len(pl.buf); len(text) > room {
		text = text[:max(room, 0)]
		pl.trunc = true
	}
	pl.buf = append(pl.buf, text...)
	pl.last = end
	if !complete {
		return true
	}
	return p.emitPartial(stream, end)
}

func (p *parser) emitPartial(stream byte, last int64) bool {
	pl := &p.partial[stream]
	if pl.trunc {
		p.truncated()
	}
	l := line{time: pl.first, stream: stream, data: pl.buf}
	*pl = partialLine{}
	p.done[stream] = last
	l.cursor = p.cursor(stream, last)
	return p.emit(l)
}

// cursor is where a resume may start once a line ending at ts is
// delivered: not past the first piece of a line the other stream still
// holds open, or that line's start would be skipped on resume.
func (p *parser) cursor(stream byte, ts int64) int64 {
	for s := range p.partial {
		if pl := &p.partial[s]; byte(s) != stream && pl.active && pl.first-1 < ts {
			ts = pl.first - 1
		}
	}
	return ts
}

// coalesceWait is how long a reader that caught up with a trickling
// stream waits before reading again. The Engine writes every message as
// its own HTTP chunk, so a reader that keeps up wakes once per line;
// waiting a moment lets the lines of a stream that trickles fast gather in
// the socket, to be read with one system call and handed over as one
// chunk. A stream trickles when it caught up again soon after the last
// time, having read little meanwhile; a stream with a backlog reads much
// between catch-ups and never waits, and a quiet one (a line now and
// then) reads at once.
const (
	coalesceWait  = time.Millisecond
	coalesceBelow = 16 << 10 // less than this read since the last catch-up is little
)

// drained runs when everything read so far is parsed and the next read may
// block: it hands over what was parsed (idle) and, on a stream that
// trickles, waits a little. false stops the reader.
func (p *parser) drained() bool {
	if p.idle == nil {
		return true
	}
	if !p.idle() {
		return false
	}
	now := time.Now()
	if p.read-p.readAtDrain < coalesceBelow && now.Sub(p.lastDrain) < coalesceWait {
		time.Sleep(coalesceWait)
		now = time.Now()
	}
	p.lastDrain, p.readAtDrain = now, p.read
	return true
}

// measure wraps the stream so drained knows how much was read.
func (p *parser) measure(r io.Reader) io.Reader { return readCounter{r: r, n: &p.read} }

type readCounter struct {
	r io.Reader
	n *int64
}

func (c readCounter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	*c.n += int64(n)
	return n, err
}

// endOfStream deals with lines left open when the stream ended. Engines
// before 23.0 may end a follow as the container stops before they sent a
// long line's last pieces, so an open line is not sent as it is: the next
// pass reads it again from its first piece (the cursor never moved past
// it). Only the final pass, after a re-read brought nothing new, sends it:
// the container stopped in the middle of writing it.
func (p *parser) endOfStream() {
	if p.flushAtEOF {
		p.flushPartials()
		return
	}
	for s := range p.partial {
		p.held = p.held || p.partial[s].active
	}
}

// openLines reports whether a stream holds a line open.
func (p *parser) openLines() bool {
	for s := range p.partial {
		if p.partial[s].active {
			return true
		}
	}
	return false
}

// flushPartials emits lines left open when the stream ended (the
// container stopped in the middle of writing one).
func (p *parser) flushPartials() {
	for s := range p.partial {
		if p.partial[s].active {
			if !p.emitPartial(byte(s), p.partial[s].last) {
				return
			}
		}
	}
}

// splitTimestamp splits the RFC3339Nano timestamp the Engine puts before
// each message. ts is 0 when the message has none.
func splitTimestamp(msg []byte) (ts int64, text []byte) {
	i := bytes.IndexByte(msg, ' ')
	if i < 20 || i > 40 {
		return 0, msg
	}
	if ts, ok := parseDockerTime(msg[:i]); ok {
		return ts, msg[i+1:]
	}
	t, err := time.Parse(time.RFC3339Nano, string(msg[:i]))
	if err != nil {
		return 0, msg
	}
	return t.UnixNano(), msg[i+1:]
}

// parseDockerTime parses the forms the Engine writes, RFC3339 in UTC with
// nine fraction digits ("2006-01-02T15:04:05.000000000Z") in the API's
// stream, and with trailing zeros of the fraction trimmed (RFC3339Nano) in
// json-file logs, without allocating; time.Parse cost more than the rest
// of a line's parsing. Anything else, and years outside 1970-2261 (where
// nanoseconds since the epoch fit in an int64), are left to time.Parse (ok
// is false), which also rejects what is invalid.
func parseDockerTime(b []byte) (ns int64, ok bool) {
	if len(b) < 20 || len(b) > 30 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' ||
		b[16] != ':' || b[len(b)-1] != 'Z' || len(b) > 20 && (b[19] != '.' || len(b) == 21) {
		return 0, false
	}
	num := func(b []byte) int64 {
		var v int64
		for _, c := range b {
			d := c - '0'
			if d > 9 {
				return -1
			}
			v = v*10 + int64(d)
		}
		return v
	}
	year, month, day := num(b[0:4]), num(b[5:7]), num(b[8:10])
	hour, minute, sec := num(b[11:13]), num(b[14:16]), num(b[17:19])
	var frac int64
	if len(b) > 20 {
		frac = num(b[20 : len(b)-1])
		for range 30 - len(b) { // scale the digits given to nanoseconds
			frac *= 10
		}
	}
	// num gives -1 for a non-digit; OR-ing keeps any negative.
	if year < 1970 || year > 2261 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 ||
		hour|minute|sec|frac < 0 {
		return 0, false
	}
	leap := year%4 == 0 && (year%100 != 0 || year%400 == 0)
	if day > int64(daysIn[month]) && !(month == 2 && day == 29 && leap) {
		return 0, false
	}
	// Days since the epoch of a proleptic Gregorian date (Howard
	// Hinnant's days_from_civil), for years counted from March.
	y := year
	if month <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	doy := (153*((month+9)%12)+2)/5 + day - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := era*146097 + doe - 719468
	return ((days*24+hour)*60+minute)*60*1e9 + sec*1e9 + frac, true
}

var daysIn = [13]int8{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
