package processors

import (
	"bytes"
	"cmp"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// redact masks personal data and secrets in lines: e-mail addresses, IPv4
// and IPv6 addresses, tokens (Authorization/Bearer credentials, values of
// token/secret/password/api key fields, AWS access key ids, GitHub
// tokens) and card numbers (Luhn-checked), plus the user's own regexes.
// Promtail has no such stage.
//
//	type: redact
//	classes: [email, ipv4, ipv6, token, card]   # the default: all
//	replacement: '<redacted:${class}>'          # the default
//	patterns:                                   # extra Go regexes
//	  - 'session=(\w+)'        # with a group, only the group is replaced
//	  - {name: ticket, regex: 'TCK-\d+'}   # ${class} is the name
//
// Only the line is redacted, not labels, metadata or extracted fields.
//
// Most lines contain none of these, so the built-in classes are found by
// hand-written scanners, not regexes, each anchored on a byte the data
// must contain ('@' for e-mail, a digit for IPv4 and cards, ':' for IPv6
// and "key: value", '=' for "key=value", 'b'/'B' for bearer, '_' for
// GitHub tokens, 'A' for AWS key ids). A line that matches nothing costs a
// few vectorised byte searches and one pass over its digits, and never
// allocates. User patterns are Go regexes; a line they do not match costs
// one regexp.Match each.
//
// Matches of different classes may overlap (an IPv4 address inside an
// IPv6 one, a card number as a password's value); overlapping matches are
// merged so no part of either leaks. The merged span takes the class of
// the one that starts first; of two that start together, the longer, and
// of two equal ones a token over what it contains.
type redact struct {
	classes  uint8 // bit per built-in class
	repl     [][]byte
	patterns []redactUserPattern
	// neutralRepl: no user patterns, and every replacement starts and
	// ends with a neutral byte, so one pass is enough when matches are
	// bordered by neutral bytes too.
	neutralRepl bool

	spans  []redactSpan // scratch
	groups []redactGroup
	arena  []byte
}

const (
	redactEmail = iota
	redactIPv4
	redactIPv6
	redactToken
	redactCard
	redactBuiltins
)

var redactClassNames = [redactBuiltins]string{"email", "ipv4", "ipv6", "token", "card"}

const redactDefaultReplacement = "<redacted:${class}>"

type redactSpan struct {
	start, end int
	class      int // index into repl
}

type redactGroup struct{ start, end int }

type redactUserPattern struct {
	re    *regexp.Regexp
	group bool // redact the first group only
	class int
}

type redactConfig struct {
	Classes     []string              `yaml:"classes"`
	Replacement *string               `yaml:"replacement"`
	Patterns    []redactPatternConfig `yaml:"patterns"`
}

// redactPatternConfig is a user pattern: a regex, or a mapping with the
// name the replacement shows as its class.
type redactPatternConfig struct {
	Name string
	re   *regexp.Regexp
}

// DecodeNode implements pipeline.NodeDecoder, to point at a bad regex.
func (pc *redactPatternConfig) DecodeNode(d pipeline.Decoder, n *yaml.Node) error {
	expr, at := n.Value, n
	pc.Name = "pattern"
	switch n.Kind {
	case yaml.ScalarNode:
	case yaml.MappingNode:
		var m struct {
			Name  string    `yaml:"name"`
			Regex yaml.Node `yaml:"regex"`
		}
		if err := d.Decode(n, &m); err != nil {
			return err
		}
		if m.Regex.Kind != yaml.ScalarNode || m.Regex.Value == "" {
			return d.Errorf(n, "redact: a pattern needs a regex")
		}
		expr, at = m.Regex.Value, &m.Regex
		if m.Name != "" {
			pc.Name = m.Name
		}
	default:
		return d.Errorf(n, "redact: a pattern is a regex, or a mapping with name and regex")
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return d.Errorf(at, "redact: invalid regex %q: %v", expr, err)
	}
	pc.re = re
	return nil
}

const redactArenaChunk = 64 << 10

func init() {
	pipeline.RegisterProcessor("redact", newRedact)
}

func newRedact(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	d := env.Decoder
	var cfg redactConfig
	if err := d.Decode(node, &cfg); err != nil {
		return nil, err
	}
	p := &redact{}
	if cfg.Classes == nil {
		p.classes = 1<<redactBuiltins - 1
	}
	classesNode := pipeline.NodeAt(node, "classes")
	for i, c := range cfg.Classes {
		found := false
		for id, name := range redactClassNames {
			if c == name {
				p.classes |= 1 << id
				found = true
			}
		}
		if !found {
			at := classesNode
			if i < len(at.Content) {
				at = at.Content[i]
			}
			return nil, d.Errorf(at, "redact: unknown class %q (classes: %s)", c, strings.Join(redactClassNames[:], ", "))
		}
	}
	if p.classes == 0 && len(cfg.Patterns) == 0 {
		return nil, d.Errorf(node, "redact: no classes and no patterns: there is nothing to redact")
	}
	replacement := redactDefaultReplacement
	if cfg.Replacement != nil {
		replacement = *cfg.Replacement
	}
	for _, name := range redactClassNames {
		p.repl = append(p.repl, []byte(strings.ReplaceAll(replacement, "${class}", name)))
	}
	for i, pc := range cfg.Patterns {
		if pc.re == nil {
			at := pipeline.NodeAt(node, "patterns")
			if i < len(at.Content) {
				at = at.Content[i]
			}
			return nil, d.Errorf(at, "redact: a pattern needs a regex")
		}
		p.patterns = append(p.patterns, redactUserPattern{re: pc.re, group: pc.re.NumSubexp() > 0, class: len(p.repl)})
		p.repl = append(p.repl, []byte(strings.ReplaceAll(replacement, "${class}", pc.Name)))
	}
	p.neutralRepl = len(p.patterns) == 0
	for _, r := range p.repl {
		if len(r) == 0 || redactTable[r[0]]&redactIsNeutral == 0 || redactTable[r[len(r)-1]]&redactIsNeutral == 0 {
			p.neutralRepl = false
		}
	}
	return p, nil
}

func (p *redact) Process(b *pipeline.Batch) {
	for i := range b.Entries {
		e := &b.Entries[i]
		e.Line = p.redactLine(e.Line)
	}
}

// redactPasses bounds how often a line is scanned again after redaction.
const redactPasses = 4

// redactLine returns line with everything p redacts replaced, or line
// itself when nothing matches.
//
// A replacement can give the text around it a boundary it lacked: in
// "0.0.0.0::0" the IPv4 address is found, and once it is replaced the
// "::0" after it reads as an IPv6 address. So the result is scanned again
// until nothing new is found, which makes redacting a redacted line a
// no-op. Only lines that matched pay for the extra scan.
func (p *redact) redactLine(line []byte) []byte {
	for pass := 0; pass < redactPasses; pass++ {
		spans := p.find(line)
		// A match that is already its own replacement (a JSON password
		// field redacted before) changes nothing.
		kept := spans[:0]
		settled := p.neutralRepl
		for _, sp := range spans {
			if !bytes.Equal(line[sp.start:sp.end], p.repl[sp.class]) {
				kept = append(kept, sp)
				settled = settled && redactIs(line, sp.start-1, redactIsNeutral) != (sp.start == 0) &&
					redactIs(line, sp.end, redactIsNeutral) != (sp.end == len(line))
			}
		}
		if len(kept) == 0 {
			break
		}
		line = p.rewrite(line, kept)
		// When every match is bordered by bytes no scanner takes as part
		// of a candidate (or by the line's ends), replacing it cannot
		// change what another scanner sees, and a second pass would find
		// nothing new.
		if settled {
			break
		}
	}
	return line
}

// find returns the merged spans to redact, sorted, in p's scratch slice.
func (p *redact) find(s []byte) []redactSpan {
	p.spans = p.spans[:0]
	if p.classes&(1<<redactEmail) != 0 {
		p.findEmail(s)
	}
	if p.classes&(1<<redactIPv4|1<<redactCard) != 0 {
		p.findDigits(s)
	}
	if p.classes&(1<<redactIPv6|1<<redactToken) != 0 {
		p.findColon(s)
	}
	if p.classes&(1<<redactToken) != 0 {
		p.findTokens(s)
	}
	for _, up := range p.patterns {
		// Match does not allocate; only a line that matches pays for the
		// indexes.
		if !up.re.Match(s) {
			continue
		}
		for _, m := range up.re.FindAllSubmatchIndex(s, -1) {
			start, end := m[0], m[1]
			if up.group {
				start, end = m[2], m[3]
			}
			if start >= 0 && end > start {
				p.add(start, end, up.class)
			}
		}
	}
	if len(p.spans) == 0 {
		return nil
	}
	return p.merge()
}

func redactPriority(class int) int {
	switch class {
	case redactToken:
		return -1
	case redactCard:
		return redactBuiltins
	}
	return class
}

func (p *redact) add(start, end, class int) {
	p.spans = append(p.spans, redactSpan{start, end, class})
}

// merge sorts the spans by start and joins overlapping ones.
func (p *redact) merge() []redactSpan {
	sp := p.spans
	if len(sp) > 1 {
		// Of two spans starting together the longer one names the class,
		// and of two equal ones the more specific: a password that is
		// all digits is a password.
		slices.SortFunc(sp, func(a, b redactSpan) int {
			if c := cmp.Compare(a.start, b.start); c != 0 {
				return c
			}
			if c := cmp.Compare(b.end, a.end); c != 0 {
				return c
			}
			return cmp.Compare(redactPriority(a.class), redactPriority(b.class))
		})
	}
	out := sp[:1]
	for _, s := range sp[1:] {
		last := &out[len(out)-1]
		if s.start < last.end {
			last.end = max(last.end, s.end)
			continue
		}
		out = append(out, s)
	}
	p.spans = out
	return out
}

// rewrite builds the redacted line in the arena. Lines are owned by their
// batch until it settles, so a redacted line needs memory of its own; a
// shared arena makes that one allocation per many lines. Earlier lines
// only ever reference bytes before the arena's length, so appending past
// it never touches them.
func (p *redact) rewrite(s []byte, spans []redactSpan) []byte {
	n := len(s)
	for _, sp := range spans {
		n += len(p.repl[sp.class]) - (sp.end - sp.start)
	}
	var out []byte
	if n > redactArenaChunk/4 {
		out = make([]byte, 0, n)
	} else {
		if cap(p.arena)-len(p.arena) < n {
			p.arena = make([]byte, 0, redactArenaChunk)
		}
		start := len(p.arena)
		p.arena = p.arena[:start+n]
		out = p.arena[start : start : start+n]
	}
	prev := 0
	for _, sp := range spans {
		out = append(out, s[prev:sp.start]...)
		out = append(out, p.repl[sp.class]...)
		prev = sp.end
	}
	return append(out, s[prev:]...)
}

// Byte classes.
const (
	redactIsAlnum = 1 << iota
	redactIsDigit
	redactIsHex
	redactIsEmailLocal
	redactIsDomain
	redactIsToken68
	redactIsKey
	redactIsValueStop
	// redactIsNeutral marks bytes that no scanner takes as part of a
	// candidate nor as a joint between candidates.
	redactIsNeutral
)

var redactTable = func() (t [256]uint16) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		lower, upper, digit := b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9'
		alnum := lower || upper || digit
		if alnum {
			t[c] |= redactIsAlnum | redactIsEmailLocal | redactIsDomain | redactIsToken68 | redactIsKey
		}
		if digit {
			t[c] |= redactIsDigit
		}
		if digit || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F') {
			t[c] |= redactIsHex
		}
		if strings.IndexByte("._%+-", b) >= 0 {
			t[c] |= redactIsEmailLocal
		}
		if b == '-' {
			t[c] |= redactIsDomain
		}
		if strings.IndexByte("-._~+/", b) >= 0 {
			t[c] |= redactIsToken68
		}
		if strings.IndexByte("_.-", b) >= 0 {
			t[c] |= redactIsKey
		}
		if b <= ' ' || strings.IndexByte(",;&\"'()[]{}<>", b) >= 0 {
			t[c] |= redactIsValueStop
		}
		if b == ' ' || b == '\t' || strings.IndexByte(`"',;&()[]{}<>|=?!#*^$`+"`", b) >= 0 {
			t[c] |= redactIsNeutral
		}
	}
	return t
}()

