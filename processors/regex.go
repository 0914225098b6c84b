package processors

import (
	"encoding/binary"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// The regex stage: Promtail's `regex` stage. Every named group of the
// first match goes into the extracted data (a group that did not take
// part gives ""), the line is left as it is.
//
// The expression is compiled with Go's regexp, as in Promtail, and that
// is what answers in general. Log regexes are mostly runs of character
// classes, literals, captures, optional parts and alternatives, which a
// backtracking matcher with the pruning below handles in close to one
// pass over the line: regexFast. It is several times faster than regexp
// and fills a reused capture slice instead of allocating one per line.
// It explores choices in the order Perl does, which is the order Go's
// leftmost-first semantics are defined by, so its answer is regexp's; an
// expression it does not cover, or a line that would make it work too
// hard, goes to regexp.

func init() {
	pipeline.RegisterProcessor("regex", newRegexStage)
}

type regexConfig struct {
	Expression string  `yaml:"expression"`
	Source     *string `yaml:"source"`
}

type regexGroup struct {
	index int
	name  string
}

type regexStage struct {
	m      *regexMatcher
	groups []regexGroup
	source *string
	slab   parserFieldSlab

	errNoMatch prometheus.Counter
	errSource  prometheus.Counter
}

func newRegexStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg regexConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	if err := parserCheckSource(env, node, cfg.Source); err != nil {
		return nil, err
	}
	m, err := compileStageRegex(env, node, "regex", cfg.Expression)
	if err != nil {
		return nil, err
	}
	s := &regexStage{m: m, source: cfg.Source}
	for i, name := range m.re.SubexpNames() {
		if i > 0 && name != "" {
			s.groups = append(s.groups, regexGroup{i, name})
		}
	}
	c := counters{env}
	s.errNoMatch = c.stageError("no_match")
	s.errSource = c.stageError("source_missing")
	return s, nil
}

// compileStageRegex compiles a stage's required expression key, with
// errors at its position.
func compileStageRegex(env pipeline.Env, node *yaml.Node, stage, expr string) (*regexMatcher, error) {
	at := pipeline.KeyNode(node, "expression")
	if expr == "" {
		if at == nil {
			at = node
		}
		return nil, env.Decoder.Errorf(at, "%s stage: expression is required", stage)
	}
	m, err := newRegexMatcher(expr)
	if err != nil {
		return nil, env.Decoder.Errorf(at, "%s stage: could not compile regular expression: %v", stage, err)
	}
	return m, nil
}

func (s *regexStage) Process(b *pipeline.Batch) {
	for i := range b.Entries {
		e := &b.Entries[i]
		input := aliasString(e.Line)
		if s.source != nil {
			v, ok := extractedValue(e, *s.source)
			if !ok {
				s.errSource.Inc()
				continue
			}
			input = v
		}
		m := s.m.find(input)
		if m == nil {
			s.errNoMatch.Inc()
			continue
		}
		s.slab.reserve(e, len(s.groups))
		for _, g := range s.groups {
			v := ""
			if m[2*g.index] >= 0 {
				v = input[m[2*g.index]:m[2*g.index+1]]
			}
			e.Extracted.Set(g.name, v)
		}
	}
}

// regexMatcher finds the leftmost-first match of a regexp with its
// submatches, through regexFast when the expression allows it.
type regexMatcher struct {
	re   *regexp.Regexp
	fast *regexFast
	caps []int
}

func newRegexMatcher(expr string) (*regexMatcher, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	m := &regexMatcher{re: re}
	if f, ok := compileRegexFast(expr); ok {
		m.fast = f
		m.caps = make([]int, 2*(re.NumSubexp()+1))
	}
	return m, nil
}

// find returns the submatch index pairs, as FindStringSubmatchIndex does,
// or nil. The slice is only valid until the next call.
func (m *regexMatcher) find(s string) []int {
	if m.fast != nil {
		switch m.fast.find(s, m.caps) {
		case rfFound:
			return m.caps
		case rfNotFound:
			return nil
		}
	}
	return m.re.FindStringSubmatchIndex(s)
}

