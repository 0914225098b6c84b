package loki

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"

	"github.com/klauspost/compress/s2"

	"github.com/vigilhq/vigil/pipeline"
)

// encoder turns a batch into a snappy-compressed push request. Everything
// it allocates is kept for the next batch: encoders are pooled and a batch
// costs a handful of allocations, not a few per entry.
type encoder struct {
	index    map[uint64]int32 // label hash -> stream
	streamOf []int32          // per entry
	streams  []streamInfo
	order    []int32  // entry indexes, grouped by stream
	lines    []string // per entry, repaired when not valid UTF-8
	esize    []int32  // per entry, its encoded size
	proto    []byte
	out      []byte
}

type streamInfo struct {
	labels      pipeline.Labels
	str         string
	count       int
	last        int64
	unsorted    bool
	start, fill int // its run in order
	size        int // encoded Stream message
}

// Encoders are pooled for senders that go idle, but a busy sender keeps
// its own (tenantQueue.enc): sync.Pool keeps what is put back on the
// processor the goroutine last ran on, so a sender that moved to another
// one found the pool empty and made a new encoder, while the old one and
// its megabytes of buffers stayed in the pool. Two or three live encoders
// were a quarter of vigil's heap.
var encoderPool = sync.Pool{New: func() any { return &encoder{index: map[uint64]int32{}} }}

// encodersPut counts encoders returned to the pool, for tests.
var encodersPut atomic.Int64

func getEncoder() *encoder { return encoderPool.Get().(*encoder) }

// reset drops the references to the batch's lines, which stop being valid
// once the batch settles.
func (e *encoder) reset() {
	clear(e.lines[:cap(e.lines)])
	clear(e.streams[:cap(e.streams)])
	clear(e.index)
	// A one-off giant batch should not pin its buffers forever.
	if cap(e.proto) > 16<<20 {
		e.proto, e.out = nil, nil
	}
}

// put resets the encoder and returns it to the pool.
func (e *encoder) put() {
	e.reset()
	encodersPut.Add(1)
	encoderPool.Put(e)
}

// encode builds the push request for entries and returns its compressed
// body (valid until the encoder is put back) and the number of line bytes.
// The lines are referenced, not copied, so entries must stay valid until
// the body has been sent.
func (e *encoder) encode(entries []*pipeline.Entry, lc *labelCache) ([]byte, int, error) {
	e.streams = e.streams[:0]
	e.streamOf = slices.Grow(e.streamOf[:0], len(entries))[:len(entries)]

	// Pass 1: find each entry's stream. Consecutive entries of one source
	// usually share their label set, so a cheap comparison with the
	// previous entry avoids most hashing.
	var prev pipeline.Labels
	prevIdx := int32(-1)
	lineBytes := 0
	for i := range entries {
		en := entries[i]
		lineBytes += len(en.Line)
		si := prevIdx
		if si < 0 || !prev.Equal(en.Labels) {
			si = e.streamFor(en.Labels, lc)
			prev, prevIdx = en.Labels, si
		}
		e.streamOf[i] = si
		st := &e.streams[si]
		if st.count > 0 && en.Time < st.last {
			st.unsorted = true
		}
		st.count++
		st.last = en.Time
	}

	// Pass 2: a counting sort orders the entries by stream, keeping
	// arrival order within a stream; a stream that arrived out of time
	// order is then sorted stably, as Loki wants each stream in order.
	e.order = slices.Grow(e.order[:0], len(entries))[:len(entries)]
	e.lines = slices.Grow(e.lines[:0], len(entries))[:len(entries)]
	off := 0
	for si := range e.streams {
		st := &e.streams[si]
		st.start, st.fill = off, off
		off += st.count
	}
	for i := range entries {
		st := &e.streams[e.streamOf[i]]
		e.order[st.fill] = int32(i)
		st.fill++
		e.lines[i] = lineString(entries[i].Line)
	}
	for si := range e.streams {
		if st := &e.streams[si]; st.unsorted {
			slices.SortStableFunc(e.order[st.start:st.start+st.count], func(a, b int32) int {
				return cmp.Compare(entries[a].Time, entries[b].Time)
			})
		}
	}

	// Pass 3: the protobuf, written directly. The generated code would
	// need a push.Entry per entry, converting each timestamp to a
	// time.Time and back, and sizes every message several times over.
	e.esize = slices.Grow(e.esize[:0], len(entries))[:len(entries)]
	size := 0
	for si := range e.streams {
		st := &e.streams[si]
		n := fieldLen(len(st.str))
		for _, i := range e.order[st.start : st.start+st.count] {
			es := entrySize(entries[i], e.lines[i])
			e.esize[i] = int32(es)
			n += fieldLen(es)
		}
		st.size = n
		size += fieldLen(n)
	}
	buf := slices.Grow(e.proto[:0], size)
	for si := range e.streams {
		st := &e.streams[si]
		buf = appendTag(buf, 1, st.size)   // PushRequest.streams
		buf = appendString(buf, 1, st.str) // Stream.labels
		for _, i := range e.order[st.start : st.start+st.count] {
			buf = appendEntry(buf, entries[i], e.lines[i], int(e.esize[i]))
		}
	}
	if len(buf) != size {
		return nil, 0, fmt.Errorf("encoding push request: sized %d bytes, wrote %d", size, len(buf))
	}
	e.proto = buf
	raw := e.proto
	e.out = slices.Grow(e.out[:0], s2.MaxEncodedLen(len(raw)))
	// Snappy block format, as Loki expects. s2's fast Snappy-compatible
	// encoder, not snappy.Encode (which is s2's "better" level): on 1 MiB
	// of typical log lines it is 1.75x faster for a 7% larger body, and CPU
	// is what a small host runs short of (BenchmarkEncode).
	e.out = s2.EncodeSnappy(e.out[:cap(e.out)], raw)
	return e.out, lineBytes, nil
}

