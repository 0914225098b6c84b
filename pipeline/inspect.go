package pipeline

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// inspector wraps a processor and writes what it changed in each entry,
// as Promtail's -inspect does.
type inspector struct {
	w          io.Writer
	mu         *sync.Mutex
	typ, name  string
	proc       Processor
	before     []entrySnapshot
	flushAfter bool
}

type entrySnapshot struct {
	time      int64
	line      string
	labels    string
	metadata  string
	tenant    string
	extracted string
}

func snapshot(e *Entry) entrySnapshot {
	var ex strings.Builder
	for i, f := range e.Extracted {
		if i > 0 {
			ex.WriteString(", ")
		}
		fmt.Fprintf(&ex, "%s=%q", f.Name, f.Value)
	}
	return entrySnapshot{e.Time, string(e.Line), e.Labels.String(), e.Metadata.String(), e.Tenant, "{" + ex.String() + "}"}
}

var inspectMu sync.Mutex

func inspect(w io.Writer, typ, name string, p Processor) Processor {
	in := &inspector{w: w, mu: &inspectMu, typ: typ, name: name, proc: p}
	if _, ok := p.(Flusher); ok {
		return &flushingInspector{in}
	}
	return in
}

func (in *inspector) Process(b *Batch) {
	in.before = in.before[:0]
	for i := range b.Entries {
		in.before = append(in.before, snapshot(&b.Entries[i]))
	}
	in.proc.Process(b)
	in.report(b)
}

func (in *inspector) report(b *Batch) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(b.Entries) != len(in.before) {
		fmt.Fprintf(in.w, "[inspect: %s stage %q]: %d entries in, %d out\n", in.typ, in.name, len(in.before), len(b.Entries))
	}
	for i := range b.Entries {
		after := snapshot(&b.Entries[i])
		if i >= len(in.before) {
			fmt.Fprintf(in.w, "[inspect: %s stage %q]: new entry %s %s\n", in.typ, in.name, after.labels, after.line)
			continue
		}
		bf := in.before[i]
		var diffs []string
		add := func(what, from, to string) {
			if from != to {
				diffs = append(diffs, fmt.Sprintf("  %s: %s -> %s", what, from, to))
			}
		}
		add("extracted", bf.extracted, after.extracted)
		add("labels", bf.labels, after.labels)
		add("structured metadata", bf.metadata, after.metadata)
		add("tenant", fmt.Sprintf("%q", bf.tenant), fmt.Sprintf("%q", after.tenant))
		if bf.time != after.time {
			add("timestamp", time.Unix(0, bf.time).UTC().Format(time.RFC3339Nano), time.Unix(0, after.time).UTC().Format(time.RFC3339Nano))
		}
		add("line", fmt.Sprintf("%q", bf.line), fmt.Sprintf("%q", after.line))
		if len(diffs) == 0 {
			fmt.Fprintf(in.w, "[inspect: %s stage %q]: none\n", in.typ, in.name)
			continue
		}
		fmt.Fprintf(in.w, "[inspect: %s stage %q]:\n%s\n", in.typ, in.name, strings.Join(diffs, "\n"))
	}
}

type flushingInspector struct{ *inspector }

func (f *flushingInspector) Flush(now time.Time, force bool) *Batch {
	b := f.proc.(Flusher).Flush(now, force)
	if b != nil {
		f.before = f.before[:0]
		f.report(b)
	}
	return b
}