func redactIs(s []byte, i int, class uint16) bool {
	return i >= 0 && i < len(s) && redactTable[s[i]]&class != 0
}

// findEmail finds local@domain.tld around each '@'.
func (p *redact) findEmail(s []byte) {
	for from := 0; ; {
		k := bytes.IndexByte(s[from:], '@')
		if k < 0 {
			return
		}
		at := from + k
		from = at + 1
		l := at
		for l > 0 && redactTable[s[l-1]]&redactIsEmailLocal != 0 {
			l--
		}
		for l < at && s[l] == '.' {
			l++
		}
		if l == at {
			continue
		}
		r, dots, lastLabel := at+1, 0, at+1
		for {
			start := r
			for r < len(s) && redactTable[s[r]]&redactIsDomain != 0 {
				r++
			}
			if r == start {
				r = -1
				break
			}
			lastLabel = start
			if r+1 < len(s) && s[r] == '.' && redactTable[s[r+1]]&redactIsDomain != 0 {
				r++
				dots++
				continue
			}
			break
		}
		if r < 0 || dots == 0 || r-lastLabel < 2 {
			continue
		}
		tldOK := true
		for _, c := range s[lastLabel:r] {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				tldOK = false
				break
			}
		}
		if !tldOK {
			continue
		}
		p.add(l, r, redactEmail)
		from = r
	}
}

