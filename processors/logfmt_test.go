package processors

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigilhq/vigil/pipeline"
)

func TestLogfmtDocumentedExamples(t *testing.T) {
	t.Run("using the log line", func(t *testing.T) {
		s := newParserStageForTest(t, "logfmt", "mapping: {timestamp: time, app: , duration: , unknown: }")
		// The documented line ends in a stray quote: go-logfmt stops there
		// with an error, after the documented values were extracted.
		line := `time=2012-11-01T22:08:41+00:00 app=loki level=WARN duration=125 message="this is a log line" extra="user=foo""`
		out := parserRunForTest(nil, []string{line}, s)
		parserWantFieldsForTest(t, out[0].Extracted, map[string]string{"timestamp": "2012-11-01T22:08:41+00:00", "app": "loki", "duration": "125"})
		if string(out[0].Line) != line {
			t.Errorf("line changed")
		}
		if s.errors("malformed_logfmt") != 1 {
			t.Errorf("the stray quote was not counted")
		}
	})
	t.Run("using extracted data", func(t *testing.T) {
		first := newParserStageForTest(t, "logfmt", "mapping: {extra: }")
		second := newParserStageForTest(t, "logfmt", "mapping: {user: }\nsource: extra")
		line := `time=2012-11-01T22:08:41+00:00 app=loki level=WARN duration=125 message="this is a log line" extra="user=foo"`
		out := parserRunForTest(nil, []string{line}, first, second)
		parserWantFieldsForTest(t, out[0].Extracted, map[string]string{"extra": "user=foo", "user": "foo"})
		if first.totalErrors()+second.totalErrors() != 0 {
			t.Errorf("errors counted for valid lines")
		}
	})
}

func TestLogfmtSyntax(t *testing.T) {
	tests := []struct {
		line  string
		want  map[string]string
		error bool
	}{
		{line: "", want: map[string]string{}},
		{line: "\n\n", want: map[string]string{}},
		{line: "a= ", want: map[string]string{"a": ""}},
		{line: "a=", want: map[string]string{"a": ""}},
		{line: "a", want: map[string]string{"a": ""}},
		{line: "a=f", want: map[string]string{"a": "f"}},
		{line: `a="\tf"`, want: map[string]string{"a": "\tf"}},
		{line: "a=1\n", want: map[string]string{"a": "1"}},
		{line: `a=1 b="bar" ƒ=2h3s r="esc\t" d x=sf   `, want: map[string]string{"a": "1", "b": "bar", "ƒ": "2h3s", "r": "esc\t", "d": "", "x": "sf"}},
		{line: "a=f\na=g", want: map[string]string{"a": "g"}},
		{line: "a=f  \n\x1e b=g", want: map[string]string{"a": "f", "b": "g"}},
		{line: "a= d b=g", want: map[string]string{"a": "", "d": "", "b": "g"}},
		{line: "a=\"f\\n\"b=g", want: map[string]string{"a": "f\n", "b": "g"}},
		{line: "a=x\r\nb=y\r", want: map[string]string{"a": "x", "b": "y"}},
		{line: `a="" b=""`, want: map[string]string{"a": "", "b": ""}},
		{line: `a="q\"uote\\ \/ \' \u00e9 \ud83d\ude00 \ud800x"`, want: map[string]string{"a": "q\"uote\\ / ' é 😀 \uFFFDx"}},
		{line: "a=\"raw \x01 \xff kept\"", want: map[string]string{"a": "raw \x01 \xff kept"}},
		{line: "a=\"esc\\n \xff replaced\"", want: map[string]string{"a": "esc\n \uFFFD replaced"}},
		{line: "a=1 \xffb=2", error: true, want: map[string]string{"a": "1"}},
		{line: "a=1\n=bar b=2", error: true, want: map[string]string{"a": "1"}},
		{line: `a=1 b"c=2`, error: true, want: map[string]string{"a": "1"}},
		{line: `a=1 b=c"d`, error: true, want: map[string]string{"a": "1"}},
		{line: `a=1 b=c=d`, error: true, want: map[string]string{"a": "1"}},
		{line: `a=1 b==c`, error: true, want: map[string]string{"a": "1"}},
		{line: `a=1 b="unterminated`, error: true, want: map[string]string{"a": "1"}},
		{line: `a=1 b="end\"`, error: true, want: map[string]string{"a": "1"}},
		{line: `a=1 b="\x"`, error: true, want: map[string]string{"a": "1"}},
		{line: `a=1 b="\u12g4"`, error: true, want: map[string]string{"a": "1"}},
		{line: "a=1 b=\"\\n\x01\"", error: true, want: map[string]string{"a": "1"}},
		{line: `"a"=1`, error: true, want: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.line), func(t *testing.T) {
			s := newParserStageForTest(t, "logfmt", "mapping: {a: , b: , d: , x: , r: , ƒ: }")
			out := parserRunForTest(nil, []string{tt.line}, s)
			parserWantFieldsForTest(t, out[0].Extracted, tt.want)
			if got := s.errors("malformed_logfmt") == 1; got != tt.error {
				t.Errorf("error counted = %v, want %v", got, tt.error)
			}
		})
	}
}

