package file

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// refSplit is the splitter's specification, written the obvious way:
// lines end at '\n', lose one trailing '\r', are cut to maxLine bytes, and
// a last line without a newline counts when flushed at the end.
func refSplit(data []byte, maxLine int) (lines []string, truncated int) {
	parts := bytes.Split(data, []byte("\n"))
	if last := parts[len(parts)-1]; len(last) == 0 {
		parts = parts[:len(parts)-1]
	}
	for _, p := range parts {
		p = bytes.TrimSuffix(p, []byte("\r"))
		if len(p) > maxLine {
			p = p[:maxLine]
			truncated++
		}
		lines = append(lines, string(p))
	}
	return lines, truncated
}

// feed runs data through a splitter in reads of the given sizes, as the
// tailer does, and checks the splitter's invariants on the way.
func feed(t testing.TB, data []byte, maxLine int, sizes func() int) (lines []string, truncated int) {
	const readMax = 8 << 10
	s := newSplitter(maxLine, 0)
	off := 0
	var held [][]byte // every line handed out, still pointing into the chunks
	collect := func(line []byte, trunc, ok bool) bool {
		if !ok {
			return false
		}
		if cap(line) != len(line) {
			t.Fatalf("line capacity %d > length %d: appending would overwrite the next line", cap(line), len(line))
		}
		if len(line) > maxLine {
			t.Fatalf("line of %d bytes exceeds maxLine %d", len(line), maxLine)
		}
		held = append(held, line)
		lines = append(lines, string(line))
		if trunc {
			truncated++
		}
		return true
	}
	for reads := 0; off < len(data); reads++ {
		if reads%3 == 2 {
			// As the tailer does when a pass reaches the end of the file.
			s.release()
		}
		buf := s.space(min(len(data)-off, readMax))
		n := copy(buf[:min(len(buf), sizes())], data[off:])
		off += n
		s.wrote(n)
		if s.readOffset() != int64(off) {
			t.Fatalf("readOffset %d, want %d", s.readOffset(), off)
		}
		for collect(s.next()) {
		}
		if s.done > s.pos || s.pos > s.readOffset() {
			t.Fatalf("offsets out of order: done %d pos %d read %d", s.done, s.pos, s.readOffset())
		}
		if limit := 2*(maxLine+2) + readMax + minRead; len(s.buf) > limit {
			t.Fatalf("chunk of %d bytes exceeds the bound %d", len(s.buf), limit)
		}
	}
	collect(s.flush(true))
	if s.done != int64(len(data)) || s.partial() {
		t.Fatalf("after the final flush done=%d partial=%v, want done=%d", s.done, s.partial(), len(data))
	}
	// Zero copy must not mean overwritten: every line still reads as it did.
	for i, l := range held {
		if string(l) != lines[i] {
			t.Fatalf("line %d changed after it was handed out: %q, was %q", i, l, lines[i])
		}
	}
	return lines, truncated
}

func TestSplitter(t *testing.T) {
	tests := []struct {
		name      string
		data      string
		maxLine   int
		chunk     int
		want      []string
		truncated int
	}{
		{"plain", "a\nbb\nccc\n", 10, 1 << 20, []string{"a", "bb", "ccc"}, 0},
		{"crlf", "a\r\nb\r\r\n\r\n", 10, 1 << 20, []string{"a", "b\r", ""}, 0},
		{"empty lines", "\n\nx\n", 10, 1, []string{"", "", "x"}, 0},
		{"last line flushed", "a\nlast", 10, 3, []string{"a", "last"}, 0},
		{"byte by byte", "hello\nworld\n", 10, 1, []string{"hello", "world"}, 0},
		{"exactly max", "12345\n", 5, 1, []string{"12345"}, 0},
		{"max plus cr", "12345\r\n", 5, 1, []string{"12345"}, 0},
		{"truncated complete", "1234567\nab\n", 5, 1 << 20, []string{"12345", "ab"}, 1},
		{"truncated early", "1234567890abcdef\nab\n", 5, 2, []string{"12345", "ab"}, 1},
		{"truncated at end", "ok\n1234567890", 5, 4, []string{"ok", "12345"}, 1},
		{"invalid utf8", "\xff\xfe\x00bad\n\xc3\x28\n", 10, 1 << 20, []string{"\xff\xfe\x00bad", "\xc3\x28"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, trunc := feed(t, []byte(tt.data), tt.maxLine, func() int { return tt.chunk })
			if !reflect.DeepEqual(got, tt.want) || trunc != tt.truncated {
				t.Errorf("got %q (%d truncated), want %q (%d)", got, trunc, tt.want, tt.truncated)
			}
			ref, refTrunc := refSplit([]byte(tt.data), tt.maxLine)
			if !reflect.DeepEqual(ref, tt.want) || refTrunc != tt.truncated {
				t.Errorf("reference disagrees with the table: %q (%d)", ref, refTrunc)
			}
		})
	}
}

