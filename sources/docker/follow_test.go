package docker

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// The fast timestamp path agrees with time.Parse on what the Engine
// writes, and leaves everything else to it: splitTimestamp behaves as if
// only time.Parse existed.
func TestParseDockerTime(t *testing.T) {
	slow := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0
		}
		return tm.UnixNano()
	}
	inputs := []string{
		"2024-02-29T23:59:59.999999999Z", // leap day
		"2000-02-29T00:00:00.000000000Z", // leap century
		"2100-02-29T00:00:00.000000000Z", // not a leap year
		"2023-02-29T00:00:00.000000000Z",
		"2023-04-31T00:00:00.000000000Z",
		"2023-12-31T23:59:59.999999999Z",
		"1970-01-01T00:00:00.000000000Z",
		"1969-12-31T23:59:59.999999999Z", // before the fast path's range
		"2261-12-31T23:59:59.999999999Z",
		"2262-01-01T00:00:00.000000000Z",
		"2023-13-01T00:00:00.000000000Z",
		"2023-00-01T00:00:00.000000000Z",
		"2023-01-00T00:00:00.000000000Z",
		"2023-01-01T24:00:00.000000000Z",
		"2023-01-01T23:60:00.000000000Z",
		"2023-01-01T23:59:60.000000000Z",
		"2023-01-01T2x:00:00.000000000Z",
		"2023-01-01T00:00:00.00000000xZ",
		"2023-01-01T00:00:00.123456Z",         // fewer digits: time.Parse
		"2023-01-01T00:00:00Z",                // none
		"2023-01-01T01:00:00.000000000+01:00", // an offset
		"2023-01-01 00:00:00.000000000Z",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		ns := rng.Int64N(292*365*24*3600*1e9) - 1e18 // from 1938 to 2230
		inputs = append(inputs, time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000Z07:00"))
	}
	for _, in := range inputs {
		got, text := splitTimestamp([]byte(in + " text"))
		want := slow(in)
		if got != want {
			t.Fatalf("%s: got %d, want %d", in, got, want)
		}
		if want != 0 && string(text) != "text" {
			t.Fatalf("%s: text %q", in, text)
		}
	}
}

// chunkReader returns one piece per Read, like a socket that has only
// what the Engine flushed so far.
type chunkReader struct{ pieces [][]byte }

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.pieces[0])
	if n == len(c.pieces[0]) {
		c.pieces = c.pieces[1:]
	} else {
		c.pieces[0] = c.pieces[0][n:]
	}
	return n, nil
}

// The reader hands over what it has before a read that may block: the
// idle hook runs once the buffered input is used up, after every line
// read so far was emitted.
func TestParserIdleBeforeBlocking(t *testing.T) {
	r := &chunkReader{pieces: [][]byte{
		frame(1, t0, "a\n"),
		bytes.Join([][]byte{frame(1, t0+1, "b\n"), frame(2, t0+2, "c\n")}, nil),
		frame(1, t0+3, "d\n"),
	}}
	var emitted []int
	n := 0
	p := &parser{maxLine: 100, truncated: func() {},
		emit: func(line) bool { n++; return true },
		idle: func() bool { emitted = append(emitted, n); return true }}
	if err := p.readMux(r); err != io.EOF {
		t.Fatal(err)
	}
	// Before the first read, after each of the three pieces.
	if want := []int{0, 1, 3, 4}; !equalInts(emitted, want) {
		t.Fatalf("lines emitted at each idle: %v, want %v", emitted, want)
	}
	p = &parser{maxLine: 100, truncated: func() {}, emit: func(line) bool { return true },
		idle: func() bool { return false }}
	if err := p.readMux(bytes.NewReader(frame(1, t0, "x\n"))); err != errStopped {
		t.Fatalf("an idle hook that stops gave %v", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Lines read into a shared block do not overlap: appending to one line
// never overwrites the next.
func TestParserLinesDoNotAlias(t *testing.T) {
	var in []byte
	for i := range 100 {
		in = append(in, frame(1, t0+int64(i), "line\n")...)
	}
	var got [][]byte
	p := &parser{maxLine: 100, truncated: func() {}, emit: func(l line) bool { got = append(got, l.data); return true }}
	if err := p.readMux(bytes.NewReader(in)); err != io.EOF {
		t.Fatal(err)
	}
	_ = append(got[0], "XXXX"...)
	if string(got[1]) != "line" {
		t.Fatalf("appending to a line changed the next: %q", got[1])
	}
}

func BenchmarkSplitTimestamp(b *testing.B) {
	msg := []byte(stamp(t0) + " GET /api/users/4821 HTTP/1.1 200\n")
	b.ReportAllocs()
	for b.Loop() {
		if ts, _ := splitTimestamp(msg); ts != t0 {
			b.Fatal(ts)
		}
	}
}
