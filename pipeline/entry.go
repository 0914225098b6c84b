// Package pipeline is vigil's engine: the record and batch types, the
// component interfaces and their registry, config decoding, the graph
// builder, the runner, acknowledgements, backpressure and self-metrics.
//
// It imports no concrete component. Components register themselves from
// their own packages and are linked in by the components package.
package pipeline

import (
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// Label is one name/value pair of a stream's label set.
type Label struct {
	Name, Value string
}

// Labels is a label set sorted by name. The stream an entry belongs to is
// identified by its Labels (and its tenant).
type Labels []Label

// LabelsFromMap builds a sorted label set.
func LabelsFromMap(m map[string]string) Labels {
	ls := make(Labels, 0, len(m))
	for k, v := range m {
		ls = append(ls, Label{k, v})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	return ls
}

// Get returns the value of name, or "" when absent.
func (ls Labels) Get(name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// Map returns the labels as a map.
func (ls Labels) Map() map[string]string {
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		m[l.Name] = l.Value
	}
	return m
}

// Equal says whether two sets hold the same labels. Entries of one stream
// usually share one slice, which is checked first.
func (ls Labels) Equal(o Labels) bool {
	if len(ls) != len(o) {
		return false
	}
	if len(ls) == 0 || &ls[0] == &o[0] {
		return true
	}
	for i := range ls {
		if ls[i] != o[i] {
			return false
		}
	}
	return true
}

// Hash identifies the label set. Equal sets hash equally because sets are
// kept sorted.
func (ls Labels) Hash() uint64 {
	d := xxhash.New()
	for _, l := range ls {
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write([]byte{0xff})
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write([]byte{0xff})
	}
	return d.Sum64()
}

// String renders the set in Loki's stream selector form: {a="1", b="2"}.
func (ls Labels) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// Entry is one log record.
type Entry struct {
	Time     int64  // unix nanoseconds
	Line     []byte // owned by the batch: processors may reslice it, never keep it
	Labels   Labels // sorted; the stream is identified by their hash
	Metadata Labels // Loki structured metadata
	Tenant   string // "" means the default tenant
	// Extracted is the data parsing processors pulled out of the entry for
	// later processors in the same pipeline (Promtail's "extracted map").
	// It never leaves the pipeline.
	Extracted Fields
}

// Field is one extracted value. Values are strings; a parsed JSON object
// or array is kept as its JSON text.
type Field struct {
	Name, Value string
}

// Fields is an entry's extracted data, in the order it was set.
type Fields []Field

// Get returns the value of name.
func (fs Fields) Get(name string) (string, bool) {
	for i := len(fs) - 1; i >= 0; i-- {
		if fs[i].Name == name {
			return fs[i].Value, true
		}
	}
	return "", false
}

// Set sets name to value, replacing an earlier value.
func (fs *Fields) Set(name, value string) {
	for i := range *fs {
		if (*fs)[i].Name == name {
			(*fs)[i].Value = value
			return
		}
	}
	*fs = append(*fs, Field{name, value})
}

// Delete removes name.
func (fs *Fields) Delete(name string) {
	for i := range *fs {
		if (*fs)[i].Name == name {
			*fs = append((*fs)[:i], (*fs)[i+1:]...)
			return
		}
	}
}

// Set returns a copy of ls with name set to value (removed when value is
// empty, as Prometheus treats an empty label). Label sets are shared
// between entries, so they are never changed in place.
func (ls Labels) Set(name, value string) Labels {
	i := sort.Search(len(ls), func(i int) bool { return ls[i].Name >= name })
	if i < len(ls) && ls[i].Name == name {
		if ls[i].Value == value {
			return ls
		}
		out := make(Labels, 0, len(ls))
		out = append(out, ls[:i]...)
		if value != "" {
			out = append(out, Label{name, value})
		}
		return append(out, ls[i+1:]...)
	}
	if value == "" {
		return ls
	}
	out := make(Labels, 0, len(ls)+1)
	out = append(out, ls[:i]...)
	out = append(out, Label{name, value})
	return append(out, ls[i:]...)
}

// Delete returns a copy of ls without name.
func (ls Labels) Delete(name string) Labels { return ls.Set(name, "") }

// Size is the number of bytes the entry accounts for in memory budgets and
// in Loki's batch size: the line plus its metadata, as Loki counts it.
func (e *Entry) Size() int {
	n := len(e.Line)
	for _, l := range e.Metadata {
		n += len(l.Name) + len(l.Value)
	}
	return n
}

// entryOverhead is the memory an entry costs beyond its line: the struct
// in its batch's array, and a pointer to it in a sink's batch.
const entryOverhead = int64(unsafe.Sizeof(Entry{})) + 8

// Batch is a group of entries travelling together from one source through
// processors to every sink of the pipelines that read the source.
//
// A batch is settled when every party that holds it has called Settle: each
// sink that received it settles its part once delivered or permanently
// dropped. Only then does the source's callback run, which is what lets a
// checkpoint move. Processors never see acks; an entry a processor drops is
// settled with the batch.
type Batch struct {
	Entries []Entry

	refs      atomic.Int32
	onSettled func()
	release   func() // returns the batch's bytes to the budget

	mu       sync.Mutex
	attached []*Batch
}

// NewBatch returns an empty batch whose onSettled runs once, after the last
// holder settles. onSettled may be nil.
func NewBatch(capacity int, onSettled func()) *Batch {
	b := &Batch{Entries: getEntries(capacity), onSettled: onSettled}
	b.refs.Store(1)
	return b
}

// Entry arrays are recycled once their batch settles: by then no sink or
// processor may refer to them (the Batch contract), and reusing them
// halves what the read path allocates, so the collector runs half as
// often. Arrays come in power-of-two sizes from minPooledEntries to
// pooledEntries, with a pool for each: a source whose batches are small
// (many files each appending a little) would otherwise allocate, and the
// runtime clear, an array per batch, which at 120 bytes an entry is about
// as many bytes as the lines themselves. A request is rounded up to its
// size, so an array is at most twice what was asked for.
const (
	minPooledEntries = 8
	pooledEntries    = 1024
)

var entryPools [entryClasses]sync.Pool

const entryClasses = 8 // minPooledEntries << 7 == pooledEntries

// entryClass is the pool for arrays of capacity c: c rounded up to a power
// of two, as an index from minPooledEntries.
func entryClass(c int) int {
	if c <= minPooledEntries {
		return 0
	}
	return bits.Len(uint(c-1)) - bits.Len(minPooledEntries-1)
}

func getEntries(capacity int) []Entry {
	if capacity > pooledEntries {
		return make([]Entry, 0, capacity)
	}
	c := entryClass(capacity)
	if es, ok := entryPools[c].Get().([]Entry); ok {
		return es
	}
	return make([]Entry, 0, minPooledEntries<<c)
}

func putEntries(es []Entry) {
	c := cap(es)
	if c < minPooledEntries || c > pooledEntries || c&(c-1) != 0 {
		return // grown by append, or made for a large batch
	}
	clear(es[:c])
	entryPools[entryClass(c)].Put(es[:0]) //nolint:staticcheck // a slice header is small; the array is what is reused
}

// Hold registers one more party that must Settle before the batch is done.
func (b *Batch) Hold() { b.refs.Add(1) }

// Settle marks one holder's work done. The last call runs the source's
// callback and frees the batch's share of the memory budget.
func (b *Batch) Settle() {
	n := b.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		panic("pipeline: batch settled more times than held")
	}
	if b.release != nil {
		b.release()
	}
	if b.onSettled != nil {
		b.onSettled()
	}
	b.mu.Lock()
	attached := b.attached
	b.attached = nil
	b.mu.Unlock()
	for _, o := range attached {
		o.Settle()
	}
	es := b.Entries
	b.Entries = nil
	putEntries(es)
}

// Bytes is the memory the batch accounts for.
func (b *Batch) Bytes() int64 {
	var n int64
	for i := range b.Entries {
		n += int64(cap(b.Entries[i].Line)) + entryOverhead
	}
	return n
}

// Attach ties other's settlement to b: other settles when b does. A
// processor that carries an entry from one batch into a later one (as
// multiline does) holds the first batch and attaches it to the second, so
// the first batch's checkpoint waits for the carried entry's delivery.
func (b *Batch) Attach(other *Batch) {
	b.mu.Lock()
	b.attached = append(b.attached, other)
	b.mu.Unlock()
}

// Clone deep-copies the entries (lines included) into a new batch that
// shares no memory with b. The clone's settlement is tied to b: b stays
// held until the clone settles.
func (b *Batch) Clone() *Batch {
	total := 0
	for i := range b.Entries {
		total += len(b.Entries[i].Line)
	}
	buf := make([]byte, 0, total)
	b.Hold()
	c := NewBatch(len(b.Entries), b.Settle)
	for _, e := range b.Entries {
		start := len(buf)
		buf = append(buf, e.Line...)
		e.Line = buf[start:len(buf):len(buf)]
		c.Entries = append(c.Entries, e)
	}
	return c
}
