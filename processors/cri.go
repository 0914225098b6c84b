package processors

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// The cri stage: Promtail's `cri` stage. It is its regex stage with
// ^(?s)(?P<time>\S+?) (?P<stream>stdout|stderr) (?P<flags>\S+?) (?P<content>.*)$
// (parsed by hand here, with the same result), labels (stream), timestamp
// (time as RFC3339Nano, fudged on failure) and output (content), followed
// by the joining of partial lines.
//
// A line flagged P is a piece of a longer line: pieces wait, per label
// set, until the line flagged F that ends them, and go out joined at the
// place of that F line, with its timestamp. As in Promtail, when a piece
// arrives while max_partial_lines label sets are already waiting, every
// waiting line goes out as it is; with max_partial_line_size_truncate,
// waiting and joined lines are cut to max_partial_line_size bytes.
//
// Pieces carry over from one batch to the next: the stage holds the
// batches they came from and attaches them to the batch the joined line
// goes out in, so no checkpoint moves past a piece before the line is
// delivered. Promtail waits for the F line forever; vigil sends what
// waits after criPartialMaxWait as it is, so a runtime that died mid-line
// cannot hold a file's checkpoint (and the memory budget) for good, and
// sends everything still waiting at shutdown.

func init() {
	pipeline.RegisterProcessor("cri", newCRIStage)
}

// criPartialMaxWait is how long the pieces of a line may wait for the
// rest. Runtimes write all pieces of a line at once.
const criPartialMaxWait = 5 * time.Second

type criConfig struct {
	MaxPartialLines            int               `yaml:"max_partial_lines"`
	MaxPartialLineSize         pipeline.ByteSize `yaml:"max_partial_line_size"`
	MaxPartialLineSizeTruncate bool              `yaml:"max_partial_line_size_truncate"`
}

type criStage struct {
	maxLines int
	maxSize  int
	truncate bool

	slab  parserFieldSlab
	arena parserArena
	rt    runtimeStages

	pending []*criPending
	free    []*criPending // joined ones whose buffers can be reused
	out     []pipeline.Entry
	logger  *pipeline.RateLimitedLogger

	errMalformed prometheus.Counter
}

// criPending is a line whose pieces wait for their end.
type criPending struct {
	key   uint64 // label set hash
	entry pipeline.Entry
	buf   []byte // the joined pieces, owned
	held  []*pipeline.Batch
	since time.Time
}

func newCRIStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg criConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	if cfg.MaxPartialLines < 0 {
		return nil, env.Decoder.Errorf(pipeline.KeyNode(node, "max_partial_lines"), "cri stage: max_partial_lines must not be negative")
	}
	if cfg.MaxPartialLines == 0 {
		cfg.MaxPartialLines = 100
	}
	c := counters{env}
	logger := env.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &criStage{
		maxLines:     cfg.MaxPartialLines,
		maxSize:      int(cfg.MaxPartialLineSize),
		truncate:     cfg.MaxPartialLineSizeTruncate,
		rt:           newRuntimeStages(c),
		logger:       pipeline.NewRateLimitedLogger(logger.With("component", env.Name), 10*time.Second),
		errMalformed: c.stageError("malformed_cri"),
	}, nil
}

// criParse splits a CRI line into its four fields as Promtail's regex
// does: time and flags are runs of non-space bytes (RE2's \S: anything but
// \t \n \f \r and space), each followed by exactly one space.
func criParse(line []byte) (ts, stream, flags, content []byte, ok bool) {
	i := 0
	for i < len(line) && !criSpace(line[i]) {
		i++
	}
	if i == 0 || i >= len(line) || line[i] != ' ' {
		return nil, nil, nil, nil, false
	}
	ts = line[:i]
	rest := line[i+1:]
	if len(rest) < 7 || rest[6] != ' ' || (string(rest[:6]) != "stdout" && string(rest[:6]) != "stderr") {
		return nil, nil, nil, nil, false
	}
	stream = rest[:6]
	rest = rest[7:]
	j := 0
	for j < len(rest) && !criSpace(rest[j]) {
		j++
	}
	if j == 0 || j >= len(rest) || rest[j] != ' ' {
		return nil, nil, nil, nil, false
	}
	return ts, stream, rest[:j], rest[j+1:], true
}

func criSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

