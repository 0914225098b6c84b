package processors

import (
	"regexp"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// multiline merges the lines of one record (a stack trace, say) into one
// entry, as Promtail's multiline stage does. Per stream (label set and
// tenant):
//
//   - until the stream's first line matching firstline, lines pass as they are;
//   - a line matching firstline ends the block before it and starts one;
//   - other lines join the current block, separated by "\n";
//   - a block is sent on when it reaches max_lines, or when the stream has
//     had no line for max_wait_time;
//   - the merged entry has the first line's timestamp, labels, metadata,
//     tenant and extracted data. Lines that come after a block was sent on
//     for max_lines or max_wait_time form a block with those of the last
//     first line, as in Promtail.
//
// Blocks span batches. A batch whose lines sit in an unsent block is held,
// and attached to the batch the block finally goes out in, so its
// checkpoint waits until the merged entry is delivered.
//
// That batch is never the one being processed: it would chain every batch's
// settlement to the next one's (each batch ends with a block still open),
// so no checkpoint would move while lines keep coming and the memory budget
// would fill. A merged entry with lines from earlier batches goes into a
// batch of the stage's own, which the runner takes at its next Flush (every
// 100ms) and which the stage never holds. So that a stream's entries stay in
// order, the rest of that stream's entries follow it there until then.

func init() {
	pipeline.RegisterProcessor("multiline", newMultiline)
}

const (
	defaultMultilineMaxLines = 128
	defaultMultilineMaxWait  = 3 * time.Second
	// A stream with nothing pending that has been quiet this long is
	// forgotten, so label sets that come and go (rotated files, short-lived
	// containers) do not pile up.
	multilineStreamIdle = time.Hour
)

type multilineConfig struct {
	FirstLine   *string        `yaml:"firstline"`
	MaxWaitTime *time.Duration `yaml:"max_wait_time"`
	MaxLines    *uint64        `yaml:"max_lines"`
}

type multilineStage struct {
	re       *regexp.Regexp
	maxWait  time.Duration
	maxLines uint64 // 0: no limit, as in Promtail
	now      func() time.Time

	streams map[uint64]*mlStream
	order   []*mlStream // streams in the order first seen, for a stable flush order
	open    int         // streams with a block pending
	// The previous entry's stream: entries of a batch usually share one
	// label set, so most lookups are a pointer comparison.
	last    *mlStream
	touched []*mlStream      // streams that took a line in the current Process
	out     []pipeline.Entry // reused to assemble the processed batch
	// pending is the stage's own batch for the next Flush; pendingCur
	// says it holds the batch being processed.
	pending    *pipeline.Batch
	pendingCur bool
	inPending  []*mlStream // streams with entries in pending
	lastSize   int         // entries of the last flushed batch, to size the next
	nextSweep  time.Time
	// arena holds merged lines: many blocks share one allocation. Each
	// line is sliced with its capacity cut to its length, so a later
	// stage appending to it cannot overwrite the next one.
	arena []byte
}

// mlStream is the state of one stream.
type mlStream struct {
	hash   uint64
	labels pipeline.Labels
	tenant string
	next   *mlStream // another stream with the same hash

	// start is the entry of the block's first line. It stays after a block
	// is sent on, for continuation lines that come after.
	start pipeline.Entry
	lines uint64 // lines in the pending block; 0 when none is pending
	// borrowed: the block is start's one line, still in the batch being
	// processed. It can go out as the original entry, with no copy.
	borrowed bool
	buf      []byte // the joined lines otherwise; reused from block to block

	// held are earlier batches with lines in the block, each held once;
	// inCur says the block has lines from the batch being processed.
	held    []*pipeline.Batch
	inCur   bool
	touched bool
	// inPending: the stream has entries in the stage's pending batch, so
	// its next ones go there too.
	inPending bool
	lastSeen  time.Time
}

func newMultiline(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg multilineConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	if cfg.FirstLine == nil {
		return nil, env.Decoder.Errorf(node, "multiline stage needs a firstline regular expression")
	}
	re, err := regexp.Compile(*cfg.FirstLine)
	if err != nil {
		return nil, env.Decoder.Errorf(pipeline.NodeAt(node, "firstline"), "multiline stage: invalid firstline %q: %v", *cfg.FirstLine, err)
	}
	m := &multilineStage{
		re:       re,
		maxWait:  defaultMultilineMaxWait,
		maxLines: defaultMultilineMaxLines,
		now:      time.Now,
		streams:  map[uint64]*mlStream{},
	}
	if cfg.MaxWaitTime != nil {
		if *cfg.MaxWaitTime < 0 {
			return nil, env.Decoder.Errorf(pipeline.NodeAt(node, "max_wait_time"), "multiline stage: max_wait_time must not be negative")
		}
		m.maxWait = *cfg.MaxWaitTime
	}
	if cfg.MaxLines != nil {
		m.maxLines = *cfg.MaxLines
	}
	return m, nil
}

func mlStreamHash(ls pipeline.Labels, tenant string) uint64 {
	h := ls.Hash()
	if tenant != "" {
		h ^= xxhash.Sum64String(tenant) * 0x9e3779b97f4a7c15
	}
	return h
}

// stream finds the entry's stream, or returns nil when it has none yet.
func (m *multilineStage) stream(e *pipeline.Entry) (*mlStream, uint64) {
	if s := m.last; s != nil && s.tenant == e.Tenant && len(s.labels) == len(e.Labels) &&
		(len(e.Labels) == 0 || &s.labels[0] == &e.Labels[0]) {
		return s, s.hash
	}
	h := mlStreamHash(e.Labels, e.Tenant)
	for s := m.streams[h]; s != nil; s = s.next {
		if s.tenant == e.Tenant && s.labels.Equal(e.Labels) {
			// Remember this entry's label slice: the next entries of the
			// batch most likely share it.
			s.labels = e.Labels
			m.last = s
			return s, h
		}
	}
	return nil, h
}

func (m *multilineStage) Process(b *pipeline.Batch) {
	now := m.now()
	m.pendingCur = false
	for i := range b.Entries {
		e := &b.Entries[i]
		s, h := m.stream(e)
		first := m.re.Match(e.Line)
		if s == nil {
			if !first {
				m.out = append(m.out, *e)
				continue
			}
			s = &mlStream{hash: h, labels: e.Labels, tenant: e.Tenant, next: m.streams[h]}
			m.streams[h] = s
			m.order = append(m.order, s)
			m.last = s
		}
		s.lastSeen = now
		if !s.touched {
			s.touched = true
			m.touched = append(m.touched, s)
		}
		if first {
			if s.lines > 0 {
				m.emit(s, b)
			}
			s.start = *e
			s.lines = 1
			s.borrowed = true
			m.open++
		} else {
			m.appendLine(s, e.Line)
		}
		s.inCur = true
		if s.lines == m.maxLines {
			m.emit(s, b)
		}
	}
	// Blocks still pending keep the batch: it is attached to the batch
	// they go out in.
	for _, s := range m.touched {
		s.touched = false
		if s.lines == 0 || !s.inCur {
			continue
		}
		if s.borrowed {
			// The batch goes on to later stages, which may rewrite the
			// line's bytes: keep a copy.
			s.buf = append(s.buf[:0], s.start.Line...)
			s.start.Line = nil
			s.borrowed = false
		}
		b.Hold()
		s.held = append(s.held, b)
		s.inCur = false
	}
	clear(m.touched)
	m.touched = m.touched[:0]
	b.Entries = append(b.Entries[:0], m.out...)
	clear(m.out)
	m.out = m.out[:0]
}

// mlMaxKeptBuffer bounds the joining buffer a stream keeps between blocks.
const mlMaxKeptBuffer = 64 << 10

// own copies a merged line into the arena.
func (m *multilineStage) own(p []byte) []byte {
	if cap(m.arena)-len(m.arena) < len(p) {
		m.arena = make([]byte, 0, max(len(p), 64<<10))
	}
	start := len(m.arena)
	m.arena = append(m.arena, p...)
	return m.arena[start:len(m.arena):len(m.arena)]
}

// appendLine adds a continuation line to the stream's block, or starts a
// block with it when none is pending.
func (m *multilineStage) appendLine(s *mlStream, line []byte) {
	switch {
	case s.lines == 0:
		s.buf = append(s.buf[:0], line...)
		m.open++
	case s.borrowed:
		s.buf = append(s.buf[:0], s.start.Line...)
		s.borrowed = false
		fallthrough
	default:
		s.buf = append(s.buf, '\n')
		s.buf = append(s.buf, line...)
	}
	s.lines++
}

// emit ends the stream's block during Process(b): into b when all its
// lines are b's, else into the pending batch.
func (m *multilineStage) emit(s *mlStream, b *pipeline.Batch) {
	if len(s.held) == 0 && !s.inPending {
		m.out = append(m.out, m.send(s, b))
		return
	}
	if m.pending == nil {
		m.pending = pipeline.NewBatch(max(16, m.lastSize), nil)
	}
	if s.inCur && !m.pendingCur {
		b.Hold()
		m.pending.Attach(b)
		m.pendingCur = true
	}
	if !s.inPending {
		s.inPending = true
		m.inPending = append(m.inPending, s)
	}
	m.pending.Entries = append(m.pending.Entries, m.send(s, m.pending))
}

// send ends the stream's pending block and returns its merged entry. dst
// is the batch the entry goes out in: the batches the block holds are
// attached to it, which hands it the holds.
func (m *multilineStage) send(s *mlStream, dst *pipeline.Batch) pipeline.Entry {
	e := s.start
	if s.borrowed {
		// Later blocks of the stream may reuse start's extracted data; the
		// entry going out owns this slice now.
		s.start.Extracted = mlCloneFields(s.start.Extracted)
	} else {
		e.Line = m.own(s.buf)
		e.Extracted = mlCloneFields(s.start.Extracted)
		if cap(s.buf) > mlMaxKeptBuffer {
			s.buf = nil
		} else {
			s.buf = s.buf[:0]
		}
	}
	s.start.Line = nil
	s.lines = 0
	s.borrowed = false
	s.inCur = false
	for _, h := range s.held {
		dst.Attach(h)
	}
	clear(s.held)
	s.held = s.held[:0]
	m.open--
	return e
}

func mlCloneFields(fs pipeline.Fields) pipeline.Fields {
	if len(fs) == 0 {
		return nil
	}
	return append(pipeline.Fields(nil), fs...)
}

// Flush returns the pending batch with the blocks of streams that have
// been quiet for max_wait_time, or with every block when force is set.
func (m *multilineStage) Flush(now time.Time, force bool) *pipeline.Batch {
	sweep := now.After(m.nextSweep)
	if m.open == 0 && m.pending == nil && !sweep {
		return nil
	}
	out := m.pending
	m.pending = nil
	for _, s := range m.inPending {
		s.inPending = false
	}
	clear(m.inPending)
	m.inPending = m.inPending[:0]
	for _, s := range m.order {
		if s.lines == 0 || (!force && now.Sub(s.lastSeen) < m.maxWait) {
			continue
		}
		if out == nil {
			out = pipeline.NewBatch(m.open, nil)
		}
		out.Entries = append(out.Entries, m.send(s, out))
	}
	if sweep {
		m.forgetIdle(now)
		m.nextSweep = now.Add(time.Minute)
	}
	if out != nil {
		m.lastSize = len(out.Entries)
	}
	return out
}

// forgetIdle drops the state of streams with nothing pending that have
// been quiet for multilineStreamIdle.
func (m *multilineStage) forgetIdle(now time.Time) {
	kept := m.order[:0]
	for _, s := range m.order {
		if s.lines > 0 || now.Sub(s.lastSeen) < multilineStreamIdle {
			kept = append(kept, s)
			continue
		}
		// Unlink it from its hash chain.
		if head := m.streams[s.hash]; head == s {
			if s.next == nil {
				delete(m.streams, s.hash)
			} else {
				m.streams[s.hash] = s.next
			}
		} else {
			for p := head; p != nil; p = p.next {
				if p.next == s {
					p.next = s.next
					break
				}
			}
		}
		if m.last == s {
			m.last = nil
		}
	}
	clear(m.order[len(kept):])
	m.order = kept
}