// findDigits walks the digit runs of s, for IPv4 addresses and card
// numbers. Most runs (dates, times, status codes, sizes) are short and
// followed by neither a dot nor a separator and another digit, which rules
// both out without looking further. (A plain byte loop measured faster
// here than word-at-a-time digit detection: the skip loop's branch is
// well predicted, and the runs are short and close together.)
func (p *redact) findDigits(s []byte) {
	ipv4, card := p.classes&(1<<redactIPv4) != 0, p.classes&(1<<redactCard) != 0
	n := len(s)
	for i := 0; i < n; {
		if s[i]-'0' > 9 {
			i++
			continue
		}
		j := i + 1
		for j < n && s[j]-'0' <= 9 {
			j++
		}
		if j == n {
			if card && j-i >= 13 {
				p.findCards(s, i)
			}
			return
		}
		next := s[j]
		if ipv4 && next == '.' && j-i <= 3 {
			if end := redactMatchIPv4(s, i); end > 0 {
				p.add(i, end, redactIPv4)
				i = end
				continue
			}
		}
		if card && (j-i >= 13 || ((next == ' ' || next == '-') && j+1 < n && s[j+1]-'0' <= 9)) {
			i = p.findCards(s, i)
			continue
		}
		i = j + 1
	}
}

// redactMatchIPv4 matches a dotted quad starting at i, returning its end
// or -1. Neighbouring letters, digits or dots (a version 1.2.3.4.5, an OID)
// rule it out.
func redactMatchIPv4(s []byte, i int) int {
	if i > 0 && (redactTable[s[i-1]]&redactIsAlnum != 0 || s[i-1] == '.') {
		return -1
	}
	p := i
	for part := 0; part < 4; part++ {
		if part > 0 {
			if p >= len(s) || s[p] != '.' {
				return -1
			}
			p++
		}
		start, v := p, 0
		for p < len(s) && p-start < 3 && s[p]-'0' <= 9 {
			v = v*10 + int(s[p]-'0')
			p++
		}
		if p == start || v > 255 || redactIs(s, p, redactIsDigit) {
			return -1
		}
	}
	if redactIs(s, p, redactIsAlnum) || (p < len(s) && s[p] == '.' && redactIs(s, p+1, redactIsDigit)) {
		return -1
	}
	return p
}

