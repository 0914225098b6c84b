package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/client"

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

// follow streams the container's log until the stream ends (the container
// stopped) and no start came in meanwhile.
func (s *Source) follow(ctx context.Context, cli *client.Client, out pipeline.Output, t *tracked) {
	for {
		n, err := s.stream(ctx, cli, out, t)
		if ctx.Err() != nil {
			return
		}
		if err == nil && n > 0 {
			// Engines before 23.0 may end a follow as the container stops
			// before every line was sent; read again until a pass brings
			// nothing new.
			continue
		}
		if err != nil {
			s.warn.Warn("logs", "reading container logs failed; it is retried on the next refresh or start",
				"source", s.name, "id", t.id, "err", err)
		}
		s.mu.Lock()
		if t.again {
			t.again = false
			s.mu.Unlock()
			continue
		}
		t.following = false
		s.mu.Unlock()
		return
	}
}

// stream reads one logs request. Lines at or before the resume cursor were
// delivered already (the Engine's since is inclusive) and are skipped.
// It returns the number of lines emitted.
func (s *Source) stream(ctx context.Context, cli *client.Client, out pipeline.Output, t *tracked) (int, error) {
	since := t.read
	if since == 0 {
		since = t.ck.load()
	}
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true}
	if since > 0 {
		opts.Since = fmt.Sprintf("%d.%09d", since/1e9, since%1e9)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := cli.ContainerLogs(ctx, t.id, opts)
	if err != nil {
		return 0, fmt.Errorf("opening logs of %s: %w", t.id, err)
	}
	defer rc.Close()

	lines := make(chan line, 64)
	errc := make(chan error, 1)
	p := &parser{maxLine: s.cfg.maxLine, since: since, emit: func(l line) bool {
		select {
		case lines <- l:
			return true
		case <-ctx.Done():
			return false
		}
	}, truncated: s.truncated.Inc}
	go func() {
		defer close(lines)
		if t.meta.Load().tty {
			errc <- p.readRaw(rc)
		} else {
			errc <- p.readMux(rc)
		}
	}()
	n, err := s.batch(ctx, out, t, lines)
	if err != nil {
		// ctx ended: nothing more is taken. Unblock the reader and wait
		// for it, so no goroutine outlives Run.
		cancel()
		rc.Close()
		<-errc
		return n, nil
	}
	if err := <-errc; err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
		return n, err
	}
	return n, nil
}

// batch groups lines into batches of up to batchLines lines or batchBytes
// bytes, or what arrived within batchWait of a batch's first line.
func (s *Source) batch(ctx context.Context, out pipeline.Output, t *tracked, lines <-chan line) (emitted int, _ error) {
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
		var l line
		var ok bool
		select {
		case l, ok = <-lines:
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
		if b == nil {
			r := &settleRef{ck: t.ck}
			ref = r
			b = pipeline.NewBatch(min(s.cfg.batchLines, 64), func() { r.ck.settle(r.p) })
			timer.Reset(s.cfg.batchWait)
			wait = timer.C
		}
		md := t.meta.Load()
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
	maxLine   int
	since     int64 // messages at or before it are skipped
	emit      func(line) bool
	truncated func()

	partial [3]partialLine // per stream
}

type partialLine struct {
	active bool
	first  int64 // the first piece's timestamp: the line's time
	last   int64 // the latest piece's timestamp
	buf    []byte
	trunc  bool
}

var errStopped = errors.New("consumer stopped")

// readMux reads stdcopy frames: an 8-byte header (stream, 3 zero bytes,
// big-endian payload size) and the payload, one log message per frame.
func (p *parser) readMux(r io.Reader) error {
	br := bufio.NewReaderSize(r, 32<<10)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.ErrUnexpectedEOF {
				return fmt.Errorf("truncated frame header: %w", err)
			}
			if err == io.EOF {
				p.flushPartials()
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
		msg := make([]byte, n)
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
	br := bufio.NewReaderSize(r, 64<<10)
	var acc []byte
	for {
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
				p.flushPartials()
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
		ts = time.Now().UnixNano()
	} else if max(ts, last) <= p.since {
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
	t, err := time.Parse(time.RFC3339Nano, string(msg[:i]))
	if err != nil {
		return 0, msg
	}
	return t.UnixNano(), msg[i+1:]
}
