package processors

import (
	"bytes"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vigilhq/vigil/pipeline"
)

// This file holds the small LogQL subset Promtail's match stage accepts: a
// stream selector `{a="b", c!="d", e=~"re", f!~"re"}` followed by any
// number of line filters `|= "x"`, `!= "x"`, `|~ "re"`, `!~ "re"`. Promtail
// parses it with its own grammar (clients/pkg/logentry/logql), not Loki's
// query language: label filters, parsers and `or` are not part of it.
// Loki's package is AGPL, so this is an independent parser.

// logqlOp is the operator of a label matcher or line filter.
type logqlOp uint8

const (
	logqlEq  logqlOp = iota // `=` on a label, `|=` (contains) on the line
	logqlNeq                // `!=`
	logqlRe                 // `=~` on a label (anchored), `|~` on the line (unanchored)
	logqlNre                // `!~`
)

func (o logqlOp) String() string {
	switch o {
	case logqlEq:
		return "="
	case logqlNeq:
		return "!="
	case logqlRe:
		return "=~"
	}
	return "!~"
}

// logqlLabelMatcher tests one label of the stream. A missing label has the
// value "", as in Prometheus and Loki.
type logqlLabelMatcher struct {
	name, value string
	op          logqlOp
	re          *regexp.Regexp
	// any is set when the regexp is `.*`, which matches every value: the
	// common "label is anything" idiom costs no regexp run.
	any bool
	// literal is set when the regexp has no meta characters, so equality
	// with lit decides it.
	literal bool
	lit     string
}

func (m *logqlLabelMatcher) matches(v string) bool {
	switch m.op {
	case logqlEq:
		return v == m.value
	case logqlNeq:
		return v != m.value
	}
	var ok bool
	switch {
	case m.any:
		ok = true
	case m.literal:
		ok = v == m.lit
	default:
		ok = m.re.MatchString(v)
	}
	if m.op == logqlNre {
		return !ok
	}
	return ok
}

// logqlLineFilter tests the log line.
type logqlLineFilter struct {
	op logqlOp
	// lit is the text to look for: the filter's for |= and !=, and for
	// |~ and !~ when the regexp only looks for a literal (non-nil then).
	lit []byte
	re  *regexp.Regexp
}

func (f *logqlLineFilter) matches(line []byte) bool {
	switch f.op {
	case logqlEq:
		return bytes.Contains(line, f.lit)
	case logqlNeq:
		return !bytes.Contains(line, f.lit)
	}
	var ok bool
	if f.lit != nil {
		ok = bytes.Contains(line, f.lit)
	} else {
		ok = f.re.Match(line)
	}
	if f.op == logqlRe {
		return ok
	}
	return !ok
}

// logqlContainsLiteral reports whether the unanchored regexp re matches exactly
// the lines that contain some literal text: "error", or ".*noisy error.*"
// as Promtail's documentation writes it (a .* at either end changes
// nothing when searching). Those filters then need no regexp run.
func logqlContainsLiteral(re string) (string, bool) {
	parsed, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return "", false
	}
	parsed = parsed.Simplify()
	anyRun := func(r *syntax.Regexp) bool {
		return r.Op == syntax.OpStar && len(r.Sub) == 1 &&
			(r.Sub[0].Op == syntax.OpAnyChar || r.Sub[0].Op == syntax.OpAnyCharNotNL)
	}
	subs := []*syntax.Regexp{parsed}
	if parsed.Op == syntax.OpConcat {
		subs = parsed.Sub
	}
	for len(subs) > 0 && anyRun(subs[0]) {
		subs = subs[1:]
	}
	for len(subs) > 0 && anyRun(subs[len(subs)-1]) {
		subs = subs[:len(subs)-1]
	}
	switch {
	case len(subs) == 0:
		return "", true
	case len(subs) == 1 && subs[0].Op == syntax.OpEmptyMatch:
		return "", true
	case len(subs) == 1 && subs[0].Op == syntax.OpLiteral && subs[0].Flags&syntax.FoldCase == 0:
		// A regexp reads an invalid UTF-8 byte of the line as U+FFFD,
		// which a byte search would not find.
		if slices.Contains(subs[0].Rune, utf8.RuneError) {
			return "", false
		}
		return string(subs[0].Rune), true
	}
	return "", false
}

// logqlSelector is a parsed selector with its line filters; an entry matches
// when every label matcher and every filter does.
type logqlSelector struct {
	matchers []logqlLabelMatcher
	filters  []logqlLineFilter
}

func (s *logqlSelector) matchesLabels(ls pipeline.Labels) bool {
	for i := range s.matchers {
		m := &s.matchers[i]
		if !m.matches(ls.Get(m.name)) {
			return false
		}
	}
	return true
}