func (c *criStage) Process(b *pipeline.Batch) {
	out := c.out[:0]
	for i := range b.Entries {
		e := &b.Entries[i]
		partial := c.parse(e)
		if !partial && len(c.pending) == 0 {
			out = append(out, *e)
			continue
		}
		key := e.Labels.Hash()
		if partial {
			out = c.addPiece(b, e, key, out)
			continue
		}
		if p, at := c.find(key); p != nil {
			joined := c.arena.alloc(len(p.buf) + len(e.Line))
			copy(joined[copy(joined, p.buf):], e.Line)
			e.Line = c.cut(joined)
			c.release(p, b)
			c.pending = append(c.pending[:at], c.pending[at+1:]...)
			c.recycle(p)
		}
		out = append(out, *e)
	}
	b.Entries = append(b.Entries[:0], out...)
	clear(out)
	c.out = out[:0]
}

// parse runs the regex, labels, timestamp and output parts on e and
// reports whether it is a piece flagged P.
func (c *criStage) parse(e *pipeline.Entry) bool {
	ts, stream, flags, content, ok := criParse(e.Line)
	if !ok {
		c.errMalformed.Inc()
		c.rt.fudgeTime(e)
		return false
	}
	c.slab.reserve(e, 4)
	tsS, streamS, flagsS, contentS := aliasString(ts), aliasString(stream), aliasString(flags), aliasString(content)
	e.Extracted.Set("time", tsS)
	e.Extracted.Set("stream", streamS)
	e.Extracted.Set("flags", flagsS)
	e.Extracted.Set("content", contentS)
	c.rt.setStream(e, streamS)
	c.rt.setTime(e, tsS)
	e.Line = content
	return flagsS == "P"
}

func (c *criStage) find(key uint64) (*criPending, int) {
	for i, p := range c.pending {
		if p.key == key {
			return p, i
		}
	}
	return nil, -1
}

// addPiece keeps a P line back, joined to the pieces before it.
func (c *criStage) addPiece(b *pipeline.Batch, e *pipeline.Entry, key uint64, out []pipeline.Entry) []pipeline.Entry {
	if len(c.pending) >= c.maxLines {
		c.logger.Warn("max_partial_lines", "cri stage: partial lines upper bound exceeded; sending the waiting lines as they are", "threshold", c.maxLines)
		for _, p := range c.pending {
			out = append(out, p.entry)
			c.release(p, b)
		}
		clear(c.pending)
		c.pending = c.pending[:0]
	}
	p, _ := c.find(key)
	if p == nil {
		if n := len(c.free); n > 0 {
			p = c.free[n-1]
			c.free = c.free[:n-1]
		} else {
			p = &criPending{}
		}
		p.key, p.since = key, time.Now()
		c.pending = append(c.pending, p)
	}
	p.buf = c.cut(append(p.buf, e.Line...))
	p.entry = *e
	p.entry.Line = p.buf
	if n := len(p.held); n == 0 || p.held[n-1] != b {
		b.Hold()
		p.held = append(p.held, b)
	}
	return out
}

// recycle keeps p for another line. Only lines whose text was copied out
// come back: a line sent as it is keeps p.buf as its Line.
func (c *criStage) recycle(p *criPending) {
	if len(c.free) >= 16 {
		return
	}
	p.buf = p.buf[:0]
	p.entry = pipeline.Entry{}
	p.held = p.held[:0]
	c.free = append(c.free, p)
}

func (c *criStage) cut(line []byte) []byte {
	if c.truncate && len(line) > c.maxSize {
		return line[:c.maxSize]
	}
	return line
}

// release ties the batches p's pieces came from to b, where p's line now
// goes out. The batch being processed is still held by the runner, so
// its own extra hold can simply be let go.
func (c *criStage) release(p *criPending, b *pipeline.Batch) {
	for _, h := range p.held {
		if h == b {
			h.Settle()
		} else {
			b.Attach(h)
		}
	}
	clear(p.held)
	p.held = p.held[:0]
}

// Flush implements pipeline.Flusher: lines whose pieces waited too long,
// or all at shutdown, go out as they are.
func (c *criStage) Flush(now time.Time, force bool) *pipeline.Batch {
	var nb *pipeline.Batch
	keep := c.pending[:0]
	for _, p := range c.pending {
		if !force && now.Sub(p.since) < criPartialMaxWait {
			keep = append(keep, p)
			continue
		}
		if nb == nil {
			nb = pipeline.NewBatch(len(c.pending), nil)
		}
		nb.Entries = append(nb.Entries, p.entry)
		c.release(p, nb)
	}
	clear(c.pending[len(keep):])
	c.pending = keep
	return nb
}
