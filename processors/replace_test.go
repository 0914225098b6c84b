package processors

import (
	"crypto/sha256"
	"crypto/sha3"
	"encoding/hex"
	"testing"

	"github.com/vigilhq/vigil/pipeline"
)

const replaceAccessLineForTest = `11.11.11.11 - frank [25/Jan/2000:14:00:01 -0500] "GET /1986.js HTTP/1.1" 200 932 "-" "Mozilla/5.0 (Windows; U; Windows NT 5.1; de; rv:1.9.1.7) Gecko/20091221 Firefox/3.5.7 GTB6"`

const replaceUpperLineForTest = `11.11.11.11 - FRANK [25/JAN/2000:14:00:01 -0500] "GET /1986.JS HTTP/1.1" HttpStatusOk 932 "-" "MOZILLA/5.0 (WINDOWS; U; WINDOWS NT 5.1; DE; RV:1.9.1.7) GECKO/20091221 FIREFOX/3.5.7 GTB6"`

func TestReplaceDocumentedExamples(t *testing.T) {
	ua := "MOZILLA/5.0 (WINDOWS; U; WINDOWS NT 5.1; DE; RV:1.9.1.7) GECKO/20091221 FIREFOX/3.5.7 GTB6"
	tests := []struct {
		name     string
		stages   [][2]string // type, body
		line     string
		wantLine string
		want     map[string]string
	}{
		{
			name:     "without source",
			stages:   [][2]string{{"replace", `{expression: "password (\\S+)", replace: "****"}`}},
			line:     "2019-01-01T01:00:00.000000001Z stderr P i'm a log message who has sensitive information with password xyz!",
			wantLine: "2019-01-01T01:00:00.000000001Z stderr P i'm a log message who has sensitive information with password ****",
			want:     map[string]string{},
		},
		{
			// The documented line is not valid JSON (its inner quotes are
			// not escaped) and its result has a stray trailing slash; this
			// is the example made consistent.
			name: "with source",
			stages: [][2]string{
				{"json", "expressions: {level: , msg: }"},
				{"replace", "{expression: '\\S+ - \"POST (\\S+) .*', source: msg, replace: /loki/api/v1/push}"},
			},
			line:     `{"time":"2019-01-01T01:00:00.000000001Z", "level": "info", "msg":"11.11.11.11 - \"POST /loki/api/push/ HTTP/1.1\" 200 932 \"-\" \"Mozilla/5.0\""}`,
			wantLine: `{"time":"2019-01-01T01:00:00.000000001Z", "level": "info", "msg":"11.11.11.11 - \"POST /loki/api/push/ HTTP/1.1\" 200 932 \"-\" \"Mozilla/5.0\""}`,
			want:     map[string]string{"level": "info", "msg": `11.11.11.11 - "POST /loki/api/v1/push HTTP/1.1" 200 932 "-" "Mozilla/5.0"`},
		},
		{
			// The documentation shows only the status changed; every group
			// goes through the template, as Promtail's own test shows.
			name: "with a template",
			stages: [][2]string{{"replace", `
expression: "^(\\S+) (\\S+) (\\S+) \\[([\\w:/]+\\s[+\\-]\\d{4})\\] \"(\\S+)\\s?(\\S+)?\\s?(\\S+)?\" (\\d{3}|-) (\\d+|-)\\s?\"?([^\"]*)\"?\\s?\"?([^\"]*)?\"?$"
replace: '{{ if eq .Value "200" }}{{ Replace .Value "200" "HttpStatusOk" -1 }}{{ else }}{{ .Value | ToUpper }}{{ end }}'`}},
			line:     replaceAccessLineForTest,
			wantLine: replaceUpperLineForTest,
			want:     map[string]string{},
		},
		{
			name: "named groups",
			stages: [][2]string{{"replace", `
expression: "^(?P<ip>\\S+) (?P<identd>\\S+) (?P<user>\\S+) \\[(?P<timestamp>[\\w:/]+\\s[+\\-]\\d{4})\\] \"(?P<action>\\S+)\\s?(?P<path>\\S+)?\\s?(?P<protocol>\\S+)?\" (?P<status>\\d{3}|-) (?P<size>\\d+|-)\\s?\"?(?P<referer>[^\"]*)\"?\\s?\"?(?P<useragent>[^\"]*)?\"?$"
replace: '{{ .Value | ToUpper }}'`}},
			line:     replaceAccessLineForTest,
			wantLine: `11.11.11.11 - FRANK [25/JAN/2000:14:00:01 -0500] "GET /1986.JS HTTP/1.1" 200 932 "-" "` + ua + `"`,
			want: map[string]string{
				"ip": "11.11.11.11", "identd": "-", "user": "FRANK", "timestamp": "25/JAN/2000:14:00:01 -0500", "action": "GET",
				"path": "/1986.JS", "protocol": "HTTP/1.1", "status": "200", "size": "932", "referer": "-", "useragent": ua,
			},
		},
		{
			name: "named and unnamed groups",
			stages: [][2]string{{"replace", `
expression: "^(?P<ip>\\S+) (?P<identd>\\S+) (\\S+) \\[(?P<timestamp>[\\w:/]+\\s[+\\-]\\d{4})\\] \"(?P<action>\\S+)\\s?(?P<path>\\S+)?\\s?(?P<protocol>\\S+)?\" (?P<status>\\d{3}|-) (?P<size>\\d+|-)\\s?\"?(?P<referer>[^\"]*)\"?\\s?\"?(?P<useragent>[^\"]*)?\"?$"
replace: '{{ .Value | ToUpper }}'`}},
			line:     replaceAccessLineForTest,
			wantLine: `11.11.11.11 - FRANK [25/JAN/2000:14:00:01 -0500] "GET /1986.JS HTTP/1.1" 200 932 "-" "` + ua + `"`,
			want: map[string]string{
				"ip": "11.11.11.11", "identd": "-", "timestamp": "25/JAN/2000:14:00:01 -0500", "action": "GET",
				"path": "/1986.JS", "protocol": "HTTP/1.1", "status": "200", "size": "932", "referer": "-", "useragent": ua,
			},
		},
		{
			name:     "empty replace",
			stages:   [][2]string{{"replace", `{expression: "11.11.11.11 - (\\S+\\s)", replace: ""}`}},
			line:     replaceAccessLineForTest,
			wantLine: `11.11.11.11 - [25/Jan/2000:14:00:01 -0500] "GET /1986.js HTTP/1.1" 200 932 "-" "Mozilla/5.0 (Windows; U; Windows NT 5.1; de; rv:1.9.1.7) Gecko/20091221 Firefox/3.5.7 GTB6"`,
			want:     map[string]string{},
		},
		{
			name: "hashing",
			stages: [][2]string{
				{"replace", `{expression: '([0-9]{3}-[0-9]{2}-[0-9]{4})', replace: '*SSN*{{ .Value | Hash "salt" }}*'}`},
				{"replace", `{expression: '(\d{1,3}[.]\d{1,3}[.]\d{1,3}[.]\d{1,3})', replace: '*IP4*{{ .Value | Hash "salt" }}*'}`},
				{"replace", `{expression: '([\w\.=-]+@[\w\.-]+\.[\w]{2,64})', replace: '*email*{{ .Value | Hash "salt" }}*'}`},
				{"replace", `{expression: '((?:\d[ -]*?){13,16})', replace: '*creditcard*{{ .Value | Hash "salt" }}*'}`},
			},
			line: "ssn=123-45-6789 ip=10.1.2.3 mail jo@example.com card=4111 1111 1111 1111",
			wantLine: "ssn=*SSN*" + replaceHashForTest("salt123-45-6789") + "* ip=*IP4*" + replaceHashForTest("salt10.1.2.3") +
				"* mail *email*" + replaceHashForTest("saltjo@example.com") + "* card=*creditcard*" + replaceHashForTest("salt4111 1111 1111 1111") + "*",
			want: map[string]string{},
		},
		{
			// From Promtail's tests.
			name:     "adjacent groups",
			stages:   [][2]string{{"replace", `{expression: '(a|b|c)', replace: ''}`}},
			line:     "abc",
			wantLine: "",
			want:     map[string]string{},
		},
		{
			name: "nested groups",
			stages: [][2]string{{"replace", `
expression: "(?P<ip_user>^(?P<ip>\\S+) (?P<identd>\\S+) (?P<user>\\S+)) \\[(?P<timestamp>[\\w:/]+\\s[+\\-]\\d{4})\\] \"(?P<action_path>(?P<action>\\S+)\\s?(?P<path>\\S+)?)\\s?(?P<protocol>\\S+)?\" (?P<status>\\d{3}|-) (\\d+|-)\\s?\"?(?P<referer>[^\"]*)\"?\\s?\"?(?P<useragent>[^\"]*)?\"?$"
replace: '{{ if eq .Value "200" }}{{ Replace .Value "200" "HttpStatusOk" -1 }}{{ else }}{{ .Value | ToUpper }}{{ end }}'`}},
			line:     replaceAccessLineForTest,
			wantLine: replaceUpperLineForTest,
			want: map[string]string{
				"ip_user": "11.11.11.11 - FRANK", "action_path": "GET /1986.JS", "ip": "11.11.11.11", "identd": "-", "user": "FRANK",
				"timestamp": "25/JAN/2000:14:00:01 -0500", "action": "GET", "path": "/1986.JS", "protocol": "HTTP/1.1",
				"status": "HttpStatusOk", "referer": "-", "useragent": ua,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stages []pipeline.Processor
			var ps []*parserStageForTest
			for _, s := range tt.stages {
				p := newParserStageForTest(t, s[0], s[1])
				stages = append(stages, p)
				ps = append(ps, p)
			}
			out := parserRunForTest(nil, []string{tt.line}, stages...)
			if string(out[0].Line) != tt.wantLine {
				t.Errorf("line = %q\nwant   %q", out[0].Line, tt.wantLine)
			}
			parserWantFieldsForTest(t, out[0].Extracted, tt.want)
			for _, p := range ps {
				if p.totalErrors() != 0 {
					t.Errorf("%s counted errors", p.name)
				}
			}
		})
	}
}