// ---------------------------------------------------------------------------
// regexFast

// regexFast is a backtracking matcher for a subset of regular expressions:
// literals, character classes and runs of them (x*, x+, x?, greedy or
// lazy), captures, alternations, optional subexpressions (x? of anything
// it covers) and \A, \z. The expression becomes a graph where each node
// knows what follows it; matching walks it in continuation-passing style,
// so every choice is undone and the next one tried in Perl's order.
//
// Each node knows the bytes its path can start with, so a choice whose
// path cannot start with the next byte is skipped without a try: a run
// like \S+" gives back one byte, not every byte. A step budget bounds
// the work on one line; past it, the line goes to regexp, which is
// linear.
type regexFast struct {
	start    *regexFastNode
	anchored bool
	minLen   int

	// Match state, reused from line to line.
	s       string
	caps    []int
	steps   int
	aborted bool
	stack   []int
}

type regexFastOp uint8

const (
	rfLiteral regexFastOp = iota
	rfClass
	rfRepeat   // class repeated min..max times
	rfSplit    // try alt[0], then alt[1], ...
	rfCapStart // caps[cap] = position
	rfBeginText
	rfEndText
	rfMatch
)

type regexFastNode struct {
	op    regexFastOp
	lit   string
	class *regexFastClass
	min   int
	max   int // -1: unbounded
	lazy  bool
	cap   int // index into caps
	alt   []*regexFastNode
	next  *regexFastNode

	// The bytes a match from this node on can start with, and whether it
	// can match the empty string (null). Filled by regexFastFirst.
	first regexByteSet
	null  bool
	done  bool
}

// find results.
const (
	rfNotFound = iota
	rfFound
	rfGaveUp
)

// regexByteSet is a set of bytes.
type regexByteSet [4]uint64

func (s *regexByteSet) add(c byte)      { s[c>>6] |= 1 << (c & 63) }
func (s *regexByteSet) has(c byte) bool { return s[c>>6]&(1<<(c&63)) != 0 }
func (s *regexByteSet) union(o regexByteSet) {
	s[0], s[1], s[2], s[3] = s[0]|o[0], s[1]|o[1], s[2]|o[2], s[3]|o[3]
}

// regexFastClass is a set of runes, with a bitmap for ASCII.
type regexFastClass struct {
	ascii    [2]uint64
	ranges   []rune // the part from 0x80 up: pairs lo, hi
	nonASCII bool   // some rune from 0x80 up (U+FFFD stands for bad bytes)
	first    regexByteSet
	// Runs of these classes end at the end of the input, or at the next
	// newline: no need to step rune by rune.
	all, allButNL bool
}

func newRegexFastClass(ranges []rune) *regexFastClass {
	c := &regexFastClass{}
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		for r := lo; r <= hi && r < utf8.RuneSelf; r++ {
			c.ascii[r>>6] |= 1 << (r & 63)
			c.first.add(byte(r))
		}
		if hi >= utf8.RuneSelf {
			c.ranges = append(c.ranges, max(lo, utf8.RuneSelf), hi)
			c.nonASCII = true
		}
	}
	if c.nonASCII {
		// Any byte from 0x80 up may start (or be) a rune of the class.
		for b := 0x80; b <= 0xff; b++ {
			c.first.add(byte(b))
		}
	}
	switch {
	case len(ranges) == 2 && ranges[0] == 0 && ranges[1] == unicode.MaxRune:
		c.all = true
	case len(ranges) == 4 && ranges[0] == 0 && ranges[1] == '\n'-1 && ranges[2] == '\n'+1 && ranges[3] == unicode.MaxRune:
		c.allButNL = true
	}
	return c
}

func (c *regexFastClass) hasRune(r rune) bool {
	if r < utf8.RuneSelf {
		return c.ascii[r>>6]&(1<<(r&63)) != 0
	}
	rs := c.ranges
	if len(rs) > 16 {
		// Binary search for the first pair whose high end is >= r.
		lo, hi := 0, len(rs)/2
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if rs[2*m+1] < r {
				lo = m + 1
			} else {
				hi = m
			}
		}
		return lo < len(rs)/2 && rs[2*lo] <= r
	}
	for i := 0; i+1 < len(rs); i += 2 {
		if r < rs[i] {
			return false
		}
		if r <= rs[i+1] {
			return true
		}
	}
	return false
}

