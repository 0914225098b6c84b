package processors

import (
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pipeline"
)

// runStageChain runs an entry through stages built from a Promtail-style list.
func runStageChain(t *testing.T, e pipeline.Entry, stages ...[2]string) pipeline.Entry {
	t.Helper()
	for _, st := range stages {
		e = newProcHarness(t, st[0], st[1]).run(e)[0]
	}
	return e
}

func TestTemplateDocs(t *testing.T) {
	tests := []struct {
		name      string
		config    string
		extracted pipeline.Fields
		key, want string
	}{
		{"a constant creates the key", "source: new_key\ntemplate: 'hello world!'", nil, "new_key", "hello world!"},
		{"append a suffix", "source: app\ntemplate: '{{ .Value }}_some_suffix'", fieldsOf("app", "loki"), "app", "loki_some_suffix"},
		{"lower-case", "source: app\ntemplate: '{{ ToLower .Value }}'", fieldsOf("app", "LOKI"), "app", "loki"},
		{"new key from others", "source: output_msg\ntemplate: '{{ .level }} for app {{ ToUpper .app }}'",
			fieldsOf("level", "warn", "app", "loki"), "output_msg", "warn for app LOKI"},
		{"value and others", "source: app\ntemplate: '{{ .level }} for app {{ ToUpper .Value }} in module {{.module}}'",
			fieldsOf("level", "warn", "app", "loki", "module", "test"), "app", "warn for app LOKI in module test"},
		{"Replace once", `source: app` + "\n" + `template: '{{ Replace .Value "loki" "blokey" 1 }}'`, fieldsOf("app", "loki loki"), "app", "blokey loki"},
		{"ToLower of another key", "source: out\ntemplate: '{{ ToLower .app }}'", fieldsOf("app", "LoKi"), "out", "loki"},
		{"ToUpper in a pipe", "source: out\ntemplate: '{{ .app | ToUpper }}'", fieldsOf("app", "loki"), "out", "LOKI"},
		{"Replace twice", `source: output` + "\n" + `template: '{{ Replace .Value "loki" "Loki" 2 }}'`, fieldsOf("output", "loki loki loki"), "output", "Loki Loki loki"},
		{"Trim", `source: output` + "\n" + `template: '{{ Trim .Value ",. " }}'`, fieldsOf("output", ". ,hello, ."), "output", "hello"},
		{"TrimSpace", "source: output\ntemplate: '{{ TrimSpace .Value }}'", fieldsOf("output", "  hi \t"), "output", "hi"},
		{"TrimPrefix", `source: output` + "\n" + `template: '{{ TrimPrefix .Value "--" }}'`, fieldsOf("output", "--flag--"), "output", "flag--"},
		{"TrimLeft and TrimRight", `source: output` + "\n" + `template: '{{ TrimLeft .Value "x" }}|{{ TrimRight .Value "x" }}'`, fieldsOf("output", "xaxx"), "output", "axx|xa"},
		{"TrimSuffix", `source: output` + "\n" + `template: '{{ TrimSuffix .Value ".log" }}'`, fieldsOf("output", "app.log"), "output", "app"},
		{"regexReplaceAll", `source: output` + "\n" + `template: '{{ regexReplaceAll "(a*)bc" .Value "${1}a" }}'`, fieldsOf("output", "aabc xbc"), "output", "aaa xa"},
		{"regexReplaceAllLiteral", `source: output` + "\n" + `template: '{{ regexReplaceAllLiteral "(ts=)" .Value "timestamp=" }}'`,
			fieldsOf("output", "ts=1 ts=2"), "output", "timestamp=1 timestamp=2"},
		// Known answers, as Promtail's tests give them.
		{"Hash", `source: testval` + "\n" + `template: '{{ Hash .Value "salt" }}'`, fieldsOf("testval", "this is PII data"), "testval",
			"0807ea24e992127128b38e4930f7155013786a4999c73a25910318a793847658"},
		{"Sha2Hash", `source: testval` + "\n" + `template: '{{ Sha2Hash .Value "salt" }}'`, fieldsOf("testval", "this is PII data"), "testval",
			"5526fd6f8ad457279cf8ff06453c6cb61bf479fa826e3b099caa6c846f9376f2"},
		{"missing key prints <no value>", "source: message\ntemplate: '{{.Value}} in module {{.module}}'",
			fieldsOf("message", "warn"), "message", "warn in module <no value>"},
		{"sprig add", "source: testval\ntemplate: '{{ add 7 3 }}'", fieldsOf("testval", "x"), "testval", "10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newProcHarness(t, "template", tt.config)
			out := h.run(pipeline.Entry{Line: []byte("not important"), Extracted: tt.extracted})
			if got, ok := out[0].Extracted.Get(tt.key); !ok || got != tt.want {
				t.Errorf("%s = %q (set %v), want %q", tt.key, got, ok, tt.want)
			}
			if h.errors("template") != 0 {
				t.Error("template error counted")
			}
		})
	}
}

