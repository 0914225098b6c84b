package processors

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/jsonstr"
	"github.com/vigilhq/vigil/pipeline"
)

// The logfmt stage: Promtail's `logfmt` stage. Promtail decodes with
// go-logfmt; this is a decoder of its own that accepts and rejects what
// go-logfmt does (garbage before a key is skipped, a key may stand alone,
// `"` and a stray `=` are errors, quoted values unescape like JSON
// strings plus \'), so a line parses the same. As there, the input is
// read line by line, and on a syntax error what was extracted before the
// error stays.

func init() {
	pipeline.RegisterProcessor("logfmt", newLogfmtStage)
}

type logfmtConfig struct {
	Mapping yaml.Node `yaml:"mapping"`
	Source  *string   `yaml:"source"`
}

// logfmtKey is a logfmt key and the extracted names it goes to.
type logfmtKey struct {
	key   string
	names []string
}

type logfmtStage struct {
	keys   []logfmtKey
	nnames int
	source *string
	slab   parserFieldSlab
	arena  parserArena
	// reserved is set once the current entry has room for all names.
	reserved bool

	errMalformed prometheus.Counter
	errSource    prometheus.Counter
}

func newLogfmtStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg logfmtConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	if err := parserCheckSource(env, node, cfg.Source); err != nil {
		return nil, err
	}
	m := pipeline.KeyNode(node, "mapping")
	if m == nil || m.Kind == yaml.ScalarNode && m.Tag == "!!null" {
		return nil, env.Decoder.Errorf(node, "logfmt stage: mapping is required")
	}
	if m.Kind != yaml.MappingNode {
		return nil, env.Decoder.Errorf(m, "logfmt stage: mapping must map extracted names to logfmt keys")
	}
	if len(m.Content) == 0 {
		return nil, env.Decoder.Errorf(m, "logfmt stage: mapping is required")
	}
	s := &logfmtStage{source: cfg.Source}
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, env.Decoder.Errorf(k, "logfmt stage: extracted names must be strings")
		}
		if seen[k.Value] {
			return nil, env.Decoder.Errorf(k, "logfmt stage: duplicate name %q", k.Value)
		}
		seen[k.Value] = true
		key := ""
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		case v.Kind == yaml.ScalarNode && v.Tag == "!!str":
			key = v.Value
		default:
			return nil, env.Decoder.Errorf(v, "logfmt stage: the logfmt key for %q must be a string", k.Value)
		}
		if key == "" {
			key = k.Value
		}
		s.add(key, k.Value)
	}
	c := counters{env}
	s.errMalformed = c.stageError("malformed_logfmt")
	s.errSource = c.stageError("source_missing")
	return s, nil
}

// add maps a logfmt key to one more extracted name. Promtail keeps one of
// the names at random when several map the same key; vigil fills all.
func (s *logfmtStage) add(key, name string) {
	s.nnames++
	for i := range s.keys {
		if s.keys[i].key == key {
			s.keys[i].names = append(s.keys[i].names, name)
			return
		}
	}
	s.keys = append(s.keys, logfmtKey{key: key, names: []string{name}})
}

func (s *logfmtStage) Process(b *pipeline.Batch) {
	for i := range b.Entries {
		e := &b.Entries[i]
		data := e.Line
		if s.source != nil {
			v, ok := extractedValue(e, *s.source)
			if !ok {
				s.errSource.Inc()
				continue
			}
			data = aliasBytes(v)
		}
		s.reserved = false
		if !s.parse(e, data) {
			s.errMalformed.Inc()
		}
	}
}

// parse decodes data record by record (line by line) and reports whether
// it was well-formed.
func (s *logfmtStage) parse(e *pipeline.Entry, data []byte) bool {
	for len(data) > 0 {
		rec := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			rec, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if n := len(rec); n > 0 && rec[n-1] == '\r' {
			rec = rec[:n-1]
		}
		if !s.record(e, rec) {
			return false
		}
	}
	return true
}

func (s *logfmtStage) record(e *pipeline.Entry, line []byte) bool {
	pos := 0
	n := len(line)
	for {
		for pos < n && line[pos] <= ' ' {
			pos++
		}
		if pos >= n {
			return true
		}
		start := pos
		multibyte := false
		for pos < n {
			c := line[pos]
			if c == '=' || c == '"' || c <= ' ' {
				break
			}
			if c >= utf8.RuneSelf {
				multibyte = true
			}
			pos++
		}
		key := line[start:pos]
		if pos < n && line[pos] == '"' || len(key) == 0 {
			return false
		}
		if multibyte && bytes.ContainsRune(key, utf8.RuneError) {
			return false
		}
		if pos >= n || line[pos] != '=' {
			s.found(e, key, nil)
			continue
		}
		pos++ // past '='
		if pos >= n || line[pos] <= ' ' {
			s.found(e, key, nil)
			continue
		}
		if line[pos] != '"' {
			start = pos
			for pos < n && line[pos] > ' ' {
				if line[pos] == '=' || line[pos] == '"' {
					return false
				}
				pos++
			}
			s.found(e, key, line[start:pos])
			continue
		}
		// A quoted value.
		start = pos
		esc, hasEsc := false, false
		closed := false
		for pos++; pos < n; pos++ {
			c := line[pos]
			if esc {
				esc = false
				continue
			}
			if c == '\\' {
				hasEsc, esc = true, true
				continue
			}
			if c == '"' {
				closed = true
				break
			}
		}
		if !closed {
			return false
		}
		raw := line[start+1 : pos]
		pos++
		if !hasEsc {
			s.found(e, key, raw)
			continue
		}
		v, ok := s.unquote(raw)
		if !ok {
			return false
		}
		s.found(e, key, v)
	}
}

func (s *logfmtStage) found(e *pipeline.Entry, key, value []byte) {
	for i := range s.keys {
		k := &s.keys[i]
		if k.key != string(key) {
			continue
		}
		if !s.reserved {
			s.slab.reserve(e, s.nnames)
			s.reserved = true
		}
		v := aliasString(value)
		for _, name := range k.names {
			e.Extracted.Set(name, v)
		}
		return
	}
}

// unquote decodes a quoted value with escapes (raw is without its quotes)
// as go-logfmt does: JSON escapes plus \', control characters rejected,
// invalid UTF-8 replaced.
func (s *logfmtStage) unquote(raw []byte) ([]byte, bool) {
	dst := s.arena.appendStart(len(raw) + 2*utf8.UTFMax)
	for r := 0; r < len(raw); {
		c := raw[r]
		switch {
		case c == '\\':
			r++
			if r >= len(raw) {
				return nil, false
			}
			switch raw[r] {
			case '"', '\\', '/', '\'':
				dst = append(dst, raw[r])
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := logfmtU4(raw[r-1:])
				if rr < 0 {
					return nil, false
				}
				r += 5
				if utf16.IsSurrogate(rr) {
					if d := utf16.DecodeRune(rr, logfmtU4(raw[r:])); d != utf8.RuneError {
						dst = utf8.AppendRune(dst, d)
						r += 6
						continue
					}
					rr = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default:
				return nil, false
			}
			r++
		case c == '"' || c < ' ':
			return nil, false
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			r++
		default:
			rr, size := utf8.DecodeRune(raw[r:])
			r += size
			dst = utf8.AppendRune(dst, rr)
		}
	}
	return s.arena.commit(dst), true
}

// logfmtU4 decodes \uXXXX at the start of b, or returns -1.
func logfmtU4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	return jsonstr.Hex4(b[2:6])
}
