package processors

import (
	"reflect"
	"regexp"
	"testing"

	"github.com/vigilhq/vigil/pipeline"
)

func TestRegexDocumentedExamples(t *testing.T) {
	t.Run("without source", func(t *testing.T) {
		s := newParserStageForTest(t, "regex", `expression: "^(?s)(?P<time>\\S+?) (?P<stream>stdout|stderr) (?P<flags>\\S+?) (?P<content>.*)$"`)
		line := "2019-01-01T01:00:00.000000001Z stderr P i'm a log message!"
		out := parserRunForTest(nil, []string{line}, s)
		parserWantFieldsForTest(t, out[0].Extracted, map[string]string{
			"time": "2019-01-01T01:00:00.000000001Z", "stream": "stderr", "flags": "P", "content": "i'm a log message!",
		})
		if string(out[0].Line) != line {
			t.Errorf("line changed")
		}
	})
	t.Run("with source", func(t *testing.T) {
		j := newParserStageForTest(t, "json", "expressions: {time: }")
		r := newParserStageForTest(t, "regex", "expression: \"^(?P<year>\\\\d+)\"\nsource: \"time\"")
		out := parserRunForTest(nil, []string{`{"time":"2019-01-01T01:00:00.000000001Z"}`}, j, r)
		parserWantFieldsForTest(t, out[0].Extracted, map[string]string{"time": "2019-01-01T01:00:00.000000001Z", "year": "2019"})
	})
}

func TestRegexExtraction(t *testing.T) {
	tests := []struct {
		expr, line string
		want       map[string]string
		noMatch    bool
	}{
		{expr: `(?P<a>\d+)-(\w+)-(?P<b>x)?`, line: "id 12-ab-", want: map[string]string{"a": "12", "b": ""}},
		{expr: `(?P<a>a)|(?P<b>b)`, line: "b", want: map[string]string{"a": "", "b": "b"}},
		{expr: `(?P<a>x)(?P<a>y)`, line: "xy", want: map[string]string{"a": "y"}},
		{expr: `^(?P<a>\d+)$`, line: "12x", noMatch: true, want: map[string]string{}},
		{expr: `(?P<a>é+)`, line: "caféé!", want: map[string]string{"a": "éé"}},
		{expr: `(?P<a>.*)`, line: "", want: map[string]string{"a": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			s := newParserStageForTest(t, "regex", "expression: '"+tt.expr+"'")
			out := parserRunForTest(pipeline.Labels{{Name: "job", Value: "x"}}, []string{tt.line}, s)
			parserWantFieldsForTest(t, out[0].Extracted, tt.want)
			if string(out[0].Line) != tt.line || out[0].Time != 1000 {
				t.Errorf("entry changed: %+v", out[0])
			}
			if got := s.errors("no_match") == 1; got != tt.noMatch {
				t.Errorf("no_match counted = %v, want %v", got, tt.noMatch)
			}
		})
	}
}

func TestRegexSourceMissing(t *testing.T) {
	s := newParserStageForTest(t, "regex", "expression: '(?P<a>.)'\nsource: msg")
	out := parserRunForTest(nil, []string{"line"}, s)
	parserWantFieldsForTest(t, out[0].Extracted, map[string]string{})
	if s.errors("source_missing") != 1 {
		t.Error("missing source not counted")
	}
}

func TestRegexConfigErrors(t *testing.T) {
	tests := []struct{ body, pos, want string }{
		{"expression: '(?P<a>'", "1:13", "could not compile regular expression"},
		{"expression: 'a(?=b)'", "1:13", "could not compile regular expression"},
		{"source: x", "1:1", "expression is required"},
		{"expression: ''", "1:13", "expression is required"},
		{"expression: a\nsource: ''", "2:9", "source must not be empty"},
		{"expression: a\nexpresion: b", "2:1", "expresion"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			parserConfigErrorForTest(t, "regex", tt.body, tt.pos, tt.want)
		})
	}
}

// Expressions the fast matcher must take (the common shapes of log
// regexes) and ones it must leave to regexp.
func TestRegexFastCoverage(t *testing.T) {
	fast := []string{
		regexBenchExpr,
		`^(?s)(?P<time>\S+?) (?P<stream>stdout|stderr) (?P<flags>\S+?) (?P<content>.*)$`,
		`^(?P<ip>\S+) (?P<identd>\S+) (?P<user>\S+) \[(?P<timestamp>[\w:/]+\s[+\-]\d{4})\] "(?P<action>\S+)\s?(?P<path>\S+)?\s?(?P<protocol>\S+)?" (?P<status>\d{3}|-) (?P<size>\d+|-)\s?"?(?P<referer>[^"]*)"?\s?"?(?P<useragent>[^"]*)?"?$`,
		`level=(?P<level>\w+)`,
		`^(?P<year>\d+)`,
		`password (\S+)`,
		`(?P<a>[a-z]+)?x`,
		`(\S+)(\d+)`, `a*ab`, `(a|ab)c`, `x*|y`, `(a?)a`,
	}
	for _, e := range fast {
		if _, ok := compileRegexFast(e); !ok {
			t.Errorf("%s: not taken by the fast matcher", e)
		}
	}
	slow := []string{
		`(?m)^x`, `(?i)abc`, `\bfoo`, `(ab)*`, `(?:\s+\S+)*`, `a^b`,
	}
	for _, e := range slow {
		if _, ok := compileRegexFast(e); ok {
			t.Errorf("%s: taken by the fast matcher, which cannot match it exactly", e)
		}
	}
}