func TestTemplateEntryWithOutput(t *testing.T) {
	// Promtail docs: prepend the application name to the line.
	out := runStageChain(t, pipeline.Entry{Line: []byte("GET /index.html 200"), Extracted: fieldsOf("app", "web")},
		[2]string{"template", "source: message\ntemplate: '{{.app }}: {{ .Entry }}'"},
		[2]string{"output", "source: message"},
	)
	if got := string(out.Line); got != "web: GET /index.html 200" {
		t.Errorf("line = %q", got)
	}
}

// The multiline example of Promtail's docs: a 12-hour clock rebuilt into
// RFC 3339 with substr, eq, if/else, and, or, le and add, then parsed by a
// timestamp stage.
const docsTimeTemplate = `source: time
template: "\
  {{ .date_local | substr 6 10 }}-{{ .date_local | substr 0 2 }}-{{ .date_local | substr 3 5 }}T\
  {{ if eq (.time_local | substr 0 2) \"12\" }}\
      {{ if eq .hour_period \"AM\" }}00{{ else }}12{{ end }}{{ .time_local | substr 2 10}}Z\
  {{ else }}\
      {{ if eq .hour_period \"AM\" }}\
          {{ if or (eq (.time_local | substr 0 2) \"11\") (eq (.time_local | substr 0 2) \"10\") }}{{ .time_local }}Z\
              {{ else }}0{{ .time_local }}Z\
          {{ end }}\
      {{ else }}\
          {{ if eq (.time_local | substr 0 2) \"11\" }}23{{ .time_local | substr 2 10 }}Z{{ end }}\
          {{ if eq (.time_local | substr 0 2) \"10\" }}22{{ .time_local | substr 2 10 }}Z{{ end }}\
          {{ if eq (.time_local | substr 0 2) \"9:\" }}21{{ .time_local | substr 1 10 }}Z{{ end }}\
          {{ if eq (.time_local | substr 0 2) \"8:\" }}20{{ .time_local | substr 1 10 }}Z{{ end }}\
          {{ if and (le (.time_local | substr 0 1) \"7\") (eq (.time_local | substr 1 2) \":\") }}1{{ add (.time_local | substr 0 1) 2 }}{{ .time_local | substr 1 10 }}Z{{ end }}\
      {{ end }}\
  {{ end }}"
`

func TestTemplateDocsTwelveHourClock(t *testing.T) {
	tests := []struct {
		date, clock, period string
		want                string
	}{
		{"11/08/2022", "12:53:24", "PM", "2022-11-08T12:53:24Z"},
		{"11/08/2022", "12:53:24", "AM", "2022-11-08T00:53:24Z"},
		{"11/08/2022", "11:05:00", "AM", "2022-11-08T11:05:00Z"},
		{"11/08/2022", "9:05:00", "AM", "2022-11-08T09:05:00Z"},
		{"11/08/2022", "10:15:30", "PM", "2022-11-08T22:15:30Z"},
		{"11/08/2022", "9:15:30", "PM", "2022-11-08T21:15:30Z"},
		{"11/08/2022", "1:05:09", "PM", "2022-11-08T13:05:09Z"},
		{"11/08/2022", "7:00:01", "PM", "2022-11-08T19:00:01Z"},
	}
	for _, tt := range tests {
		out := runStageChain(t, pipeline.Entry{Time: 1, Extracted: fieldsOf("date_local", tt.date, "time_local", tt.clock, "hour_period", tt.period)},
			[2]string{"template", docsTimeTemplate},
			[2]string{"timestamp", "source: time\nformat: RFC3339"},
		)
		if got, _ := out.Extracted.Get("time"); got != tt.want {
			t.Errorf("%s %s %s: time = %q, want %q", tt.date, tt.clock, tt.period, got, tt.want)
		}
		if got := time.Unix(0, out.Time).UTC().Format(time.RFC3339); got != tt.want {
			t.Errorf("%s %s %s: timestamp = %s, want %s", tt.date, tt.clock, tt.period, got, tt.want)
		}
	}
}