// findCards looks for card numbers in the run of digit groups (joined by
// single spaces or dashes) starting at i, and returns where to go on.
//
// A card is 13 to 19 digits that pass the Luhn check and start with 2 to 6
// (the ranges of Mastercard, Mir, Amex, Diners, JCB, Visa, Discover,
// UnionPay, Maestro). The first-digit rule keeps Luhn's one-in-ten false
// positives off millisecond and nanosecond Unix timestamps, which start
// with 1. Any contiguous sequence of groups can be the card, so a card
// next to another number ("qty 2 4111 1111 1111 1111") is still found.
func (p *redact) findCards(s []byte, i int) int {
	groups := p.groups[:0]
	total, q := 0, i
	for {
		start := q
		for q < len(s) && s[q]-'0' <= 9 {
			q++
		}
		groups = append(groups, redactGroup{start, q})
		total += q - start
		if q+1 < len(s) && (s[q] == ' ' || s[q] == '-') && s[q+1]-'0' <= 9 {
			q++
			continue
		}
		break
	}
	p.groups = groups
	// Only the last group can be followed by a dot. Hand it back to the
	// caller, which may find an IPv4 address starting there ("1 1.2.3.4").
	resume := q
	if len(groups) > 1 && q < len(s) && s[q] == '.' {
		resume = groups[len(groups)-1].start
	}
	if total < 13 {
		return resume
	}
	startOK := i == 0 || (redactTable[s[i-1]]&redactIsAlnum == 0 && s[i-1] != '.')
	endOK := !redactIs(s, q, redactIsAlnum)
	for a := 0; a < len(groups); a++ {
		if a == 0 && !startOK {
			continue
		}
		if first := s[groups[a].start]; first < '2' || first > '6' {
			continue
		}
		best, count := -1, 0
		for b := a; b < len(groups); b++ {
			count += groups[b].end - groups[b].start
			if count > 19 {
				break
			}
			if count < 13 || (b == len(groups)-1 && !endOK) {
				continue
			}
			if redactLuhn(s, groups[a:b+1]) {
				best = b
			}
		}
		if best >= 0 {
			p.add(groups[a].start, groups[best].end, redactCard)
			a = best
		}
	}
	return resume
}