func (e *encoder) streamFor(ls pipeline.Labels, lc *labelCache) int32 {
	h := ls.Hash()
	if si, ok := e.index[h]; ok {
		if e.streams[si].labels.Equal(ls) {
			return si
		}
		// A 64-bit hash collision: correctness over speed.
		for i := range e.streams {
			if e.streams[i].labels.Equal(ls) {
				return int32(i)
			}
		}
	} else {
		e.index[h] = int32(len(e.streams))
	}
	e.streams = append(e.streams, streamInfo{labels: ls, str: lc.get(h, ls)})
	return int32(len(e.streams) - 1)
}

// lineString views the line as a string without copying: the entry stays
// valid until its batch settles, which is after the body is sent. A line
// with invalid UTF-8 would make Loki reject the whole push, so it is
// repaired, which copies; valid lines pay one scan.
func lineString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	s := unsafe.String(unsafe.SliceData(b), len(b))
	if utf8.Valid(b) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// The wire format of push.Entry: timestamp (google.protobuf.Timestamp)
// = 1, line = 2, structuredMetadata = 3 (each a LabelPairAdapter of
// name = 1, value = 2). Empty strings and zero numbers are left out, as
// proto3 leaves them out.

func fieldLen(n int) int { return 1 + uvarintLen(uint64(n)) + n }

func stringLen(s string) int {
	if s == "" {
		return 0
	}
	return fieldLen(len(s))
}

func timestampSize(ns int64) int {
	sec, nsec := ns/1e9, ns%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	n := 0
	if sec != 0 {
		n += 1 + uvarintLen(uint64(sec))
	}
	if nsec != 0 {
		n += 1 + uvarintLen(uint64(nsec))
	}
	return n
}

func entrySize(en *pipeline.Entry, line string) int {
	n := fieldLen(timestampSize(en.Time)) + stringLen(line)
	for _, l := range en.Metadata {
		n += fieldLen(stringLen(l.Name) + stringLen(validString(l.Value)))
	}
	return n
}

func appendTag(b []byte, field, n int) []byte {
	b = append(b, byte(field<<3|2))
	return binary.AppendUvarint(b, uint64(n))
}