// step matches one rune of s at i and returns its width, or 0. Bytes that
// are not UTF-8 are U+FFFD of width 1, as regexp reads them.
func (c *regexFastClass) step(s string, i int) int {
	b := s[i]
	if b < utf8.RuneSelf {
		if c.ascii[b>>6]&(1<<(b&63)) != 0 {
			return 1
		}
		return 0
	}
	if !c.nonASCII {
		return 0
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if c.hasRune(r) {
		return w
	}
	return 0
}

// compileRegexFast builds a fast matcher for expr, or reports false when
// the expression uses something it does not cover.
func compileRegexFast(expr string) (*regexFast, bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, false
	}
	re = re.Simplify()
	match := &regexFastNode{op: rfMatch}
	start, ok := regexFastBuild(re, match, true)
	if !ok {
		return nil, false
	}
	regexFastFirst(start)
	f := &regexFast{
		start:    start,
		anchored: start.op == rfBeginText,
		minLen:   regexFastMinLen(re),
		caps:     make([]int, 2*(re.MaxCap()+1)),
	}
	return f, true
}

// regexFastBuild turns re into nodes that continue with next, and returns
// the first. atStart is true while re is at the very start of the
// expression, the one place \A is allowed.
func regexFastBuild(re *syntax.Regexp, next *regexFastNode, atStart bool) (*regexFastNode, bool) {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return next, true
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil, false
		}
		var lit []byte
		for _, r := range re.Rune {
			if r == utf8.RuneError || r < 0 || r > unicode.MaxRune {
				return nil, false
			}
			lit = utf8.AppendRune(lit, r)
		}
		if len(lit) == 0 {
			return next, true
		}
		return &regexFastNode{op: rfLiteral, lit: string(lit), next: next}, true
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return nil, false
		}
		return &regexFastNode{op: rfClass, class: newRegexFastClass(re.Rune), next: next}, true
	case syntax.OpAnyCharNotNL:
		return &regexFastNode{op: rfClass, class: newRegexFastClass([]rune{0, '\n' - 1, '\n' + 1, unicode.MaxRune}), next: next}, true
	case syntax.OpAnyChar:
		return &regexFastNode{op: rfClass, class: newRegexFastClass([]rune{0, unicode.MaxRune}), next: next}, true
	case syntax.OpBeginText:
		if !atStart {
			return nil, false
		}
		return &regexFastNode{op: rfBeginText, next: next}, true
	case syntax.OpEndText:
		return &regexFastNode{op: rfEndText, next: next}, true
	case syntax.OpCapture:
		end := &regexFastNode{op: rfCapStart, cap: 2*re.Cap + 1, next: next}
		body, ok := regexFastBuild(re.Sub[0], end, atStart)
		if !ok {
			return nil, false
		}
		return &regexFastNode{op: rfCapStart, cap: 2 * re.Cap, next: body}, true
	case syntax.OpConcat:
		n := next
		for i := len(re.Sub) - 1; i >= 0; i-- {
			var ok bool
			if n, ok = regexFastBuild(re.Sub[i], n, atStart && i == 0); !ok {
				return nil, false
			}
		}
		return n, true
	case syntax.OpAlternate:
		split := &regexFastNode{op: rfSplit}
		for _, sub := range re.Sub {
			b, ok := regexFastBuild(sub, next, false)
			if !ok {
				return nil, false
			}
			split.alt = append(split.alt, b)
		}
		return split, true
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		lazy := re.Flags&syntax.NonGreedy != 0
		var class *regexFastClass
		switch sub := re.Sub[0]; {
		case sub.Op == syntax.OpCharClass && len(sub.Rune) > 0:
			class = newRegexFastClass(sub.Rune)
		case sub.Op == syntax.OpAnyCharNotNL:
			class = newRegexFastClass([]rune{0, '\n' - 1, '\n' + 1, unicode.MaxRune})
		case sub.Op == syntax.OpAnyChar:
			class = newRegexFastClass([]rune{0, unicode.MaxRune})
		case sub.Op == syntax.OpLiteral && len(sub.Rune) == 1 && sub.Flags&syntax.FoldCase == 0 && sub.Rune[0] != utf8.RuneError:
			class = newRegexFastClass([]rune{sub.Rune[0], sub.Rune[0]})
		}
		if class != nil {
			n := &regexFastNode{op: rfRepeat, class: class, max: -1, lazy: lazy, next: next}
			switch re.Op {
			case syntax.OpPlus:
				n.min = 1
			case syntax.OpQuest:
				n.max = 1
			}
			return n, true
		}
		if re.Op != syntax.OpQuest {
			// Loops over subexpressions are left to regexp.
			return nil, false
		}
		body, ok := regexFastBuild(re.Sub[0], next, false)
		if !ok {
			return nil, false
		}
		split := &regexFastNode{op: rfSplit, alt: []*regexFastNode{body, next}}
		if lazy {
			split.alt[0], split.alt[1] = next, body
		}
		return split, true
	}
	return nil, false
}