func (s *logqlSelector) matchesLine(line []byte) bool {
	for i := range s.filters {
		if !s.filters[i].matches(line) {
			return false
		}
	}
	return true
}

// matches reports whether the entry is selected: labels first, since
// they are cheaper than scanning the line.
func (s *logqlSelector) matches(e *pipeline.Entry) bool {
	return s.matchesLabels(e.Labels) && s.matchesLine(e.Line)
}

// String renders the selector back in LogQL.
func (s *logqlSelector) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range s.matchers {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.name)
		b.WriteString(m.op.String())
		b.WriteString(strconv.Quote(m.value))
	}
	b.WriteByte('}')
	for _, f := range s.filters {
		b.WriteByte(' ')
		switch f.op {
		case logqlEq:
			b.WriteString("|=")
		case logqlNeq:
			b.WriteString("!=")
		case logqlRe:
			b.WriteString("|~")
		default:
			b.WriteString("!~")
		}
		b.WriteByte(' ')
		if f.re != nil {
			b.WriteString(strconv.Quote(f.re.String()))
		} else {
			b.WriteString(strconv.Quote(string(f.lit)))
		}
	}
	return b.String()
}

// logqlError is a syntax error at a byte offset of the selector text.
type logqlError struct {
	pos int
	msg string
}

func (e *logqlError) Error() string {
	return fmt.Sprintf("at character %d: %s", e.pos+1, e.msg)
}

type logqlTokenKind uint8

const (
	lqEOF logqlTokenKind = iota
	lqIdent
	lqString
	lqOpenBrace
	lqCloseBrace
	lqComma
	lqEq      // =
	lqNeq     // !=
	lqRe      // =~
	lqNre     // !~
	lqPipeEq  // |=
	lqPipeRe  // |~
	lqInvalid // anything else
)

type logqlToken struct {
	kind logqlTokenKind
	pos  int
	text string // identifier, or the unquoted string
}

