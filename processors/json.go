package processors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/jmespath/go-jmespath"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/jsonstr"
	"github.com/vigilhq/vigil/pipeline"
)

// The json stage: Promtail's `json` stage. Every expression is compiled
// with go-jmespath, so configs are checked exactly as Promtail checks them.
// Expressions that only name keys (`level`, `a.b`, `"grpc.stream"`) are
// answered by a single pass of a validating JSON scanner over the line,
// which pulls values out without building a map; anything else is
// evaluated by go-jmespath on a decoded document.
//
// Values follow Promtail's conversions, kept as strings: a string as is,
// a number as Go formats a float64 ('f', shortest), true/false, and an
// object or array as compact JSON text. A JSON null or a missing key
// removes the key from the extracted data (Promtail stores a nil that no
// later stage can use).

func init() {
	pipeline.RegisterProcessor("json", newJSONStage)
}

type jsonConfig struct {
	Expressions   yaml.Node `yaml:"expressions"`
	Source        *string   `yaml:"source"`
	DropMalformed bool      `yaml:"drop_malformed"`
}

type jsonStage struct {
	source        *string
	dropMalformed bool
	x             *jsonExtractor

	errMalformed prometheus.Counter
	errSource    prometheus.Counter
	dropped      prometheus.Counter
}

func newJSONStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg jsonConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	if err := parserCheckSource(env, node, cfg.Source); err != nil {
		return nil, err
	}
	exprNode := pipeline.KeyNode(node, "expressions")
	if exprNode == nil || exprNode.Kind == yaml.ScalarNode && exprNode.Tag == "!!null" {
		return nil, env.Decoder.Errorf(node, "json stage: expressions is required")
	}
	if exprNode.Kind != yaml.MappingNode {
		return nil, env.Decoder.Errorf(exprNode, "json stage: expressions must be a mapping of extracted names to JMESPath expressions")
	}
	if len(exprNode.Content) == 0 {
		return nil, env.Decoder.Errorf(exprNode, "json stage: expressions is required")
	}
	var exprs []jsonExprSpec
	seen := map[string]bool{}
	for i := 0; i+1 < len(exprNode.Content); i += 2 {
		k, v := exprNode.Content[i], exprNode.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, env.Decoder.Errorf(k, "json stage: expression names must be strings")
		}
		if seen[k.Value] {
			return nil, env.Decoder.Errorf(k, "json stage: duplicate expression name %q", k.Value)
		}
		seen[k.Value] = true
		expr := ""
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		case v.Kind == yaml.ScalarNode && v.Tag == "!!str":
			expr = v.Value
		default:
			return nil, env.Decoder.Errorf(v, "json stage: the expression for %q must be a string", k.Value)
		}
		if expr == "" {
			// As in Promtail, an empty expression means the key itself.
			expr = k.Value
		}
		exprs = append(exprs, jsonExprSpec{name: k.Value, expr: expr, at: v})
	}
	x, err := newJSONExtractor(exprs, func(s jsonExprSpec, err error) error {
		return env.Decoder.Errorf(s.at, "json stage: could not compile JMESPath expression %q for %q: %v", s.expr, s.name, err)
	})
	if err != nil {
		return nil, err
	}
	c := counters{env}
	return &jsonStage{
		source:        cfg.Source,
		dropMalformed: cfg.DropMalformed,
		x:             x,
		errMalformed:  c.stageError("malformed_json"),
		errSource:     c.stageError("source_missing"),
		dropped:       c.dropped("malformed_json"),
	}, nil
}

func (j *jsonStage) Process(b *pipeline.Batch) {
	w := 0
	for i := range b.Entries {
		e := &b.Entries[i]
		if j.entry(e) {
			if w != i {
				b.Entries[w] = *e
			}
			w++
		}
	}
	clear(b.Entries[w:])
	b.Entries = b.Entries[:w]
}

// entry processes one entry and reports whether it stays in the batch.
func (j *jsonStage) entry(e *pipeline.Entry) bool {
	data := e.Line
	if j.source != nil {
		v, ok := extractedValue(e, *j.source)
		if !ok {
			j.errSource.Inc()
			return true
		}
		data = aliasBytes(v)
	}
	if j.x.extract(e, data) {
		return true
	}
	if j.dropMalformed {
		j.dropped.Inc()
		return false
	}
	j.errMalformed.Inc()
	return true
}