func TestTemplateSemantics(t *testing.T) {
	tests := []struct {
		name      string
		config    string
		labels    pipeline.Labels
		extracted pipeline.Fields
		key       string
		want      string
		present   bool
		failed    float64
	}{
		{name: "empty result removes the key", config: "source: k\ntemplate: ''", extracted: fieldsOf("k", "v"), key: "k"},
		{name: "empty result does not add the key", config: "source: k\ntemplate: '{{ if false }}x{{ end }}'", key: "k"},
		{name: "labels are visible", config: "source: f\ntemplate: '{{ .filename }}'", labels: labelsOf("filename", "/a.log"),
			key: "f", want: "/a.log", present: true},
		{name: "extracted wins over a label", config: "source: f\ntemplate: '{{ .job }}'", labels: labelsOf("job", "label"),
			extracted: fieldsOf("job", "extracted"), key: "f", want: "extracted", present: true},
		{name: ".Value of a label source", config: "source: job\ntemplate: '{{ .Value }}-x'", labels: labelsOf("job", "api"),
			key: "job", want: "api-x", present: true},
		{name: "failure leaves the entry and counts", config: "source: k\ntemplate: '{{ ToLower .missing }}'",
			extracted: fieldsOf("k", "v"), key: "k", want: "v", present: true, failed: 1},
		{name: "bad regex from data fails the entry", config: "source: k\ntemplate: '{{ regexReplaceAll .re .Value \"\" }}'",
			extracted: fieldsOf("k", "v", "re", "("), key: "k", want: "v", present: true, failed: 1},
		{name: "substr out of range fails the entry", config: "source: k\ntemplate: '{{ .Value | substr 5 8 }}'",
			extracted: fieldsOf("k", "abc"), key: "k", want: "abc", present: true, failed: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newProcHarness(t, "template", tt.config)
			out := h.run(pipeline.Entry{Line: []byte("line"), Labels: tt.labels, Extracted: tt.extracted})
			got, ok := out[0].Extracted.Get(tt.key)
			if ok != tt.present || got != tt.want {
				t.Errorf("%s = %q (set %v), want %q (set %v)", tt.key, got, ok, tt.want, tt.present)
			}
			if h.errors("template") != tt.failed {
				t.Errorf("template errors = %v, want %v", h.errors("template"), tt.failed)
			}
			if string(out[0].Line) != "line" {
				t.Errorf("line changed: %q", out[0].Line)
			}
		})
	}
}

