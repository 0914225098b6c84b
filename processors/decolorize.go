package processors

import (
	"bytes"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// The decolorize stage: Promtail's `decolorize` stage, which removes what
// Loki's decolorizer regex matches:
//
//	[\x1b\x{9b}][[\]()#;?]*(?:(?:(?:[a-zA-Z\d]*(?:;[a-zA-Z\d]*)*)?\x07)|(?:(?:\d{1,4}(?:;\d{0,4})*)?[\dA-PRZcf-ntqry=><~]))
//
// Here it is matched by hand, with the same leftmost-first result (which
// a test checks against the regex), because most lines hold no escape
// and are passed over by a byte search alone.

func init() {
	pipeline.RegisterProcessor("decolorize", newDecolorizeStage)
}

type decolorizeConfig struct{}

type decolorizeStage struct {
	arena parserArena
	buf   []byte
}

func newDecolorizeStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg decolorizeConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	return &decolorizeStage{}, nil
}

func (d *decolorizeStage) Process(b *pipeline.Batch) {
	for i := range b.Entries {
		e := &b.Entries[i]
		if bytes.IndexByte(e.Line, 0x1b) < 0 && bytes.Index(e.Line, decolorizeCSI) < 0 {
			continue
		}
		out, changed := decolorizeLine(d.buf[:0], e.Line)
		d.buf = out[:0]
		if changed {
			line := d.arena.alloc(len(out))
			copy(line, out)
			e.Line = line
		}
	}
}

// decolorizeCSI is U+009B (CSI) in UTF-8, the other way a sequence starts.
var decolorizeCSI = []byte{0xc2, 0x9b}

// decolorizeLine appends line without its escape sequences to dst.
func decolorizeLine(dst, line []byte) ([]byte, bool) {
	changed := false
	last := 0
	for i := 0; i < len(line); i++ {
		var p int
		switch {
		case line[i] == 0x1b:
			p = i + 1
		case line[i] == 0xc2 && i+1 < len(line) && line[i+1] == 0x9b:
			p = i + 2
		default:
			continue
		}
		end := ansiSequenceEnd(line, p)
		if end < 0 {
			continue
		}
		dst = append(dst, line[last:i]...)
		last, changed = end, true
		i = end - 1
	}
	return append(dst, line[last:]...), changed
}

// ansiSequenceEnd returns where the sequence whose introducer ends at p
// ends, or -1 when none matches there.
func ansiSequenceEnd(s []byte, p int) int {
	n := len(s)
	// [[\]()#;?]* is greedy, and giving any of it back can never help:
	// those bytes cannot start either alternative below.
	q := p
	for q < n && ansiIntermediate(s[q]) {
		q++
	}
	// Alternative 1: [a-zA-Z\d;]* then BEL. What precedes BEL must be
	// the whole run of such bytes.
	r := q
	for r < n && (ansiAlnum(s[r]) || s[r] == ';') {
		r++
	}
	if r < n && s[r] == 0x07 {
		return r + 1
	}
	// Alternative 2: (\d{1,4}(;\d{0,4})*)? then a final byte.
	if q >= n {
		return -1
	}
	if !ansiDigit(s[q]) {
		if ansiFinal(s[q]) {
			return q + 1
		}
		return -1
	}
	// Greedy: up to four digits, then groups of ; and up to four digits.
	// lastDigitEnd is where the last group with a digit ends.
	j := q
	for j < n && j-q < 4 && ansiDigit(s[j]) {
		j++
	}
	lastDigitEnd := j
	for j < n && s[j] == ';' {
		j++
		k := j
		for j < n && j-k < 4 && ansiDigit(s[j]) {
			j++
		}
		if j > k {
			lastDigitEnd = j
		}
	}
	if j < n && ansiFinal(s[j]) {
		return j + 1
	}
	// Backtracking gives one digit back to be the final byte: the last
	// digit of the last group that has one.
	return lastDigitEnd
}

func ansiIntermediate(c byte) bool {
	switch c {
	case '[', ']', '(', ')', '#', ';', '?':
		return true
	}
	return false
}

func ansiDigit(c byte) bool { return c >= '0' && c <= '9' }

func ansiAlnum(c byte) bool {
	return ansiDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// ansiFinal is [\dA-PRZcf-ntqry=><~].
func ansiFinal(c byte) bool {
	switch {
	case ansiDigit(c), c >= 'A' && c <= 'P', c >= 'f' && c <= 'n':
		return true
	}
	switch c {
	case 'R', 'Z', 'c', 't', 'q', 'r', 'y', '=', '>', '<', '~':
		return true
	}
	return false
}