// At the end of a pass the splitter keeps no chunk, or only a buffer the
// size of the incomplete line it holds; the lines handed out are untouched
// and the held line is completed by the next read.
func TestSplitterRelease(t *testing.T) {
	s := newSplitter(100, 0)
	read := func(data string) {
		t.Helper()
		buf := s.space(len(data))
		if len(buf) < len(data) {
			t.Fatalf("space %d for %d bytes", len(buf), len(data))
		}
		s.wrote(copy(buf, data))
	}
	var lines [][]byte
	next := func() {
		for {
			line, _, ok := s.next()
			if !ok {
				return
			}
			lines = append(lines, line)
		}
	}

	read(strings.Repeat("x", 50) + "\n" + strings.Repeat("y", 20000) + "\n")
	next()
	s.release()
	if s.buf != nil || s.partial() {
		t.Fatalf("nothing held, yet a chunk of %d bytes is kept", len(s.buf))
	}

	read(strings.Repeat("z", 30000) + "\nhead-of-a-line")
	next()
	big := len(s.buf)
	s.release()
	if !s.partial() || len(s.buf) >= big || len(s.buf) > len("head-of-a-line")+minRead {
		t.Fatalf("holding 14 bytes in a chunk of %d (was %d)", len(s.buf), big)
	}
	small := len(s.buf)
	s.release() // already small: kept as it is
	if len(s.buf) != small || !s.partial() {
		t.Fatalf("a small buffer was replaced: %d bytes, was %d", len(s.buf), small)
	}

	read("-and-its-tail\n")
	next()
	want := []string{strings.Repeat("x", 50), strings.Repeat("y", 100), strings.Repeat("z", 100), "head-of-a-line-and-its-tail"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d", len(lines), len(want))
	}
	for i := range want {
		if string(lines[i]) != want[i] {
			t.Errorf("line %d: %q, want %q", i, lines[i], want[i])
		}
	}
	if s.done != int64(50+1+20000+1+30000+1+len("head-of-a-line-and-its-tail")+1) {
		t.Errorf("done %d", s.done)
	}
}

// A very long line costs bounded memory: the chunk never grows with it.
func TestSplitterLongLineBounded(t *testing.T) {
	const maxLine = 1000
	data := []byte(strings.Repeat("x", 10<<20) + "\nnext\n")
	got, trunc := feed(t, data, maxLine, func() int { return 64 << 10 })
	if len(got) != 2 || got[0] != strings.Repeat("x", maxLine) || got[1] != "next" || trunc != 1 {
		t.Fatalf("got %d lines, first %d bytes, truncated %d", len(got), len(got[0]), trunc)
	}
}

func FuzzSplit(f *testing.F) {
	f.Add([]byte("a\nb\r\nc"), uint16(3), uint64(1))
	f.Add([]byte("\xff\xfe\n\r\r\n"), uint16(1), uint64(7))
	f.Fuzz(func(t *testing.T, data []byte, maxLine uint16, seed uint64) {
		ml := int(maxLine%300) + 1
		x := seed | 1
		sizes := func() int { // xorshift: any chunking must give the same lines
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			return int(x%5000) + 1
		}
		got, trunc := feed(t, data, ml, sizes)
		want, wantTrunc := refSplit(data, ml)
		if !reflect.DeepEqual(got, want) || trunc != wantTrunc {
			t.Fatalf("maxLine %d: got %q (%d truncated), want %q (%d)", ml, got, trunc, want, wantTrunc)
		}
	})
}