// parserCheckSource rejects `source: ""`, which Promtail rejects too.
func parserCheckSource(env pipeline.Env, node *yaml.Node, source *string) error {
	if source != nil && *source == "" {
		at := pipeline.KeyNode(node, "source")
		if at == nil {
			at = node
		}
		return env.Decoder.Errorf(at, "source must not be empty; leave it out to use the log line")
	}
	return nil
}

// aliasBytes views s as bytes without copying. The bytes must never be
// written.
func aliasBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// aliasString views b as a string without copying. Extracted values point
// into the line this way: lines live as long as their batch.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// parserArena hands out memory for values a stage builds (unescaped
// strings, joined lines) so they do not cost an allocation each. Memory
// handed out is never written again: extracted values and lines keep
// pointing at it for as long as their batch lives, and the garbage
// collector frees a chunk once nothing points into it.
type parserArena struct {
	buf []byte
}

const parserArenaChunk = 32 << 10

// alloc returns n fresh bytes.
func (a *parserArena) alloc(n int) []byte {
	if n > parserArenaChunk/4 {
		return make([]byte, n)
	}
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, parserArenaChunk)
	}
	s := a.buf[len(a.buf) : len(a.buf)+n : len(a.buf)+n]
	a.buf = a.buf[:len(a.buf)+n]
	return s
}

// appendStart returns the arena's free tail for appending a value of
// unknown length; commit fixes what was appended.
func (a *parserArena) appendStart(atLeast int) []byte {
	if cap(a.buf)-len(a.buf) < atLeast {
		size := parserArenaChunk
		if atLeast > size/4 {
			return make([]byte, 0, atLeast)
		}
		a.buf = make([]byte, 0, size)
	}
	return a.buf[len(a.buf):len(a.buf)]
}

// commit takes the bytes appended to a slice from appendStart. If the
// append outgrew the arena it reallocated, and the arena is untouched.
func (a *parserArena) commit(v []byte) []byte {
	if len(v) == 0 {
		return v
	}
	end := len(a.buf) + len(v)
	if end <= cap(a.buf) && &a.buf[:end][len(a.buf)] == &v[0] {
		a.buf = a.buf[:end]
		return v[:len(v):len(v)]
	}
	return v
}

// parserFieldSlab gives entries room for extracted fields out of shared chunks,
// so filling an empty Extracted does not allocate per entry. Each entry
// gets a window of its own (full slice expressions), so an append beyond
// it reallocates instead of spilling into a neighbour's window.
type parserFieldSlab struct {
	free []pipeline.Field
}

const parserFieldSlabChunk = 1024

// reserve makes room for n more fields in e.Extracted.
func (s *parserFieldSlab) reserve(e *pipeline.Entry, n int) {
	have := len(e.Extracted)
	if cap(e.Extracted)-have >= n {
		return
	}
	need := have + n
	if len(s.free) < need {
		s.free = make([]pipeline.Field, max(need, parserFieldSlabChunk))
	}
	dst := s.free[:have:need]
	copy(dst, e.Extracted)
	e.Extracted = dst
	s.free = s.free[need:]
}

// ---------------------------------------------------------------------------
// Expressions

type jsonExprSpec struct {
	name, expr string
	at         *yaml.Node
}

type jsonExpr struct {
	name  string
	path  []string // keys to follow, for simple expressions; nil otherwise
	first int      // index of path[0] in jsonExtractor.keys
	jp    *jmespath.JMESPath
}

// jsonExtractor evaluates a fixed set of expressions on JSON documents.
// The json and docker stages share it.
type jsonExtractor struct {
	exprs []jsonExpr
	keys  []string // distinct first keys of the simple expressions
	spans []jsonSpan
	scan  jsonScanner
	vals  jsonText
	slab  parserFieldSlab
}

// jsonText turns scanned values into extracted strings.
type jsonText struct {
	arena  parserArena
	numBuf []byte
}