// regexFastFirst fills first and null for n and everything after it.
func regexFastFirst(n *regexFastNode) {
	if n.done {
		return
	}
	n.done = true
	if n.next != nil {
		regexFastFirst(n.next)
	}
	for _, a := range n.alt {
		regexFastFirst(a)
	}
	switch n.op {
	case rfLiteral:
		n.first.add(n.lit[0])
	case rfClass:
		n.first = n.class.first
	case rfRepeat:
		n.first = n.class.first
		if n.min == 0 {
			n.first.union(n.next.first)
			n.null = n.next.null
		}
	case rfSplit:
		for _, a := range n.alt {
			n.first.union(a.first)
			n.null = n.null || a.null
		}
	case rfMatch:
		n.null = true
	default: // zero-width: captures and assertions
		n.first = n.next.first
		n.null = n.next.null
	}
}

func regexFastMinLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			n += utf8.RuneLen(r)
		}
		return n
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpPlus, syntax.OpCapture:
		return regexFastMinLen(re.Sub[0])
	case syntax.OpConcat:
		t := 0
		for _, s := range re.Sub {
			t += regexFastMinLen(s)
		}
		return t
	case syntax.OpAlternate:
		m := -1
		for _, s := range re.Sub {
			if l := regexFastMinLen(s); m < 0 || l < m {
				m = l
			}
		}
		return max(m, 0)
	}
	return 0
}

// can reports whether a match from n on could start at s[i:].
func (n *regexFastNode) can(s string, i int) bool {
	return n.null || i < len(s) && n.first.has(s[i])
}

// find looks for the leftmost-first match in s and fills caps as
// FindStringSubmatchIndex would (pairs of start and end, -1 for groups
// that did not take part).
func (f *regexFast) find(s string, caps []int) int {
	f.s, f.aborted = s, false
	f.steps = 256 + 16*len(s)
	last := len(s) - f.minLen
	for i := 0; i <= last; {
		if f.start.can(s, i) {
			for j := range f.caps {
				f.caps[j] = -1
			}
			f.caps[0] = i
			if f.match(f.start, i) {
				copy(caps, f.caps)
				f.s = ""
				return rfFound
			}
			if f.aborted {
				f.s = ""
				return rfGaveUp
			}
		}
		if f.anchored || i >= len(s) {
			break
		}
		if s[i] < utf8.RuneSelf {
			i++
		} else {
			_, w := utf8.DecodeRuneInString(s[i:])
			i += w
		}
	}
	f.s = ""
	return rfNotFound
}