func redactLuhn(s []byte, groups []redactGroup) bool {
	sum, double := 0, false
	for g := len(groups) - 1; g >= 0; g-- {
		for k := groups[g].end - 1; k >= groups[g].start; k-- {
			d := int(s[k] - '0')
			if double {
				d *= 2
				if d > 9 {
					d -= 9
				}
			}
			sum += d
			double = !double
		}
	}
	return sum%10 == 0
}

// findColon checks each ':' for an IPv6 address around it and for a
// "secret_key: value" field ending at it.
func (p *redact) findColon(s []byte) {
	ipv6, token := p.classes&(1<<redactIPv6) != 0, p.classes&(1<<redactToken) != 0
	for from := 0; from < len(s); {
		k := bytes.IndexByte(s[from:], ':')
		if k < 0 {
			break
		}
		c := from + k
		from = c + 1
		if token {
			if start, end := redactMatchField(s, c); end > 0 {
				p.add(start, end, redactToken)
				from = end
				continue
			}
		}
		if ipv6 {
			start, end, run := redactMatchIPv6(s, c)
			if end > 0 {
				if end > c {
					p.add(start, end, redactIPv6)
				}
				from = max(from, end)
				continue
			}
			// Every ':' of the same run of hex digits, dots and colons
			// would see the same run: checking them all would make a long
			// run quadratic. No secret field name can end inside such a
			// run either (the names end in letters that are not hex, or
			// in a 'd' after a letter that is not).
			from = max(from, run)
		}
	}
}

// redactMatchIPv6 finds an IPv6 address in the run of hex digits, colons
// and dots around the ':' at c. It returns the address's bounds, or -1,
// and the end of the run.
func redactMatchIPv6(s []byte, c int) (start, end, run int) {
	l := c
	for l > 0 && (redactTable[s[l-1]]&redactIsHex != 0 || s[l-1] == ':' || s[l-1] == '.') {
		l--
	}
	r := c + 1
	for r < len(s) && (redactTable[s[r]]&redactIsHex != 0 || s[r] == ':' || s[r] == '.') {
		r++
	}
	run = r
	if redactIs(s, l-1, redactIsAlnum) || redactIs(s, r, redactIsAlnum) {
		return -1, -1, run
	}
	// A sentence may end right after an address, and "addr: value" puts
	// a ':' after it.
	for r > l && s[r-1] == '.' {
		r--
	}
	if r-l > 2 && s[r-1] == ':' && s[r-2] != ':' {
		r--
	}
	for l < r && s[l] == '.' {
		l++
	}
	if !redactValidIPv6(s[l:r]) {
		return -1, -1, run
	}
	return l, r, run
}