// checkRegexFastForTest compares the fast matcher with regexp on input.
func checkRegexFastForTest(t *testing.T, expr, input string) {
	t.Helper()
	re, err := regexp.Compile(expr)
	if err != nil {
		return
	}
	f, ok := compileRegexFast(expr)
	if !ok {
		return
	}
	want := re.FindStringSubmatchIndex(input)
	caps := make([]int, 2*(re.NumSubexp()+1))
	switch f.find(input, caps) {
	case rfNotFound:
		caps = nil
	case rfGaveUp:
		return
	}
	if !reflect.DeepEqual(caps, want) {
		t.Fatalf("%q on %q: fast %v, regexp %v", expr, input, caps, want)
	}
}

func TestRegexFastMatchesRegexp(t *testing.T) {
	cases := []struct {
		expr   string
		inputs []string
	}{
		{regexBenchExpr, []string{regexBenchLine, "x - - [a] \"GET / H\" 200 1", "no", ""}},
		{`^(?s)(?P<time>\S+?) (?P<stream>stdout|stderr) (?P<flags>\S+?) (?P<content>.*)$`,
			[]string{"t stdout F x\ny", "t stderr  x", "t stdo F x", "é\xff stdout P \xfe"}},
		{`(?P<a>[a-z]+)?x`, []string{"abx", "ab1x", "x", "ab", "é abcx"}},
		{`(?P<a>ab)?(?P<b>\d*)`, []string{"ac1", "ab12", "", "zz"}},
		{`a(?P<x>b(?P<y>c)?d)?$`, []string{"abd", "abcd", "abce", "abc", "a"}},
		{`(?P<v>\S*?)`, []string{"abc", ""}},
		{`(?P<v>\S+?)$`, []string{"abc", "a b"}},
		{`[^a]+`, []string{"\xff\xfeb", "aé\xffa"}},
		{`(?s).+x`, []string{"abc"}},
		{`.*`, []string{"ab\ncd"}},
		{`\x{FFFD}`, []string{"\xff"}},
		{`(\S+)(\d+)`, []string{"abc123 x", "123", "é1", "a"}},
		{`a*ab`, []string{"aaab", "ab", "aa"}},
		{`(a|ab)c`, []string{"abc", "ac", "ab"}},
		{`x*|y`, []string{"y", "xxy", ""}},
		{`(a?)a`, []string{"a", "aa"}},
		{`(?P<k>\w+)=(?P<v>"[^"]*"|\S+)`, []string{`a=1 b="x y"`, `=x k="unterminated`}},
		{`(?P<x>.*?)(?P<y>\d+)`, []string{"ab12", "12", "x"}},
		{`^(?P<x>é*)(?P<y>é)`, []string{"ééé", "é\xffé"}},
		{`(?P<x>[^\x00-\x7f]+)(?P<y>[^\x00-\x7f])`, []string{"aéè\xff\xfe", "\xe2\x82\xac\xe2\x82"}},
		{`(?s)(?P<a>.+)(?P<b>.)`, []string{"ab\ncé", "é", "\xff\xfe", "a\x80", "\x80\x80", "é\x80\xa9"}},
		{`(?P<a>.*)(?P<b>[^a])$`, []string{"a\x80", "xé\xbf"}},
		{`(?P<a>.+?)\n`, []string{"ab\ncé\n"}},
		{`(?P<w>\p{L}+)(?P<n>\p{N}*)`, []string{"--héllo42", "ĳ٣", "\xff"}},
	}
	for _, c := range cases {
		for _, in := range c.inputs {
			checkRegexFastForTest(t, c.expr, in)
		}
	}
}

func FuzzRegex(f *testing.F) {
	seeds := []struct{ expr, input string }{
		{regexBenchExpr, regexBenchLine},
		{`^(?s)(?P<time>\S+?) (?P<stream>stdout|stderr) (?P<flags>\S+?) (?P<content>.*)$`, "2019-01-01T01:00:00Z stderr P msg"},
		{`(?P<a>[a-z]+)?x(?:y|z\d)?`, "abxz1"},
		{`^(\w+)=("[^"]*"|\S+)\s*$`, `key="a b" `},
		{`(?P<x>\d{2,4})-(?P<y>[^-]*)$`, "12345-é-x"},
		{`a.b|c[^d]e`, "a\xffb cde"},
	}
	for _, s := range seeds {
		f.Add(s.expr, s.input)
	}
	stage := newParserStageForTest(f, "regex", "expression: '"+regexBenchExpr+"'")
	f.Fuzz(func(t *testing.T, expr, input string) {
		checkRegexFastForTest(t, expr, input)
		checkRegexFastForTest(t, expr, input+input)
		checkRegexFastForTest(t, regexBenchExpr, input)
		// The stage never loses or changes the entry.
		out := parserRunForTest(nil, []string{input}, stage)
		if len(out) != 1 || string(out[0].Line) != input {
			t.Fatal("entry lost or changed")
		}
	})
}

const (
	regexBenchExpr = `^(?P<ip>\S+) \S+ \S+ \[(?P<ts>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) \S+" (?P<status>\d{3}) (?P<size>\d+)`
	regexBenchLine = `192.168.1.10 - - [10/Oct/2025:13:55:36 +0000] "GET /api/v1/users?id=42 HTTP/1.1" 200 1534 "-" "curl/8.5.0"`
)

func BenchmarkRegex(b *testing.B) {
	s := newParserStageForTest(b, "regex", "expression: '"+regexBenchExpr+"'")
	if s.Processor.(*regexStage).m.fast == nil {
		b.Fatal("benchmark regex not on the fast path")
	}
	parserBenchForTest(b, s, regexBenchLine)
}

func BenchmarkRegexStdlib(b *testing.B) {
	s := newParserStageForTest(b, "regex", "expression: '"+regexBenchExpr+"'")
	s.Processor.(*regexStage).m.fast = nil
	parserBenchForTest(b, s, regexBenchLine)
}