func TestTemplateSprigFunctions(t *testing.T) {
	tests := []struct{ tmpl, want string }{
		{`{{ "hello" | upper }} {{ "HeLLo" | lower }} {{ "  x  " | trim }} {{ "hello world" | title }}`, "HELLO hello x Hello World"},
		{`{{ "Hello World" | untitle }}|{{ "Hello World" | swapcase }}|{{ "Ada Lovelace" | initials }}`, "hello world|hELLO wORLD|AL"},
		{`{{ substr 0 5 "hello world" }}|{{ substr 6 99 "hello world" }}|{{ substr -1 2 "abc" }}`, "hello|world|ab"},
		{`{{ trunc 3 "abcdef" }}|{{ trunc -2 "abcdef" }}|{{ abbrev 6 "abcdefghij" }}`, "abc|ef|abc..."},
		{`{{ repeat 3 "ab" }}|{{ trimAll "$" "$5.00$" }}|{{ trimPrefix "-" "-x" }}|{{ trimSuffix "-" "x-" }}`, "ababab|5.00|x|x"},
		{`{{ nospace " a b\tc " }}|{{ contains "ell" "hello" }}|{{ hasPrefix "he" "hello" }}|{{ hasSuffix "x" "hello" }}`, "abc|true|true|false"},
		{`{{ quote "a" "b" }}|{{ squote "a" }}|{{ cat "a" 1 "b" }}|{{ replace " " "-" "a b c" }}`, `"a" "b"|'a'|a 1 b|a-b-c`},
		{`{{ indent 2 "a\nb" }}|{{ plural "one" "many" 2 }}`, "  a\n  b|many"},
		{`{{ sha256sum "abc" }}`, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{`{{ sha1sum "abc" }}|{{ adler32sum "abc" }}`, "a9993e364706816aba3e25717850c26c9cd0d89d|38600999"},
		{`{{ b64enc "hi" }}|{{ b64dec "aGk=" }}|{{ b32enc "hi" }}|{{ b32dec "NBUQ====" }}`, "aGk=|hi|NBUQ====|hi"},
		{`{{ atoi "42" }}|{{ int "0x10" }}|{{ int64 "7.00" }}|{{ float64 "1.5" }}|{{ int "junk" }}`, "42|16|7|1.5|0"},
		{`{{ add 1 "2" 3 }}|{{ add1 4 }}|{{ sub 10 "4" }}|{{ mul 2 3 4 }}|{{ div 7 2 }}|{{ mod 7 2 }}`, "6|5|6|24|3|1"},
		{`{{ max 1 5 3 }}|{{ min 4 2 8 }}|{{ floor 1.7 }}|{{ ceil 1.2 }}|{{ round 3.14159 2 }}`, "5|2|1|2|3.14"},
		{`{{ default "d" "" }}|{{ default "d" "x" }}|{{ default "d" .missing }}|{{ empty "" }}|{{ coalesce "" "b" "c" }}`, "d|x|d|true|b"},
		{`{{ ternary "y" "n" true }}|{{ all 1 "a" }}|{{ any 0 "" }}`, "y|true|false"},
		{`{{ splitList "," "a,b,c" | join "+" }}|{{ (split "," "a,b")._1 }}|{{ list "b" "a" | sortAlpha }}`, "a+b+c|b|[a b]"},
		{`{{ list 1 2 3 | first }}|{{ list 1 2 3 | last }}|{{ list 1 2 3 | rest }}|{{ has 2 (list 1 2) }}`, "1|3|[2 3]|true"},
		{`{{ regexMatch "^a.c$" "abc" }}|{{ regexFind "[0-9]+" "ab12cd34" }}|{{ regexFindAll "[0-9]" "a1b2c3" 2 }}|{{ regexSplit "," "a,b" -1 }}`,
			"true|12|[1 2]|[a b]"},
		{`{{ regexQuoteMeta "a.b" }}|{{ toJson (list "a" 1) }}|{{ (fromJson "{\"a\":\"b\"}").a }}`, `a\.b|["a",1]|b`},
		{`{{ base "/var/log/a.log" }}|{{ dir "/var/log/a.log" }}|{{ ext "a.tar.gz" }}|{{ clean "/a/../b" }}`, "a.log|/var/log|.gz|/b"},
		{`{{ dateInZone "2006-01-02 15:04" (toDate "2006-01-02T15:04:05Z07:00" "2024-05-01T10:00:00Z") "UTC" }}`, "2024-05-01 10:00"},
		{`{{ unixEpoch (toDate "2006-01-02" "2024-05-01") | len | lt 9 }}|{{ durationRound "2h10m" }}|{{ duration 90 }}`, "true|2h|1m30s"},
		{`{{ get (dict "a" "1" "b" "2") "b" }}|{{ hasKey (dict "a" 1) "a" }}|{{ toString 12 }}`, "2|true|12"},
	}
	for _, tt := range tests {
		h := newProcHarness(t, "template", "source: out\ntemplate: '"+strings.ReplaceAll(tt.tmpl, "'", "''")+"'")
		out := h.run(pipeline.Entry{})
		if got, _ := out[0].Extracted.Get("out"); got != tt.want {
			t.Errorf("%s\n got %q\nwant %q", tt.tmpl, got, tt.want)
		}
		if h.errors("template") != 0 {
			t.Errorf("%s: failed", tt.tmpl)
		}
	}
}

func TestTemplateConfigErrors(t *testing.T) {
	tests := []struct {
		name, config string
		line, col    int
		msg          string
	}{
		{"missing source", "template: x", 1, 1, "source is required"},
		{"syntax", "source: a\ntemplate: '{{ .Value '", 2, 11, "invalid template"},
		{"unknown function", "source: a\ntemplate: '{{ nosuch .Value }}'", 2, 11, `function "nosuch" not defined`},
		{"bad regex literal", "source: a\ntemplate: '{{ if true }}{{ regexReplaceAll \"(\" .Value \"x\" }}{{ end }}'", 2, 11, "invalid regular expression"},
		{"unknown key", "source: a\ntemplates: x", 2, 1, `unknown key "templates"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce := procConfigErr(t, "template", tt.config)
			if ce.Line != tt.line || ce.Column != tt.col || !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("error = %v, want x.yaml:%d:%d: ...%s...", ce, tt.line, tt.col, tt.msg)
			}
		})
	}
}

func BenchmarkTemplate(b *testing.B) {
	h := newProcHarness(b, "template", "source: level\ntemplate: '{{ ToLower .Value }}'")
	const n = 256
	batch := pipeline.NewBatch(n, nil)
	base := labelsOf("job", "app")
	for i := 0; i < n; i++ {
		batch.Entries = append(batch.Entries, pipeline.Entry{Line: []byte("x"), Labels: base, Extracted: fieldsOf("level", "WARN", "msg", "hello")})
	}
	benchStageBatches(b, h.proc, batch)
}