func replaceSha256ForTest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func replaceHashForTest(s string) string {
	sum := sha3.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestReplaceTemplateData(t *testing.T) {
	s := newParserStageForTest(t, "replace", `{expression: 'user=(\w+)', replace: '{{ .Value }}@{{ .tenant }}/{{ .job }}{{ .missing }}'}`)
	b := parserBatchForTest(pipeline.Labels{{Name: "job", Value: "api"}}, "user=jo ok", "user=al ok")
	b.Entries[0].Extracted = pipeline.Fields{{Name: "tenant", Value: "psra"}}
	s.Process(b)
	if got := string(b.Entries[0].Line); got != "user=jo@psra/api<no value> ok" {
		t.Errorf("line = %q", got)
	}
	if got := string(b.Entries[1].Line); got != "user=al@<no value>/api<no value> ok" {
		t.Errorf("line = %q: data leaked from the entry before", got)
	}
}

func TestReplaceBadInput(t *testing.T) {
	t.Run("no match", func(t *testing.T) {
		s := newParserStageForTest(t, "replace", `{expression: 'x(\d)', replace: 'y'}`)
		out := parserRunForTest(nil, []string{"abc"}, s)
		if string(out[0].Line) != "abc" || s.errors("no_match") != 1 {
			t.Errorf("got %q, no_match %v", out[0].Line, s.errors("no_match"))
		}
	})
	t.Run("missing source", func(t *testing.T) {
		s := newParserStageForTest(t, "replace", `{expression: '(a)', replace: 'y', source: msg}`)
		out := parserRunForTest(nil, []string{"abc"}, s)
		if string(out[0].Line) != "abc" || len(out[0].Extracted) != 0 || s.errors("source_missing") != 1 {
			t.Errorf("got %+v", out[0])
		}
	})
	t.Run("template fails", func(t *testing.T) {
		s := newParserStageForTest(t, "replace", `{expression: '(?P<g>a)', replace: '{{ regexReplaceAll "(" .Value "x" }}'}`)
		out := parserRunForTest(nil, []string{"abc"}, s)
		if string(out[0].Line) != "abc" || len(out[0].Extracted) != 0 || s.errors("template_error") != 1 {
			t.Errorf("got %+v", out[0])
		}
	})
	t.Run("label as source", func(t *testing.T) {
		s := newParserStageForTest(t, "replace", `{expression: '/var/log/(\w+)', replace: 'X', source: filename}`)
		out := parserRunForTest(pipeline.Labels{{Name: "filename", Value: "/var/log/syslog"}}, []string{"abc"}, s)
		parserWantFieldsForTest(t, out[0].Extracted, map[string]string{"filename": "/var/log/X"})
	})
}

func TestReplaceTemplateFunctions(t *testing.T) {
	tests := []struct{ tmpl, want string }{
		{`{{ ToLower .Value }}`, "ab cd"},
		{`{{ ToUpper .Value }}`, "AB CD"},
		{`{{ Replace .Value "b" "x" 1 }}`, "Ax Cd"},
		{`{{ Trim .Value "Ad" }}`, "b C"},
		{`{{ TrimLeft .Value "A" }}`, "b Cd"},
		{`{{ TrimRight .Value "d" }}`, "Ab C"},
		{`{{ TrimPrefix .Value "Ab" }}`, " Cd"},
		{`{{ TrimSuffix .Value "Cd" }}`, "Ab "},
		{`[{{ TrimSpace " x " }}]`, "[x]"},
		{`{{ Sha2Hash "s" .Value }}`, replaceSha256ForTest("sAb Cd")},
		{`{{ Hash "s" .Value }}`, replaceHashForTest("sAb Cd")},
		{`{{ regexReplaceAll "(b)" .Value "${1}$1" }}`, "Abb Cd"},
		{`{{ regexReplaceAllLiteral "(b)" .Value "$1" }}`, "A$1 Cd"},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl, func(t *testing.T) {
			s := newParserStageForTest(t, "replace", "expression: '^(.*)$'\nreplace: '"+tt.tmpl+"'")
			out := parserRunForTest(nil, []string{"Ab Cd"}, s)
			if string(out[0].Line) != tt.want {
				t.Errorf("got %q, want %q", out[0].Line, tt.want)
			}
		})
	}
}

