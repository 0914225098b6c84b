package processors

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// The docker stage: Promtail's `docker` stage, which is its json stage
// (output: log, stream: stream, timestamp: time), then labels (stream),
// timestamp (timestamp as RFC3339Nano, fudged on failure), then output
// (output). It is written out as one pass here rather than composed, so a
// line is scanned once and the decoded log text is the only copy made.

func init() {
	pipeline.RegisterProcessor("docker", newDockerStage)
}

type dockerConfig struct{}

type dockerStage struct {
	scan  jsonScanner
	spans [3]jsonSpan
	vals  jsonText
	slab  parserFieldSlab
	rt    runtimeStages

	errMalformed prometheus.Counter
}

var dockerKeys = []string{"log", "stream", "time"}

func newDockerStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg dockerConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	c := counters{env}
	return &dockerStage{
		rt:           newRuntimeStages(c),
		errMalformed: c.stageError("malformed_json"),
	}, nil
}

func (d *dockerStage) Process(b *pipeline.Batch) {
	for i := range b.Entries {
		d.entry(&b.Entries[i])
	}
}

func (d *dockerStage) entry(e *pipeline.Entry) {
	// For a null document scanTop finds no keys: all three are absent.
	_, ok := d.scan.scanTop(e.Line, dockerKeys, d.spans[:])
	if !ok {
		d.errMalformed.Inc()
		// The timestamp stage still runs in Promtail, and fudges.
		d.rt.fudgeTime(e)
		return
	}
	d.slab.reserve(e, 3)
	line := e.Line
	// Promtail's json stage stores all three, then labels, timestamp and
	// output read them.
	output, hasOutput := d.vals.text(line, d.spans[0])
	stream, hasStream := d.vals.text(line, d.spans[1])
	ts, hasTS := d.vals.text(line, d.spans[2])
	dockerSetField(e, "output", output, hasOutput)
	dockerSetField(e, "stream", stream, hasStream)
	dockerSetField(e, "timestamp", ts, hasTS)
	if hasStream {
		d.rt.setStream(e, stream)
	}
	if hasTS {
		d.rt.setTime(e, ts)
	} else {
		d.rt.errTimestamp.Inc()
		d.rt.fudgeTime(e)
	}
	if hasOutput {
		if k := d.spans[0].kind; k == jsonTrue || k == jsonFalse {
			// Lines must be writable memory; these two are constants.
			output = aliasString(append(d.vals.arena.alloc(len(output))[:0], output...))
			e.Extracted.Set("output", output)
		}
		e.Line = aliasBytes(output)
	}
}

func dockerSetField(e *pipeline.Entry, name, value string, ok bool) {
	if ok {
		e.Extracted.Set(name, value)
	} else {
		e.Extracted.Delete(name)
	}
}

// runtimeStages is what the docker and cri stages share: Promtail's labels
// stage for `stream` and its timestamp stage with RFC3339Nano and the
// default action_on_failure, fudge.
type runtimeStages struct {
	labels streamLabelCache
	fudge  runtimeFudge

	errTimestamp prometheus.Counter
	errLabel     prometheus.Counter
}

func newRuntimeStages(c counters) runtimeStages {
	return runtimeStages{
		fudge:        runtimeFudge{last: map[uint64]int64{}},
		errTimestamp: c.stageError("invalid_timestamp"),
		errLabel:     c.stageError("invalid_label_value"),
	}
}

// setStream sets the stream label, as Promtail's labels stage does: a
// value that is not valid UTF-8 is skipped.
func (r *runtimeStages) setStream(e *pipeline.Entry, value string) {
	if !utf8.ValidString(value) {
		r.errLabel.Inc()
		return
	}
	e.Labels = r.labels.set(e.Labels, value)
}

// setTime parses an RFC3339Nano timestamp into e.Time, or fudges it.
func (r *runtimeStages) setTime(e *pipeline.Entry, value string) {
	ns, ok := runtimeParseTime(value)
	if !ok {
		r.errTimestamp.Inc()
		r.fudgeTime(e)
		return
	}
	e.Time = ns
	r.fudge.known(r.labels.hash(e.Labels), ns)
}

// fudgeTime is what a failed timestamp gets: the last timestamp parsed
// for the entry's label set plus 1ns, or its own when none is known.
func (r *runtimeStages) fudgeTime(e *pipeline.Entry) {
	h := r.labels.hash(e.Labels)
	if t, ok := r.fudge.last[h]; ok {
		e.Time = t + 1
		r.fudge.last[h] = e.Time
	}
}