// redactValidIPv6 reports whether b is an IPv6 address in text form: up to
// eight groups of 1-4 hex digits, at most one "::", optionally ending in a
// dotted quad worth two groups. A bare "::" is not taken: with no digits
// it is more likely punctuation than the unspecified address.
func redactValidIPv6(b []byte) bool {
	if len(b) < 3 {
		return false
	}
	groups, double, i := 0, false, 0
	if b[0] == ':' {
		if b[1] != ':' {
			return false
		}
		double, i = true, 2
		if i == len(b) {
			return false
		}
	}
	for i < len(b) {
		start := i
		for i < len(b) && i-start < 5 && redactTable[b[i]]&redactIsHex != 0 {
			i++
		}
		if i < len(b) && b[i] == '.' {
			// An embedded IPv4 address ends the address.
			if redactMatchIPv4(b[start:], 0) != len(b)-start || (start > 0 && b[start-1] != ':') {
				return false
			}
			groups += 2
			i = len(b)
			break
		}
		if i == start || i-start > 4 {
			return false
		}
		groups++
		if i == len(b) {
			break
		}
		if b[i] != ':' {
			return false
		}
		i++
		if i < len(b) && b[i] == ':' {
			if double {
				return false
			}
			double = true
			i++
			if i == len(b) {
				break
			}
		} else if i == len(b) {
			return false
		}
	}
	if double {
		return groups <= 7
	}
	return groups == 8
}

// redactSecretKey reports whether a field name names a secret: it ends in
// one of the usual words, in any case.
func redactSecretKey(key []byte) bool {
	if len(key) < 3 {
		return false
	}
	switch key[len(key)-1] | 0x20 {
	case 'n', 't', 'd', 'y', 'h', 's':
	default:
		return false
	}
	for _, w := range redactSecretWords {
		if len(key) >= len(w) && redactFoldEqual(key[len(key)-len(w):], w) {
			return true
		}
	}
	return false
}

var redactSecretWords = []string{
	"token", "secret", "password", "passwd", "pwd", "pass", "apikey", "api_key", "api-key",
	"access_key", "accesskey", "secret_key", "private_key", "authorization", "auth", "credentials",
}