func TestReplaceConfigErrors(t *testing.T) {
	tests := []struct{ body, pos, want string }{
		{"expression: '(?P<ts[0-9]+).*'\nreplace: x", "1:13", "could not compile regular expression"},
		{"replace: x", "1:1", "expression is required"},
		{"expression: '(a)'\nreplace: '{{ .Value '", "2:10", "invalid template"},
		{"expression: '(a)'\nreplace: '{{ Nope .Value }}'", "2:10", "invalid template"},
		{"expression: '(a)'\nsource: ''", "2:9", "source must not be empty"},
		{"expression: '(a)'\nreplacement: x", "2:1", "replacement"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			parserConfigErrorForTest(t, "replace", tt.body, tt.pos, tt.want)
		})
	}
}

func BenchmarkReplace(b *testing.B) {
	s := newParserStageForTest(b, "replace", `{expression: 'password=(\S+)', replace: '****'}`)
	parserBenchForTest(b, s, `level=info msg="login" user=jo password=hunter2 ip=10.1.2.3`)
}

func BenchmarkReplaceTemplate(b *testing.B) {
	s := newParserStageForTest(b, "replace", `{expression: 'user=(\S+)', replace: '{{ .Value | Hash "salt" }}'}`)
	parserBenchForTest(b, s, `level=info msg="login" user=jo password=hunter2 ip=10.1.2.3`)
}