func newJSONExtractor(specs []jsonExprSpec, compileErr func(jsonExprSpec, error) error) (*jsonExtractor, error) {
	x := &jsonExtractor{}
	for _, s := range specs {
		jp, err := jmespath.Compile(s.expr)
		if err != nil {
			return nil, compileErr(s, err)
		}
		ex := jsonExpr{name: s.name, jp: jp}
		if path, ok := jmespathFieldPath(s.expr); ok {
			ex.path = path
			ex.first = -1
			for i, k := range x.keys {
				if k == path[0] {
					ex.first = i
				}
			}
			if ex.first < 0 {
				ex.first = len(x.keys)
				x.keys = append(x.keys, path[0])
			}
		}
		x.exprs = append(x.exprs, ex)
	}
	x.spans = make([]jsonSpan, len(x.keys))
	return x, nil
}

// jmespathFieldPath recognises expressions that only follow object keys:
// identifiers, unquoted or quoted, joined by dots, with no whitespace.
// Anything else goes to go-jmespath.
func jmespathFieldPath(expr string) ([]string, bool) {
	var path []string
	i := 0
	for {
		if i >= len(expr) {
			return nil, false
		}
		switch c := expr[i]; {
		case c == '"':
			j := i + 1
			for j < len(expr) && expr[j] != '"' {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(expr) {
				return nil, false
			}
			var key string
			if err := json.Unmarshal([]byte(expr[i:j+1]), &key); err != nil {
				return nil, false
			}
			path = append(path, key)
			i = j + 1
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i + 1
			for j < len(expr) && (expr[j] == '_' || expr[j] >= 'a' && expr[j] <= 'z' || expr[j] >= 'A' && expr[j] <= 'Z' || expr[j] >= '0' && expr[j] <= '9') {
				j++
			}
			path = append(path, expr[i:j])
			i = j
		default:
			return nil, false
		}
		if i == len(expr) {
			return path, true
		}
		if expr[i] != '.' {
			return nil, false
		}
		i++
	}
}

// extract evaluates the expressions on data and stores the results in
// e.Extracted. It reports false when data is not a JSON object (or null),
// which Promtail calls malformed; e is then left unchanged.
func (x *jsonExtractor) extract(e *pipeline.Entry, data []byte) bool {
	kind, ok := x.scan.scanTop(data, x.keys, x.spans)
	if !ok {
		return false
	}
	x.slab.reserve(e, len(x.exprs))
	var tree any
	built := false
	for i := range x.exprs {
		ex := &x.exprs[i]
		if ex.path != nil {
			if kind == jsonNull {
				e.Extracted.Delete(ex.name)
				continue
			}
			sp := x.spans[ex.first]
			for _, k := range ex.path[1:] {
				sp = x.scan.member(data, sp, k)
			}
			if v, ok := x.vals.text(data, sp); ok {
				e.Extracted.Set(ex.name, v)
			} else {
				e.Extracted.Delete(ex.name)
			}
			continue
		}
		if !built {
			built = true
			if kind == jsonNull {
				// Promtail decodes null into a nil map, which is what
				// expressions then see.
				tree = map[string]any(nil)
			} else {
				tree, _ = jsonTree(data, jsonSkipWS(data, 0))
			}
		}
		r, err := jmespathSearch(ex.jp, tree)
		if err != nil {
			// Promtail skips an expression that fails at run time and
			// leaves what was extracted before.
			continue
		}
		switch v := r.(type) {
		case nil:
			e.Extracted.Delete(ex.name)
		case string:
			e.Extracted.Set(ex.name, v)
		case float64:
			e.Extracted.Set(ex.name, strconv.FormatFloat(v, 'f', -1, 64))
		case bool:
			e.Extracted.Set(ex.name, strconv.FormatBool(v))
		default:
			out, err := json.Marshal(v)
			if err != nil {
				continue
			}
			e.Extracted.Set(ex.name, aliasString(out))
		}
	}
	return true
}

// jmespathSearch runs a compiled expression, turning a panic inside the
// library into an error: a log line must never crash the agent.
func jmespathSearch(jp *jmespath.JMESPath, data any) (r any, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("jmespath: %v", p)
		}
	}()
	return jp.Search(data)
}