func redactFoldEqual(b []byte, lower string) bool {
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c |= 0x20
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// redactMatchField matches the value of a secret field whose name ends
// at the separator at c: key=value, key: value, "key": "value". For
// authorization fields the scheme ("Bearer", "Basic") stays readable.
func redactMatchField(s []byte, c int) (int, int) {
	j := c
	if j > 0 && (s[j-1] == '"' || s[j-1] == '\'') {
		j--
		if j > 0 && s[j-1] == '\\' {
			j--
		}
	}
	ke := j
	for j > 0 && redactTable[s[j-1]]&redactIsKey != 0 {
		j--
	}
	key := s[j:ke]
	if !redactSecretKey(key) {
		return -1, -1
	}
	v := c + 1
	// "key: value" has a space; "key= value" is an empty value followed
	// by something else.
	for s[c] == ':' && v < len(s) && s[v] == ' ' {
		v++
	}
	if v >= len(s) {
		return -1, -1
	}
	var quote []byte
	switch {
	case s[v] == '"' || s[v] == '\'':
		quote = s[v : v+1]
		v++
	case s[v] == '\\' && v+1 < len(s) && s[v+1] == '"':
		quote = s[v : v+2]
		v += 2
	}
	if (len(key) >= 4 && redactFoldEqual(key[len(key)-4:], "auth")) || (len(key) >= 13 && redactFoldEqual(key[len(key)-13:], "authorization")) {
		// Skip a scheme word followed by a space.
		w := v
		for w < len(s) && (s[w]|0x20 >= 'a' && s[w]|0x20 <= 'z') {
			w++
		}
		if w > v && w < len(s) && s[w] == ' ' {
			for w < len(s) && s[w] == ' ' {
				w++
			}
			v = w
		}
	}
	end := v
	if quote != nil {
		for end < len(s) && !bytes.HasPrefix(s[end:], quote) {
			if s[end] == '\\' && len(quote) == 1 {
				end++
			}
			end++
		}
		end = min(end, len(s))
	} else {
		for end < len(s) && redactTable[s[end]]&redactIsValueStop == 0 {
			end++
		}
	}
	if end <= v || string(s[v:end]) == "null" {
		return -1, -1
	}
	return v, end
}

// findTokens finds the values of secret key=value fields, and bearer
// credentials, AWS access key ids and GitHub tokens, which need no field
// name to be recognised.
func (p *redact) findTokens(s []byte) {
	for from := 0; from < len(s); {
		k := bytes.IndexByte(s[from:], '=')
		if k < 0 {
			break
		}
		c := from + k
		from = c + 1
		if start, end := redactMatchField(s, c); end > 0 {
			p.add(start, end, redactToken)
			from = end
		}
	}
	// Searching for the 'b' and 'B' of "bearer" is several times faster
	// than searching for the word: both bytes are rare in most lines.
	for _, first := range [2]byte{'b', 'B'} {
		for from := 0; from < len(s); {
			k := bytes.IndexByte(s[from:], first)
			if k < 0 {
				break
			}
			b := from + k
			from = b + 1
			if b+6 > len(s) || !redactFoldEqual(s[b+1:b+6], "earer") || redactIs(s, b-1, redactIsAlnum) {
				continue
			}
			v := b + 6
			for v < len(s) && s[v] == ' ' {
				v++
			}
			if v == b+6 {
				continue
			}
			end, digit := v, false
			for end < len(s) && redactTable[s[end]]&redactIsToken68 != 0 {
				digit = digit || s[end]-'0' <= 9
				end++
			}
			// Credentials are long and almost always have a digit; words
			// after "bearer" in prose rarely do.
			if end-v < 8 || (!digit && end-v < 20) {
				continue
			}
			for end < len(s) && s[end] == '=' {
				end++
			}
			p.add(v, end, redactToken)
			from = end
		}
	}
	for from := 0; from+20 <= len(s); {
		k := bytes.IndexByte(s[from:len(s)-19], 'A')
		if k < 0 {
			break
		}
		a := from + k
		from = a + 1
		if redactIs(s, a-1, redactIsAlnum) || !redactAWSPrefix(s[a:a+4]) || redactIs(s, a+20, redactIsAlnum) {
			continue
		}
		ok := true
		for _, c := range s[a+4 : a+20] {
			if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				ok = false
				break
			}
		}
		if ok {
			p.add(a, a+20, redactToken)
			from = a + 20
		}
	}
	for from := 0; from < len(s); {
		k := bytes.IndexByte(s[from:], '_')
		if k < 0 {
			break
		}
		u := from + k
		from = u + 1
		start, minBody, underscore := -1, 0, false
		switch {
		case u >= 3 && s[u-3] == 'g' && s[u-2] == 'h' && strings.IndexByte("pousr", s[u-1]) >= 0:
			start, minBody = u-3, 30
		case u >= 10 && string(s[u-10:u]) == "github_pat":
			start, minBody, underscore = u-10, 22, true
		default:
			continue
		}
		if redactIs(s, start-1, redactIsAlnum) {
			continue
		}
		end := u + 1
		for end < len(s) && (redactTable[s[end]]&redactIsAlnum != 0 || (underscore && s[end] == '_')) {
			end++
		}
		if end-(u+1) >= minBody {
			p.add(start, end, redactToken)
			from = end
		}
	}
}

var redactAWSPrefixes = []string{"AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ABIA", "ACCA"}

func redactAWSPrefix(b []byte) bool {
	for _, pfx := range redactAWSPrefixes {
		if string(b) == pfx {
			return true
		}
	}
	return false
}