func appendString(b []byte, field int, s string) []byte {
	if s == "" {
		return b
	}
	return append(appendTag(b, field, len(s)), s...)
}

func appendEntry(b []byte, en *pipeline.Entry, line string, size int) []byte {
	b = appendTag(b, 2, size) // Stream.entries
	sec, nsec := en.Time/1e9, en.Time%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	b = appendTag(b, 1, timestampSize(en.Time))
	if sec != 0 {
		b = binary.AppendUvarint(append(b, 1<<3), uint64(sec))
	}
	if nsec != 0 {
		b = binary.AppendUvarint(append(b, 2<<3), uint64(nsec))
	}
	b = appendString(b, 2, line)
	for _, l := range en.Metadata {
		v := validString(l.Value)
		b = appendTag(b, 3, stringLen(l.Name)+stringLen(v))
		b = appendString(b, 1, l.Name)
		b = appendString(b, 2, v)
	}
	return b
}

// validString repairs invalid UTF-8, which would make Loki reject the push.
func validString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// labelCache remembers the rendered stream selector of label sets seen
// before, with the external labels merged in. It belongs to one tenant's
// sender goroutine, so it needs no lock.
type labelCache struct {
	external pipeline.Labels
	m        map[uint64]cachedLabels
	buf      []byte
}

type cachedLabels struct {
	labels pipeline.Labels
	str    string
}

// maxCachedStreams bounds the cache; past it the cache starts over, which
// only costs re-rendering.
const maxCachedStreams = 1 << 16

func newLabelCache(external pipeline.Labels) *labelCache {
	return &labelCache{external: external, m: map[uint64]cachedLabels{}}
}

func (lc *labelCache) get(h uint64, ls pipeline.Labels) string {
	if c, ok := lc.m[h]; ok && c.labels.Equal(ls) {
		return c.str
	}
	str := lc.render(ls)
	if len(lc.m) >= maxCachedStreams {
		clear(lc.m)
	}
	// The label strings may alias memory of the batch (a processor may
	// slice them out of a line), so the cached copy owns its strings.
	own := make(pipeline.Labels, len(ls))
	for i, l := range ls {
		own[i] = pipeline.Label{Name: strings.Clone(l.Name), Value: strings.Clone(l.Value)}
	}
	lc.m[h] = cachedLabels{labels: own, str: str}
	return str
}

// render writes {a="1", b="2"} with the external labels merged in; the
// entry's own labels win on a clash, as in Promtail. Both inputs are
// sorted, so this is a merge. Empty values mean "no label", as in
// Prometheus.
func (lc *labelCache) render(ls pipeline.Labels) string {
	b := append(lc.buf[:0], '{')
	first := true
	add := func(l pipeline.Label) {
		if l.Value == "" {
			return
		}
		if !first {
			b = append(b, ", "...)
		}
		first = false
		b = append(b, l.Name...)
		b = append(b, '=')
		v := l.Value
		if !utf8.ValidString(v) {
			v = strings.ToValidUTF8(v, "\uFFFD")
		}
		b = strconv.AppendQuote(b, v)
	}
	ext := lc.external
	i, j := 0, 0
	for i < len(ext) || j < len(ls) {
		switch {
		case j >= len(ls) || i < len(ext) && ext[i].Name < ls[j].Name:
			add(ext[i])
			i++
		case i >= len(ext) || ls[j].Name < ext[i].Name:
			add(ls[j])
			j++
		default: // same name: the entry wins
			add(ls[j])
			i++
			j++
		}
	}
	b = append(b, '}')
	lc.buf = b
	return string(b)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// putUvarintBackward writes v as a varint ending just before buf[i] and
// returns where it starts.
func putUvarintBackward(buf []byte, i int, v uint64) int {
	i -= uvarintLen(v)
	j := i
	for v >= 0x80 {
		buf[j] = byte(v) | 0x80
		v >>= 7
		j++
	}
	buf[j] = byte(v)
	return i
}
