package processors

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pipeline"
)

func TestParseLogQLSelector(t *testing.T) {
	tests := []struct {
		src  string
		want string // canonical rendering
	}{
		{`{app="loki"}`, `{app="loki"}`},
		{` { app = "loki" , env!="dev",job=~"a|b", x !~ ".*z" } `, `{app="loki", env!="dev", job=~"a|b", x!~".*z"}`},
		{`{app="promtail"} |~ ".*noisy error.*"`, `{app="promtail"} |~ ".*noisy error.*"`},
		{`{a="b"} |= "x" != "y" |~ "z+" !~ "w?"`, `{a="b"} |= "x" != "y" |~ "z+" !~ "w?"`},
		{"{a=`raw\\d`} |= `back\"tick`", `{a="raw\\d"} |= "back\"tick"`},
		{`{a="tab\there", b="\u00e9"}`, `{a="tab\there", b="é"}`},
		{"{a=\"b\"}\n|= \"multi\nline\"", ``}, // newline inside a string is an error
		{`{_a1="b"}`, `{_a1="b"}`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			sel, err := parseLogQLSelector(tt.src)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted, rendered %s", sel)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sel.String(); got != tt.want {
				t.Fatalf("rendered %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseLogQLSelectorErrors(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{``, `at character 1: a selector starts with {, found end of input`},
		{`foo`, `at character 1: a selector starts with {, found identifier "foo"`},
		{`{}`, `at character 2: expected a label name, found "}"`},
		{`{`, `at character 2: expected a label name, found end of input`},
		{`{app="foo}`, `at character 6: unterminated string`},
		{`{app="foo",}`, `at character 12: expected a label name, found "}"`},
		{`{app:"foo"}`, `at character 5: expected one of = != =~ !~ after label "app", found ":"`},
		{`{app=foo}`, `at character 6: expected a quoted value, found identifier "foo"`},
		{`{app="a" env="b"}`, `at character 10: expected "," or "}", found identifier "env"`},
		{`{app=~"("}`, `at character 7: invalid regular expression "("`},
		{`{app="a"} |~ "["`, `at character 14: invalid regular expression "["`},
		{`{app="a"} !~ "[]"`, `at character 14: invalid regular expression "[]"`},
		{`{app="a"} | json`, `at character 11: expected a line filter (|= != |~ !~) or the end, found "|"`},
		{`{app="a"} |= `, `at character 14: expected a quoted filter value, found end of input`},
		{`{app="a"} |= "x" or "y"`, `at character 18: expected a line filter`},
		{`{app="a"} = "x"`, `at character 11: expected a line filter`},
		{"{app=`x}", "at character 6: unterminated raw string"},
		{`{app="\q"}`, `at character 6: invalid string "\q"`},
		{`{app="a"}}`, `at character 10: expected a line filter`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := parseLogQLSelector(tt.src)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error %q, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestLogQLSelectorMatches(t *testing.T) {
	tests := []struct {
		sel    string
		labels map[string]string
		line   string
		want   bool
	}{
		{`{foo="bar"}`, map[string]string{"foo": "bar"}, "x", true},
		{`{foo="bar"}`, map[string]string{"foo": "baz"}, "x", false},
		{`{foo=""}`, map[string]string{}, "x", true}, // a missing label is ""
		{`{foo=""}`, map[string]string{"foo": "bar"}, "x", false},
		{`{foo!="bar"}`, map[string]string{}, "x", true},
		{`{foo=~"ba."}`, map[string]string{"foo": "bar"}, "x", true},
		{`{foo=~"ba"}`, map[string]string{"foo": "bar"}, "x", false}, // anchored
		{`{foo=~"b|c"}`, map[string]string{"foo": "c"}, "x", true},
		{`{foo=~"bar"}`, map[string]string{"foo": "bar"}, "x", true},   // literal fast path
		{`{foo=~"bar"}`, map[string]string{"foo": "xbar"}, "x", false}, // literal fast path is anchored too
		{`{foo=~"(?i)BAR"}`, map[string]string{"foo": "bar"}, "x", true},
		{`{foo=~".*"}`, map[string]string{}, "x", true},
		{`{foo=~".*"}`, map[string]string{"foo": "a\nb"}, "x", true}, // . matches newlines, as in Prometheus
		{`{foo=~".+"}`, map[string]string{}, "x", false},
		{`{foo=~""}`, map[string]string{}, "x", true},
		{`{foo!~"te.*"}`, map[string]string{"foo": "test"}, "x", false},
		{`{foo!~"te.*"}`, map[string]string{"foo": "best"}, "x", true},
		{`{foo="bar", bar!="test"}`, map[string]string{"foo": "bar"}, "x", true},
		{`{foo="bar", bar!="test"}`, map[string]string{"foo": "bar", "bar": "test"}, "x", false},
		{`{foo="bar"} |= "foo"`, map[string]string{"foo": "bar"}, "foo", true},
		{`{foo="bar"} |= "bar"`, map[string]string{"foo": "bar"}, "foo", false},
		{`{foo="bar"} |~ "fo+"`, map[string]string{"foo": "bar"}, "a foo b", true}, // unanchored
		{`{foo="bar"} != "bar"`, map[string]string{"foo": "bar"}, "foo", true},
		{`{foo="bar"} != "foo"`, map[string]string{"foo": "bar"}, "foo", false},
		{`{foo="bar"} !~ "bar"`, map[string]string{"foo": "bar"}, "foo", true},
		{`{foo="bar"} |= "a" |= "b"`, map[string]string{"foo": "bar"}, "ab", true},
		{`{foo="bar"} |= "a" |= "b"`, map[string]string{"foo": "bar"}, "a", false},
		{`{foo="bar"} |= ""`, map[string]string{"foo": "bar"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.sel+"/"+tt.line, func(t *testing.T) {
			sel, err := parseLogQLSelector(tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			e := pipeline.Entry{Line: []byte(tt.line), Labels: pipeline.LabelsFromMap(tt.labels)}
			if got := sel.matches(&e); got != tt.want {
				t.Fatalf("matches(%v, %q) = %v, want %v", tt.labels, tt.line, got, tt.want)
			}
		})
	}
}

func TestLogQLContainsLiteral(t *testing.T) {
	tests := []struct {
		re    string
		lit   string
		isLit bool
	}{
		{"error", "error", true},
		{".*noisy error.*", "noisy error", true},
		{".*.*x", "x", true},
		{"(?s).*x.*", "x", true},
		{"", "", true},
		{".*", "", true},
		{`a\.b`, "a.b", true},
		{"(?i)error", "", false},
		{"err(or)?", "", false},
		{"^error", "", false},
		{"error$", "", false},
		{".+error", "", false},
		{"a|b", "", false},
	}
	for _, tt := range tests {
		lit, ok := logqlContainsLiteral(tt.re)
		if ok != tt.isLit || lit != tt.lit {
			t.Errorf("logqlContainsLiteral(%q) = %q, %v; want %q, %v", tt.re, lit, ok, tt.lit, tt.isLit)
		}
	}
}

// FuzzLogQL checks that the parser never panics, and that whatever it
// accepts renders to text that parses back to the same selector.
func FuzzLogQL(f *testing.F) {
	for _, s := range []string{
		`{app="loki"}`,
		`{app="promtail"} |~ ".*noisy error.*"`,
		`{a="b", c!="d", e=~"re", f!~"re"} |= "x" != "y" |~ "z" !~ "w"`,
		"{a=`raw`} |= `x`",
		`{a="\u00e9\x41\n"}`,
		`{}`, `{`, `{a="`, `{a=~"("}`, `{a="b"} | json`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		sel, err := parseLogQLSelector(src)
		if err != nil {
			var le *logqlError
			if !asLogqlError(err, &le) || le.pos < 0 || le.pos > len(src) {
				t.Fatalf("error without a position in the input: %v", err)
			}
			return
		}
		text := sel.String()
		again, err := parseLogQLSelector(text)
		if err != nil {
			t.Fatalf("rendering %q of %q does not parse: %v", text, src, err)
		}
		if again.String() != text {
			t.Fatalf("round trip changed %q to %q", text, again.String())
		}
		// Matching must not panic on any input either.
		e := pipeline.Entry{Line: []byte(src), Labels: pipeline.Labels{{Name: "a", Value: src}}}
		if sel.matches(&e) != again.matches(&e) {
			t.Fatalf("%q and its rendering %q disagree", src, text)
		}
		// Fast paths must agree with the regexps they stand in for.
		for _, f := range sel.filters {
			if f.re == nil || f.lit == nil {
				continue
			}
			for _, line := range [][]byte{[]byte(src), []byte("x" + string(f.lit) + "\ny")} {
				if f.re.Match(line) != bytes.Contains(line, f.lit) {
					t.Fatalf("filter %q: regexp and literal %q disagree on %q", f.re, f.lit, line)
				}
			}
		}
		for _, m := range sel.matchers {
			if m.re == nil {
				continue
			}
			for _, v := range []string{src, m.lit, m.value, ""} {
				fast := m.matches(v)
				slow := m.re.MatchString(v)
				if m.op == logqlNre {
					slow = !slow
				}
				if fast != slow {
					t.Fatalf("matcher %s%s%q: fast path says %v on %q, regexp %v", m.name, m.op, m.value, fast, v, slow)
				}
			}
		}
	})
}

func asLogqlError(err error, target **logqlError) bool {
	le, ok := err.(*logqlError)
	if ok {
		*target = le
	}
	return ok
}

func BenchmarkLogQLSelector(b *testing.B) {
	sel, err := parseLogQLSelector(`{app="api", env=~"prod|staging", job!~"test.*"} |= "error" != "healthcheck"`)
	if err != nil {
		b.Fatal(err)
	}
	e := pipeline.Entry{
		Line:   []byte(`level=error msg="request failed" path=/api/v1/users status=500 duration=12ms`),
		Labels: pipeline.Labels{{Name: "app", Value: "api"}, {Name: "env", Value: "prod"}, {Name: "job", Value: "api"}},
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !sel.matches(&e) {
			b.Fatal("no match")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/line")
}