func (t logqlToken) describe() string {
	switch t.kind {
	case lqEOF:
		return "end of input"
	case lqIdent:
		return fmt.Sprintf("identifier %q", t.text)
	case lqString:
		return fmt.Sprintf("string %q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

type logqlLexer struct {
	src string
	pos int
}

func logqlIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func logqlIdentChar(c byte) bool { return logqlIdentStart(c) || (c >= '0' && c <= '9') }

func (l *logqlLexer) next() (logqlToken, error) {
	for l.pos < len(l.src) {
		switch l.src[l.pos] {
		case ' ', '\t', '\n', '\r':
			l.pos++
			continue
		}
		break
	}
	start := l.pos
	if start >= len(l.src) {
		return logqlToken{kind: lqEOF, pos: start}, nil
	}
	c := l.src[start]
	two := ""
	if start+1 < len(l.src) {
		two = l.src[start : start+2]
	}
	tok := func(k logqlTokenKind, n int) (logqlToken, error) {
		l.pos += n
		return logqlToken{kind: k, pos: start, text: l.src[start:l.pos]}, nil
	}
	switch two {
	case "!=":
		return tok(lqNeq, 2)
	case "=~":
		return tok(lqRe, 2)
	case "!~":
		return tok(lqNre, 2)
	case "|=":
		return tok(lqPipeEq, 2)
	case "|~":
		return tok(lqPipeRe, 2)
	}
	switch {
	case c == '{':
		return tok(lqOpenBrace, 1)
	case c == '}':
		return tok(lqCloseBrace, 1)
	case c == ',':
		return tok(lqComma, 1)
	case c == '=':
		return tok(lqEq, 1)
	case c == '"':
		return l.quoted(start)
	case c == '`':
		// Loki's own LogQL takes raw strings; accepting them lets a
		// selector be copied from a Grafana query.
		end := strings.IndexByte(l.src[start+1:], '`')
		if end < 0 {
			return logqlToken{}, &logqlError{start, "unterminated raw string"}
		}
		l.pos = start + 1 + end + 1
		return logqlToken{kind: lqString, pos: start, text: l.src[start+1 : start+1+end]}, nil
	case logqlIdentStart(c):
		l.pos++
		for l.pos < len(l.src) && logqlIdentChar(l.src[l.pos]) {
			l.pos++
		}
		return logqlToken{kind: lqIdent, pos: start, text: l.src[start:l.pos]}, nil
	}
	return tok(lqInvalid, 1)
}

// quoted reads a double-quoted string with Go escapes, as Promtail's
// scanner does.
func (l *logqlLexer) quoted(start int) (logqlToken, error) {
	i := start + 1
	for i < len(l.src) {
		switch l.src[i] {
		case '\\':
			i += 2
			continue
		case '\n':
			return logqlToken{}, &logqlError{start, "newline in string"}
		case '"':
			raw := l.src[start : i+1]
			s, err := strconv.Unquote(raw)
			if err != nil {
				return logqlToken{}, &logqlError{start, fmt.Sprintf("invalid string %s: %v", raw, err)}
			}
			l.pos = i + 1
			return logqlToken{kind: lqString, pos: start, text: s}, nil
		}
		i++
	}
	return logqlToken{}, &logqlError{start, "unterminated string"}
}

// parseLogQLSelector parses a selector with optional line filters.
func parseLogQLSelector(src string) (*logqlSelector, error) {
	l := &logqlLexer{src: src}
	tok, err := l.next()
	if err != nil {
		return nil, err
	}
	expect := func(kind logqlTokenKind, what string) (logqlToken, error) {
		t, err := l.next()
		if err != nil {
			return t, err
		}
		if t.kind != kind {
			return t, &logqlError{t.pos, fmt.Sprintf("expected %s, found %s", what, t.describe())}
		}
		return t, nil
	}
	if tok.kind != lqOpenBrace {
		return nil, &logqlError{tok.pos, fmt.Sprintf("a selector starts with {, found %s", tok.describe())}
	}
	sel := &logqlSelector{}
	for {
		name, err := expect(lqIdent, "a label name")
		if err != nil {
			return nil, err
		}
		opTok, err := l.next()
		if err != nil {
			return nil, err
		}
		var op logqlOp
		switch opTok.kind {
		case lqEq:
			op = logqlEq
		case lqNeq:
			op = logqlNeq
		case lqRe:
			op = logqlRe
		case lqNre:
			op = logqlNre
		default:
			return nil, &logqlError{opTok.pos, fmt.Sprintf("expected one of = != =~ !~ after label %q, found %s", name.text, opTok.describe())}
		}
		val, err := expect(lqString, "a quoted value")
		if err != nil {
			return nil, err
		}
		m := logqlLabelMatcher{name: name.text, value: val.text, op: op}
		if op == logqlRe || op == logqlNre {
			if err := m.compile(); err != nil {
				return nil, &logqlError{val.pos, err.Error()}
			}
		}
		sel.matchers = append(sel.matchers, m)
		sep, err := l.next()
		if err != nil {
			return nil, err
		}
		if sep.kind == lqCloseBrace {
			break
		}
		if sep.kind != lqComma {
			return nil, &logqlError{sep.pos, fmt.Sprintf(`expected "," or "}", found %s`, sep.describe())}
		}
	}
	for {
		opTok, err := l.next()
		if err != nil {
			return nil, err
		}
		var op logqlOp
		switch opTok.kind {
		case lqEOF:
			return sel, nil
		case lqPipeEq:
			op = logqlEq
		case lqNeq:
			op = logqlNeq
		case lqPipeRe:
			op = logqlRe
		case lqNre:
			op = logqlNre
		default:
			return nil, &logqlError{opTok.pos, fmt.Sprintf("expected a line filter (|= != |~ !~) or the end, found %s", opTok.describe())}
		}
		val, err := expect(lqString, "a quoted filter value")
		if err != nil {
			return nil, err
		}
		f := logqlLineFilter{op: op}
		if op == logqlRe || op == logqlNre {
			re, err := regexp.Compile(val.text)
			if err != nil {
				return nil, &logqlError{val.pos, fmt.Sprintf("invalid regular expression %q: %v", val.text, err)}
			}
			f.re = re
			if lit, ok := logqlContainsLiteral(val.text); ok {
				f.lit = append([]byte{}, lit...)
			}
		} else {
			f.lit = []byte(val.text)
		}
		sel.filters = append(sel.filters, f)
	}
}

// compile prepares a regexp matcher the way Prometheus does: anchored at
// both ends, with . matching newlines.
func (m *logqlLabelMatcher) compile() error {
	re, err := regexp.Compile("^(?s:" + m.value + ")$")
	if err != nil {
		return fmt.Errorf("invalid regular expression %q: %w", m.value, err)
	}
	m.re = re
	if parsed, err := syntax.Parse(m.value, syntax.Perl|syntax.DotNL); err == nil {
		parsed = parsed.Simplify()
		switch {
		case parsed.Op == syntax.OpStar && len(parsed.Sub) == 1 && parsed.Sub[0].Op == syntax.OpAnyChar:
			m.any = true
		case parsed.Op == syntax.OpLiteral && parsed.Flags&syntax.FoldCase == 0 &&
			!slices.Contains(parsed.Rune, utf8.RuneError): // see logqlContainsLiteral
			m.literal = true
			m.lit = string(parsed.Rune)
		case parsed.Op == syntax.OpEmptyMatch:
			m.literal = true
		}
	}
	return nil
}
