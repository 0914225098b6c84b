package processors

import (
	"sort"
	"time"
	"unicode/utf8"
	"unsafe"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// pack is Promtail's pack stage: it wraps the line and chosen extracted
// values or labels into a JSON object, in Promtail's format, which Loki's
// `| unpack` reverses:
//
//	{"container":"myapp","pod":"pod-3223f","_entry":"original log message"}
//
// Keys are sorted with _entry last; labels that were packed are removed
// from the stream.
//
//	pack:
//	  labels: [<name>, ...]
//	  ingest_timestamp: <bool>   # default true: the entry's time becomes now

func init() {
	pipeline.RegisterProcessor("pack", newPackStage)
}

type packConfig struct {
	Labels          []string `yaml:"labels"`
	IngestTimestamp *bool    `yaml:"ingest_timestamp"`
}

type packStage struct {
	names  []string // sorted, without duplicates
	ingest bool
	now    func() time.Time

	found []string // scratch for the memo: "" when names[i] is a label to drop
	memo  labelMemo
	buf   []byte
	ends  []int
	last  int64 // the last ingest time given, to keep them increasing
}

// packedEntryKey is the key Loki's unpack reads the original line from.
const packedEntryKey = "_entry"

func newPackStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg packConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	s := &packStage{ingest: true, now: time.Now}
	if cfg.IngestTimestamp != nil {
		s.ingest = *cfg.IngestTimestamp
	}
	seen := map[string]bool{}
	for i, n := range cfg.Labels {
		if n == "" {
			return nil, env.Decoder.Errorf(cfgListItem(node, "labels", i), "pack stage: empty label name")
		}
		if !seen[n] {
			seen[n] = true
			s.names = append(s.names, n)
		}
	}
	sort.Strings(s.names)
	s.found = make([]string, len(s.names))
	return s, nil
}

func (s *packStage) Process(b *pipeline.Batch) {
	var now time.Time
	if s.ingest {
		now = s.now()
	}
	// First pass: build every packed line into one scratch buffer and
	// remember where each ends; second pass: copy them into one allocation
	// for the batch.
	s.buf = s.buf[:0]
	s.ends = s.ends[:0]
	for i := range b.Entries {
		e := &b.Entries[i]
		s.buf = append(s.buf, '{')
		n := 0
		for _, name := range s.names {
			v, ok := extractedValue(e, name)
			if !ok {
				continue
			}
			if n > 0 {
				s.buf = append(s.buf, ',')
			}
			n++
			s.buf = appendPackJSONString(s.buf, name)
			s.buf = append(s.buf, ':')
			s.buf = appendPackJSONString(s.buf, v)
		}
		if n > 0 {
			s.buf = append(s.buf, ',')
		}
		s.buf = append(s.buf, `"`+packedEntryKey+`":`...)
		s.buf = appendPackJSONBytes(s.buf, e.Line)
		s.buf = append(s.buf, '}')
		s.ends = append(s.ends, len(s.buf))
		e.Labels = s.withoutPacked(e)
		if s.ingest {
			// Distinct, increasing times keep the entries of streams that
			// packing merged in order, as Promtail's time.Now() per entry
			// does, without reading the clock per entry.
			t := now.UnixNano()
			if t <= s.last {
				t = s.last + 1
			}
			s.last = t
			e.Time = t
		}
	}
	lines := make([]byte, len(s.buf))
	copy(lines, s.buf)
	start := 0
	for i, end := range s.ends {
		b.Entries[i].Line = lines[start:end:end]
		start = end
	}
}

// withoutPacked removes the packed names from the labels.
func (s *packStage) withoutPacked(e *pipeline.Entry) pipeline.Labels {
	drop := false
	for j, name := range s.names {
		s.found[j] = noLabelValue
		if _, ok := lookupLabel(e.Labels, name); ok {
			s.found[j] = ""
			drop = true
		}
	}
	if !drop {
		return e.Labels
	}
	if out, ok := s.memo.get(e.Labels, s.found); ok {
		return out
	}
	m := s.memo.put(e.Labels, s.found)
	out := e.Labels
	for j, name := range s.names {
		if m.vals[j] != noLabelValue {
			out = out.Delete(name)
		}
	}
	m.out = out
	return out
}

const packHexDigits = "0123456789abcdef"

// packJSONSafe marks the ASCII bytes written as they are.
var packJSONSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendPackJSONString appends s as a JSON string the way Promtail's
// encoder (json-iterator with HTML escaping) writes it: \n, \r and \t
// short, other control characters and <, >, & as \u00XX, U+2028 and U+2029
// escaped, invalid UTF-8 replaced by U+FFFD.
func appendPackJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if packJSONSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', packHexDigits[c>>4], packHexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', packHexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendPackJSONBytes(dst, b []byte) []byte {
	return appendPackJSONString(dst, unsafe.String(unsafe.SliceData(b), len(b)))
}
