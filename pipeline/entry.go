// Package pipeline is vigil's engine: the record and batch types, the
// component interfaces and their registry, config decoding, the graph
// builder, the runner, acknowledgements, backpressure and self-metrics.
//
// It imports no concrete component. Components register themselves from
// their own packages and are linked in by the components package.
package pipeline

import (
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

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
}

// Size is the number of bytes the entry accounts for in memory budgets and
// in Loki's batch size: the line plus its metadata, as Loki counts it.
func (e *Entry) Size() int {
	n := len(e.Line)
	for _, l := range e.Metadata {
		n += len(l.Name) + len(l.Value)
	}
	return n
}

// entryOverhead approximates the memory an entry costs beyond its line: the
// struct itself and its share of a label set.
const entryOverhead = 64

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
}

// NewBatch returns an empty batch whose onSettled runs once, after the last
// holder settles. onSettled may be nil.
func NewBatch(capacity int, onSettled func()) *Batch {
	b := &Batch{Entries: make([]Entry, 0, capacity), onSettled: onSettled}
	b.refs.Store(1)
	return b
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
}

// Bytes is the memory the batch accounts for.
func (b *Batch) Bytes() int64 {
	var n int64
	for i := range b.Entries {
		n += int64(len(b.Entries[i].Line)) + entryOverhead
	}
	return n
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