// text converts the value at sp the way Promtail converts what it
// extracted. ok is false for null and for a missing value.
func (x *jsonText) text(data []byte, sp jsonSpan) (string, bool) {
	switch sp.kind {
	case jsonString:
		raw := data[sp.start+1 : sp.end-1]
		if !sp.esc {
			return aliasString(raw), true
		}
		dst := x.arena.appendStart(len(raw))
		dst = jsonstr.Unescape(dst, raw)
		return aliasString(x.arena.commit(dst)), true
	case jsonNumber:
		return x.numberText(data[sp.start:sp.end]), true
	case jsonTrue:
		return "true", true
	case jsonFalse:
		return "false", true
	case jsonObject, jsonArray:
		raw := data[sp.start:sp.end]
		if !jsonHasSpace(raw) {
			return aliasString(raw), true
		}
		dst := x.arena.appendStart(len(raw))
		dst = appendJSONCompact(dst, raw)
		return aliasString(x.arena.commit(dst)), true
	}
	return "", false
}

// numberText renders a JSON number as Promtail does: decoded to a float64
// and formatted back. Most numbers read the same both ways and are
// returned without a copy.
func (x *jsonText) numberText(raw []byte) string {
	if jsonPlainInt(raw) {
		return aliasString(raw)
	}
	f, _ := strconv.ParseFloat(aliasString(raw), 64)
	x.numBuf = strconv.AppendFloat(x.numBuf[:0], f, 'f', -1, 64)
	if bytes.Equal(x.numBuf, raw) {
		return aliasString(raw)
	}
	dst := x.arena.alloc(len(x.numBuf))
	copy(dst, x.numBuf)
	return aliasString(dst)
}

