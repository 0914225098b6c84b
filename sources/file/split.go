package file

import "bytes"

const (
	// minRead is the smallest read worth a syscall; a chunk with less
	// free space is replaced.
	minRead = 4 << 10
	// passBytes bounds one pass over a file, so files with a backlog take
	// turns at the workers.
	passBytes = 4 << 20
)

// splitter cuts the bytes of one file into lines without copying them.
//
// Reads go into buf[w:]; buf[r:w] is what has been read and not yet split
// (the start of a line whose newline has not arrived). Lines are handed
// out as sub-slices of buf, so every chunk is owned by the batches whose
// lines point into it and is never written again below w: when a chunk is
// full, the unsplit tail is copied into a fresh chunk and the old one is
// left to the garbage collector once those batches are done with it.
type splitter struct {
	maxLine int

	buf  []byte
	r, w int
	// pos is the file offset of buf[r].
	pos int64
	// done is the file offset up to which every byte belongs to a line
	// already handed out (or to the skipped rest of a truncated line whose
	// newline has been seen): a checkpoint may move up to here and no
	// further.
	done int64
	// skipping is set while the rest of a truncated line is discarded.
	skipping bool
}

func newSplitter(maxLine int, offset int64) splitter {
	return splitter{maxLine: maxLine, pos: offset, done: offset}
}

// readOffset is the file offset of the next byte to read.
func (s *splitter) readOffset() int64 { return s.pos + int64(s.w-s.r) }

// space returns where the next read goes: at least minRead bytes, and
// about want bytes when a new chunk is needed (want is how much the file
// has beyond the read offset, capped by the caller).
func (s *splitter) space(want int) []byte {
	want = max(want, minRead)
	free := len(s.buf) - s.w
	if free >= want || (free >= minRead && free*2 >= want) {
		return s.buf[s.w:]
	}
	carry := s.w - s.r
	size := carry + want
	// A line arriving in small pieces would otherwise be copied once per
	// piece; doubling keeps the copying linear in the line's length. The
	// splitter truncates a line before its carry exceeds maxLine+1, so a
	// chunk never grows beyond 2*maxLine plus one read.
	size = max(size, 2*carry)
	size = (size + minRead - 1) &^ (minRead - 1)
	nb := make([]byte, size)
	copy(nb, s.buf[s.r:s.w])
	s.buf, s.r, s.w = nb, 0, carry
	return s.buf[s.w:]
}

// wrote records n bytes read into the slice space returned.
func (s *splitter) wrote(n int) { s.w += n }

// next returns the next complete line, without its '\n' nor a '\r' before
// it, cut to maxLine bytes (truncated says so). A line longer than
// maxLine+1 bytes is returned, truncated, as soon as that much of it is
// read, and the rest of it is then skipped, so memory never grows with the
// length of a line. The returned slice has its capacity cut to its length:
// appending to it cannot overwrite the next line.
func (s *splitter) next() (line []byte, truncated, ok bool) {
	for {
		data := s.buf[s.r:s.w]
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if s.skipping {
				// Discard: reads reuse the space, nothing points there.
				s.pos += int64(len(data))
				s.w = s.r
				return nil, false, false
			}
			if len(data) > s.maxLine+1 {
				// The line is too long even if a '\r' ends it.
				line = data[:s.maxLine:s.maxLine]
				s.r += s.maxLine
				s.pos += int64(len(data))
				s.w = s.r
				s.skipping = true
				// done stays before the line: if the rest is never seen
				// settled, the whole line is read again rather than its
				// tail emitted as a line of its own.
				return line, true, true
			}
			return nil, false, false
		}
		s.r += i + 1
		s.pos += int64(i + 1)
		s.done = s.pos
		if s.skipping {
			s.skipping = false
			continue
		}
		line = data[:i:i]
		return s.cut(line)
	}
}

func (s *splitter) cut(line []byte) ([]byte, bool, bool) {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[: n-1 : n-1]
	}
	if len(line) > s.maxLine {
		return line[:s.maxLine:s.maxLine], true, true
	}
	return line, false, true
}

// partial reports whether an incomplete line is held.
func (s *splitter) partial() bool { return s.w > s.r && !s.skipping }

// flush hands out the held incomplete line as a line of its own. While the
// rest of a truncated line is skipped there is nothing to hand out; with
// final (the file is left for good), the skipped line counts as done.
func (s *splitter) flush(final bool) (line []byte, truncated, ok bool) {
	if s.skipping {
		if final {
			s.pos += int64(s.w - s.r)
			s.w = s.r
			s.done = s.pos
			s.skipping = false
		}
		return nil, false, false
	}
	if s.w == s.r {
		return nil, false, false
	}
	data := s.buf[s.r:s.w]
	s.r = s.w
	s.pos += int64(len(data))
	s.done = s.pos
	return s.cut(data[:len(data):len(data)])
}

// release lets the chunk go once a pass has read to the end of the file.
// What the chunk holds below r belongs to batches, which keep it alive
// until they settle; the splitter itself keeps nothing the next read could
// not allocate again, sized for what has arrived by then. Otherwise every
// file that was read once would pin its last chunk for as long as it stays
// quiet: with a thousand files that is most of the heap, and the
// collector's heap goal doubles it. A held incomplete line is moved to a
// buffer of its own size, unless the chunk is little more than that.
func (s *splitter) release() {
	carry := s.w - s.r
	if carry == 0 {
		s.buf, s.r, s.w = nil, 0, 0
		return
	}
	if len(s.buf) <= 2*carry+minRead {
		return
	}
	nb := make([]byte, carry+minRead)
	copy(nb, s.buf[s.r:s.w])
	s.buf, s.r, s.w = nb, 0, carry
}

// reset starts over at offset, in a fresh chunk (the old one may still be
// referenced by unsettled batches).
func (s *splitter) reset(offset int64) {
	*s = newSplitter(s.maxLine, offset)
}