// match reports whether the rest of the expression from n matches at i,
// leaving the captures of that match in f.caps.
func (f *regexFast) match(n *regexFastNode, i int) bool {
	s := f.s
	for {
		f.steps--
		if f.steps < 0 {
			f.aborted = true
			return false
		}
		switch n.op {
		case rfLiteral:
			if len(s)-i < len(n.lit) || s[i:i+len(n.lit)] != n.lit {
				return false
			}
			i += len(n.lit)
			n = n.next
		case rfClass:
			if i >= len(s) {
				return false
			}
			w := n.class.step(s, i)
			if w == 0 {
				return false
			}
			i += w
			n = n.next
		case rfRepeat:
			return f.repeat(n, i)
		case rfSplit:
			// The last choice needs no way back: continue with it here.
			var tail *regexFastNode
			for k, a := range n.alt {
				if !a.can(s, i) {
					continue
				}
				if k == len(n.alt)-1 {
					tail = a
					break
				}
				if f.match(a, i) {
					return true
				}
				if f.aborted {
					return false
				}
			}
			if tail == nil {
				return false
			}
			n = tail
		case rfCapStart:
			old := f.caps[n.cap]
			f.caps[n.cap] = i
			if f.match(n.next, i) {
				return true
			}
			f.caps[n.cap] = old
			return false
		case rfBeginText:
			if i != 0 {
				return false
			}
			n = n.next
		case rfEndText:
			if i != len(s) {
				return false
			}
			n = n.next
		case rfMatch:
			f.caps[1] = i
			return true
		}
	}
}

// repeat matches a run of n's class followed by the rest, trying the run
// lengths in Perl's order: longest first when greedy, shortest when lazy.
// A length is only tried where what follows could start.
func (f *regexFast) repeat(n *regexFastNode, i int) bool {
	s := f.s
	next := n.next
	if n.lazy {
		for count := 0; ; count++ {
			if count >= n.min && next.can(s, i) {
				if f.match(next, i) {
					return true
				}
				if f.aborted {
					return false
				}
			}
			if n.max >= 0 && count >= n.max || i >= len(s) {
				return false
			}
			w := n.class.step(s, i)
			if w == 0 {
				return false
			}
			i += w
			f.steps--
		}
	}
	start := i
	if n.max < 0 && (n.class.all || n.class.allButNL) {
		// The run ends at the end of the input or at the next newline.
		// When it is all ASCII, every byte is a rune to back off to.
		end := len(s)
		if n.class.allButNL {
			if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
				end = i + j
			}
		}
		if regexASCII(s[start:end]) {
			f.steps -= (end - start) / 8
			for j := end; j >= start+n.min; j-- {
				f.steps--
				if f.steps < 0 {
					f.aborted = true
					return false
				}
				if next.can(s, j) {
					if f.match(next, j) {
						return true
					}
					if f.aborted {
						return false
					}
				}
			}
			return false
		}
	}
	// Greedy: take the longest run, remembering where its runes start
	// when some are wider than a byte.
	base := len(f.stack)
	count, wide := 0, false
	c := n.class
	for (n.max < 0 || count < n.max) && i < len(s) {
		if b := s[i]; b < utf8.RuneSelf {
			if c.ascii[b>>6]&(1<<(b&63)) == 0 {
				break
			}
			if wide {
				f.stack = append(f.stack, i)
			}
			i++
			count++
			continue
		}
		w := c.step(s, i)
		if w == 0 {
			break
		}
		if !wide {
			wide = true
			// Record the starts of the runes so far, all one byte wide.
			for j := start; j < i; j++ {
				f.stack = append(f.stack, j)
			}
		}
		f.stack = append(f.stack, i)
		i += w
		count++
	}
	f.steps -= count / 8
	found := false
	for ; count >= n.min; count-- {
		f.steps--
		if f.steps < 0 {
			f.aborted = true
			break
		}
		if next.can(s, i) {
			if f.match(next, i) {
				found = true
				break
			}
			if f.aborted {
				break
			}
		}
		if count == 0 {
			break
		}
		if wide {
			i = f.stack[base+count-1]
		} else {
			i--
		}
	}
	f.stack = f.stack[:base]
	return found
}

// regexASCII reports whether s is all ASCII.
func regexASCII(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if binary.LittleEndian.Uint64(aliasBytes(s[i:i+8]))&jsonSwarHighs != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