// jsonPlainInt reports whether raw is an integer a float64 holds exactly
// and formats back unchanged: no fraction or exponent, at most 15 digits.
func jsonPlainInt(raw []byte) bool {
	d := raw
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || len(d) > 15 {
		return false
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// Scanner

const (
	jsonNone byte = iota // absent
	jsonString
	jsonNumber
	jsonTrue
	jsonFalse
	jsonNull
	jsonObject
	jsonArray
)

// jsonMaxDepth is the nesting encoding/json and json-iterator accept.
const jsonMaxDepth = 10000

// jsonSpan locates a value: data[start:end], quotes included for strings.
type jsonSpan struct {
	start, end int
	kind       byte
	esc        bool // a string with escape sequences
}

// jsonScanner validates JSON per RFC 8259 without building values.
type jsonScanner struct {
	stack  []byte
	keyBuf []byte
}

// jsonSwarHighs has the high bit of every byte of a word set.
const jsonSwarHighs = 0x8080808080808080

func jsonSkipWS(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func jsonScanNumber(data []byte, i int) (int, bool) {
	n := len(data)
	if data[i] == '-' {
		i++
	}
	if i >= n {
		return 0, false
	}
	switch {
	case data[i] == '0':
		i++
	case data[i] >= '1' && data[i] <= '9':
		i++
		for i < n && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		return 0, false
	}
	if i < n && data[i] == '.' {
		i++
		if i >= n || data[i] < '0' || data[i] > '9' {
			return 0, false
		}
		for i < n && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < n && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= n || data[i] < '0' || data[i] > '9' {
			return 0, false
		}
		for i < n && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	return i, true
}

func jsonLiteral(data []byte, i int, lit string) (int, bool) {
	if len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit {
		return i + len(lit), true
	}
	return 0, false
}

// value scans one value starting at data[i] (not whitespace) and returns
// its span.
func (s *jsonScanner) value(data []byte, i int) (jsonSpan, bool) {
	if i >= len(data) {
		return jsonSpan{}, false
	}
	sp := jsonSpan{start: i}
	var ok bool
	switch c := data[i]; {
	case c == '"':
		sp.kind = jsonString
		sp.end, sp.esc, ok = jsonstr.Scan(data, i)
	case c == '{':
		sp.kind = jsonObject
		sp.end, ok = s.skipContainer(data, i)
	case c == '[':
		sp.kind = jsonArray
		sp.end, ok = s.skipContainer(data, i)
	case c == 't':
		sp.kind = jsonTrue
		sp.end, ok = jsonLiteral(data, i, "true")
	case c == 'f':
		sp.kind = jsonFalse
		sp.end, ok = jsonLiteral(data, i, "false")
	case c == 'n':
		sp.kind = jsonNull
		sp.end, ok = jsonLiteral(data, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		sp.kind = jsonNumber
		sp.end, ok = jsonScanNumber(data, i)
	}
	return sp, ok
}

// skipContainer scans the object or array at data[i] without recursion,
// so deep nesting cannot exhaust the stack.
func (s *jsonScanner) skipContainer(data []byte, i int) (int, bool) {
	stack := s.stack[:0]
	defer func() { s.stack = stack[:0] }()
	n := len(data)
	for {
		// data[i] starts a value.
		switch data[i] {
		case '{':
			if len(stack) >= jsonMaxDepth {
				return 0, false
			}
			stack = append(stack, '}')
			i = jsonSkipWS(data, i+1)
			if i < n && data[i] == '}' {
				stack = stack[:len(stack)-1]
				i++
				break
			}
			var ok bool
			if i, ok = s.memberKey(data, i); !ok {
				return 0, false
			}
			continue
		case '[':
			if len(stack) >= jsonMaxDepth {
				return 0, false
			}
			stack = append(stack, ']')
			i = jsonSkipWS(data, i+1)
			if i >= n {
				return 0, false
			}
			if data[i] == ']' {
				stack = stack[:len(stack)-1]
				i++
				break
			}
			continue
		default:
			sp, ok := s.value(data, i)
			if !ok {
				return 0, false
			}
			i = sp.end
		}
		// After a value: close containers or move to the next element.
		for {
			if len(stack) == 0 {
				return i, true
			}
			i = jsonSkipWS(data, i)
			if i >= n {
				return 0, false
			}
			top := stack[len(stack)-1]
			if data[i] == top {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if data[i] != ',' {
				return 0, false
			}
			i = jsonSkipWS(data, i+1)
			if top == '}' {
				var ok bool
				if i, ok = s.memberKey(data, i); !ok {
					return 0, false
				}
			}
			if i >= n {
				return 0, false
			}
			break
		}
	}
}

// memberKey scans `"key" :` at data[i] and returns where the value starts.
func (s *jsonScanner) memberKey(data []byte, i int) (int, bool) {
	if i >= len(data) || data[i] != '"' {
		return 0, false
	}
	end, _, ok := jsonstr.Scan(data, i)
	if !ok {
		return 0, false
	}
	i = jsonSkipWS(data, end)
	if i >= len(data) || data[i] != ':' {
		return 0, false
	}
	i = jsonSkipWS(data, i+1)
	if i >= len(data) {
		return 0, false
	}
	return i, true
}

// keyIs compares the key string at data[start:end] (quotes included)
// with k.
func (s *jsonScanner) keyIs(data []byte, start, end int, esc bool, k string) bool {
	raw := data[start+1 : end-1]
	if !esc {
		return string(raw) == k
	}
	s.keyBuf = jsonstr.Unescape(s.keyBuf[:0], raw)
	return string(s.keyBuf) == k
}

// scanTop validates data as one JSON document. For an object it records in
// spans where the value of each key in keys is (the last one, as a
// decoder filling a map keeps). ok is false unless the document is an
// object or null, the two things Promtail can decode into a map.
func (s *jsonScanner) scanTop(data []byte, keys []string, spans []jsonSpan) (kind byte, ok bool) {
	for i := range spans {
		spans[i] = jsonSpan{}
	}
	n := len(data)
	i := jsonSkipWS(data, 0)
	if i >= n {
		return 0, false
	}
	switch data[i] {
	case 'n':
		end, ok := jsonLiteral(data, i, "null")
		if !ok || jsonSkipWS(data, end) != n {
			return 0, false
		}
		return jsonNull, true
	case '{':
	default:
		return 0, false
	}
	i = jsonSkipWS(data, i+1)
	if i < n && data[i] == '}' {
		i++
	} else {
		for {
			if i >= n || data[i] != '"' {
				return 0, false
			}
			kend, kesc, ok := jsonstr.Scan(data, i)
			if !ok {
				return 0, false
			}
			kstart := i
			i = jsonSkipWS(data, kend)
			if i >= n || data[i] != ':' {
				return 0, false
			}
			i = jsonSkipWS(data, i+1)
			sp, ok := s.value(data, i)
			if !ok {
				return 0, false
			}
			for k := range keys {
				if s.keyIs(data, kstart, kend, kesc, keys[k]) {
					spans[k] = sp
				}
			}
			i = jsonSkipWS(data, sp.end)
			if i >= n {
				return 0, false
			}
			if data[i] == '}' {
				i++
				break
			}
			if data[i] != ',' {
				return 0, false
			}
			i = jsonSkipWS(data, i+1)
		}
	}
	if jsonSkipWS(data, i) != n {
		return 0, false
	}
	return jsonObject, true
}

// member finds key in the object at sp (already validated). The result is
// absent when sp is not an object or has no such key.
func (s *jsonScanner) member(data []byte, sp jsonSpan, key string) jsonSpan {
	if sp.kind != jsonObject {
		return jsonSpan{}
	}
	var found jsonSpan
	i := jsonSkipWS(data, sp.start+1)
	if i < sp.end && data[i] == '}' {
		return found
	}
	for i < sp.end {
		kend, kesc, ok := jsonstr.Scan(data, i)
		if !ok {
			return jsonSpan{}
		}
		kstart := i
		i = jsonSkipWS(data, kend)
		i = jsonSkipWS(data, i+1) // past ':'
		v, ok := s.value(data, i)
		if !ok {
			return jsonSpan{}
		}
		if s.keyIs(data, kstart, kend, kesc, key) {
			found = v
		}
		i = jsonSkipWS(data, v.end)
		if i >= sp.end || data[i] == '}' {
			break
		}
		i = jsonSkipWS(data, i+1) // past ','
	}
	return found
}

// jsonHasSpace reports whether raw (a validated value) has whitespace
// outside its strings.
func jsonHasSpace(raw []byte) bool {
	inStr := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case ' ', '\t', '\n', '\r':
			return true
		}
	}
	return false
}

// appendJSONCompact appends raw (a validated value) without the whitespace
// outside its strings.
func appendJSONCompact(dst, raw []byte) []byte {
	inStr := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inStr {
			dst = append(dst, c)
			switch c {
			case '\\':
				i++
				dst = append(dst, raw[i])
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			inStr = true
		}
		dst = append(dst, c)
	}
	return dst
}

// jsonTree decodes a validated value into the types encoding/json uses
// (map[string]any, []any, float64, string, bool, nil) for go-jmespath.
// Strings without escapes point into data.
func jsonTree(data []byte, i int) (any, int) {
	switch c := data[i]; {
	case c == '{':
		m := map[string]any{}
		i = jsonSkipWS(data, i+1)
		if data[i] == '}' {
			return m, i + 1
		}
		for {
			kend, kesc, _ := jsonstr.Scan(data, i)
			k := jsonTreeString(data[i+1:kend-1], kesc)
			i = jsonSkipWS(data, kend)
			i = jsonSkipWS(data, i+1)
			var v any
			v, i = jsonTree(data, i)
			m[k] = v
			i = jsonSkipWS(data, i)
			if data[i] == '}' {
				return m, i + 1
			}
			i = jsonSkipWS(data, i+1)
		}
	case c == '[':
		a := []any{}
		i = jsonSkipWS(data, i+1)
		if data[i] == ']' {
			return a, i + 1
		}
		for {
			var v any
			v, i = jsonTree(data, i)
			a = append(a, v)
			i = jsonSkipWS(data, i)
			if data[i] == ']' {
				return a, i + 1
			}
			i = jsonSkipWS(data, i+1)
		}
	case c == '"':
		end, esc, _ := jsonstr.Scan(data, i)
		return jsonTreeString(data[i+1:end-1], esc), end
	case c == 't':
		return true, i + 4
	case c == 'f':
		return false, i + 5
	case c == 'n':
		return nil, i + 4
	default:
		end, _ := jsonScanNumber(data, i)
		f, err := strconv.ParseFloat(aliasString(data[i:end]), 64)
		if err != nil && !math.IsInf(f, 0) {
			f = 0
		}
		return f, end
	}
}

func jsonTreeString(raw []byte, esc bool) string {
	if !esc {
		return aliasString(raw)
	}
	return string(jsonstr.Unescape(nil, raw))
}