// runtimeFudge remembers the last timestamp parsed per label set (by hash),
// as Promtail's timestamp stage does for action_on_failure: fudge.
type runtimeFudge struct {
	last map[uint64]int64
}

// runtimeFudgeStreams bounds the memory of runtimeFudge, as Promtail's LRU of
// 10,000 streams does. Past it the map starts over.
const runtimeFudgeStreams = 10000

func (f *runtimeFudge) known(h uint64, ns int64) {
	if len(f.last) >= runtimeFudgeStreams {
		if _, ok := f.last[h]; !ok {
			clear(f.last)
		}
	}
	f.last[h] = ns
}

// streamLabelCache sets the stream label without building a new label set
// per entry. Label sets are immutable and shared by the entries of a
// stream, so the result for a given (label set, value) is kept and reused;
// a set is recognised by its backing array, which the cache keeps alive.
type streamLabelCache struct {
	slots [8]streamLabelSlot
	next  int
}

type streamLabelSlot struct {
	in    *pipeline.Label
	inLen int
	value string
	out   pipeline.Labels
	hash  uint64
	// outPtr identifies out for hash lookups.
	outPtr *pipeline.Label
}

func streamLabelsPtr(ls pipeline.Labels) *pipeline.Label {
	if cap(ls) == 0 {
		return nil
	}
	return &ls[:1][0]
}

func (c *streamLabelCache) set(ls pipeline.Labels, value string) pipeline.Labels {
	p := streamLabelsPtr(ls)
	for i := range c.slots {
		s := &c.slots[i]
		if s.out != nil && s.in == p && s.inLen == len(ls) && s.value == value {
			return s.out
		}
	}
	// Values usually are stdout and stderr; others are copied because
	// labels outlive the line they were read from.
	switch value {
	case "stdout":
		value = "stdout"
	case "stderr":
		value = "stderr"
	default:
		value = strings.Clone(value)
	}
	out := ls.Set("stream", value)
	if out == nil {
		out = pipeline.Labels{}
	}
	s := &c.slots[c.next]
	c.next = (c.next + 1) % len(c.slots)
	*s = streamLabelSlot{in: p, inLen: len(ls), value: value, out: out, hash: out.Hash(), outPtr: streamLabelsPtr(out)}
	return out
}

// hash returns ls.Hash(), from the cache when ls came out of it.
func (c *streamLabelCache) hash(ls pipeline.Labels) uint64 {
	p := streamLabelsPtr(ls)
	for i := range c.slots {
		s := &c.slots[i]
		if s.out != nil && s.outPtr == p && len(s.out) == len(ls) {
			return s.hash
		}
	}
	return ls.Hash()
}

// runtimeParseTime parses as time.Parse(time.RFC3339Nano, s) does and
// returns unix nanoseconds. The common shape is parsed by hand, without
// allocating for a numeric offset; anything else goes to time.Parse.
func runtimeParseTime(s string) (int64, bool) {
	if ns, ok := runtimeParseTimeFast(s); ok {
		return ns, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, false
	}
	return t.UnixNano(), true
}

// runtimeParseTimeFast accepts YYYY-MM-DDTHH:MM:SS[.1-9 digits](Z|±HH:MM)
// with in-range fields. ok is false for anything else, which time.Parse
// then decides.
func runtimeParseTimeFast(s string) (int64, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	year, ok1 := runtimeAtoi(s[0:4])
	month, ok2 := runtimeAtoi(s[5:7])
	day, ok3 := runtimeAtoi(s[8:10])
	hour, ok4 := runtimeAtoi(s[11:13])
	minute, ok5 := runtimeAtoi(s[14:16])
	sec, ok6 := runtimeAtoi(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return 0, false
	}
	if month < 1 || month > 12 || day < 1 || day > runtimeDaysIn(time.Month(month), year) || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	i := 19
	nsec := 0
	if s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			nsec = nsec*10 + int(s[i]-'0')
			i++
		}
		digits := i - start
		if digits == 0 || digits > 9 {
			return 0, false
		}
		for ; digits < 9; digits++ {
			nsec *= 10
		}
	}
	if i >= len(s) {
		return 0, false
	}
	offset := 0
	switch s[i] {
	case 'Z':
		i++
	case '+', '-':
		if len(s)-i != 6 || s[i+3] != ':' {
			return 0, false
		}
		oh, ok1 := runtimeAtoi(s[i+1 : i+3])
		om, ok2 := runtimeAtoi(s[i+4 : i+6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = (oh*60 + om) * 60
		if s[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return 0, false
	}
	if i != len(s) {
		return 0, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.UnixNano() - int64(offset)*int64(time.Second), true
}

func runtimeAtoi(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func runtimeDaysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}