func TestLogfmtMappingAndSource(t *testing.T) {
	s := newParserStageForTest(t, "logfmt", "mapping: {lvl: level, level: , msg: message}\nsource: body")
	b := parserBatchForTest(nil, "level=not-from-line", "x")
	b.Entries[0].Extracted = pipeline.Fields{{Name: "body", Value: `level=warn message="disk full"`}}
	s.Process(b)
	parserWantFieldsForTest(t, b.Entries[0].Extracted, map[string]string{"body": `level=warn message="disk full"`, "lvl": "warn", "level": "warn", "msg": "disk full"})
	parserWantFieldsForTest(t, b.Entries[1].Extracted, map[string]string{})
	if s.errors("source_missing") != 1 {
		t.Errorf("missing source not counted")
	}
}

func TestLogfmtConfigErrors(t *testing.T) {
	tests := []struct{ body, pos, want string }{
		{"source: x", "1:1", "mapping is required"},
		{"mapping: {}", "1:10", "mapping is required"},
		{"mapping: [a]", "1:10", "must map"},
		{"mapping: {a: {b: c}}", "1:14", "must be a string"},
		{"mapping: {a: }\nsource: ''", "2:9", "source must not be empty"},
		{"mapping: {a: }\nmappings: {}", "2:1", "mappings"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			parserConfigErrorForTest(t, "logfmt", tt.body, tt.pos, tt.want)
		})
	}
}

// logfmtQuoteForTest quotes a value as go-logfmt's encoder does.
func logfmtQuoteForTest(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\\' || c == '"':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\r':
				b.WriteString(`\r`)
			case c == '\t':
				b.WriteString(`\t`)
			case c < 0x20 || c == 0x7f:
				fmt.Fprintf(&b, `\u%04x`, c)
			default:
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError {
			b.WriteString(`\ufffd`)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
	return b.String()
}

// logfmtValidUTF8ForTest replaces each invalid byte with U+FFFD.
func logfmtValidUTF8ForTest(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

func FuzzLogfmt(f *testing.F) {
	for _, s := range []string{
		`time=2012-11-01T22:08:41+00:00 app=loki level=WARN duration=125 message="this is a log line" extra="user=foo"`,
		`a="q\"uote\\ \/ \' \u00e9 \ud83d\ude00 \ud800x" b`, "a=1\n=bar", "a=\"x\ty\"\r\nb=2", `a= =b "c`, "\xff=1 a=\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		// Any line: no crash, nothing lost, values come from the line.
		s := newParserStageForTest(t, "logfmt", "mapping: {a: , b: , time: , message: }")
		out := parserRunForTest(nil, []string{data}, s)
		if len(out) != 1 || string(out[0].Line) != data {
			t.Fatal("entry lost or changed")
		}
		for _, f := range out[0].Extracted {
			if !strings.Contains(data, f.Value) && !strings.Contains(data, `\`) {
				t.Fatalf("%s=%q is not in %q", f.Name, f.Value, data)
			}
		}
		// A value quoted as go-logfmt quotes it comes back, made valid
		// UTF-8.
		line := "a=" + logfmtQuoteForTest(data) + " b=x"
		out = parserRunForTest(nil, []string{line}, s)
		want := map[string]string{"a": logfmtValidUTF8ForTest(data), "b": "x"}
		if !strings.ContainsAny(data, "\\\"\n\r\t") && utf8.ValidString(data) && !strings.ContainsFunc(data, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			want["a"] = data
		}
		parserWantFieldsForTest(t, out[0].Extracted, want)
	})
}

func BenchmarkLogfmt(b *testing.B) {
	s := newParserStageForTest(b, "logfmt", "mapping: {level: , tenant: , ts: }")
	parserBenchForTest(b, s,
		`ts=2025-06-01T12:34:56.123456789Z level=info tenant=rentguy caller=api/handler.go:142 msg="request served" path="/api/v1/items?page=2" duration_ms=12.5`)
}
