package processors

import (
	"regexp"
	"testing"

	"github.com/vigilhq/vigil/pipeline"
)

// ansiRegexForTest is the expression Loki's decolorizer removes.
var ansiRegexForTest = regexp.MustCompile("[\u001B\u009B][[\\]()#;?]*(?:(?:(?:[a-zA-Z\\d]*(?:;[a-zA-Z\\d]*)*)?\u0007)|(?:(?:\\d{1,4}(?:;\\d{0,4})*)?[\\dA-PRZcf-ntqry=><~]))")

func TestDecolorize(t *testing.T) {
	tests := []struct{ name, line, want string }{
		{"documented example", "[2022-11-04 22:17:57.811] \033[0;32mhttp\033[0m: GET /_health (0 ms) 204", "[2022-11-04 22:17:57.811] http: GET /_health (0 ms) 204"},
		// The documentation's own input lacks the m; the regex then takes
		// the h as the final byte.
		{"documented input as written", "[2022-11-04 22:17:57.811] \033[0;32http\033[0m: GET /_health (0 ms) 204", "[2022-11-04 22:17:57.811] ttp: GET /_health (0 ms) 204"},
		{"no color", "sample text", "sample text"},
		{"Promtail's test", "\033[0;32mgreen\033[0m \033[0;31mred\033[0m", "green red"},
		{"window title", "\033]0;title\007rest", "rest"},
		{"C1 introducer", "a\u009b1mb", "ab"},
		{"cursor", "x\033[2Ky\033[?25lz", "xyz"},
		{"lone escape", "x\033 y\033", "x\033 y\033"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newParserStageForTest(t, "decolorize", "")
			out := parserRunForTest(pipeline.Labels{{Name: "job", Value: "x"}}, []string{tt.line}, s)
			if got := string(out[0].Line); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if re := ansiRegexForTest.ReplaceAllString(tt.line, ""); re != tt.want {
				t.Errorf("the regex gives %q", re)
			}
		})
	}
}

func TestDecolorizeConfig(t *testing.T) {
	parserConfigErrorForTest(t, "decolorize", "\nstrip: true", "2:1", "strip")
}

func FuzzDecolorize(f *testing.F) {
	for _, s := range []string{
		"\033[0;32mgreen\033[0m", "\033]0;a b\007", "\033[12345;;6;7890123x", "\033[;m", "\u009b?25h", "\033[1;2\033[3",
		"\033[0;32http", "\033(B\033#8", "\xc2\033[1m\x9b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		want := ansiRegexForTest.ReplaceAllString(line, "")
		got, changed := decolorizeLine(nil, []byte(line))
		if string(got) != want || changed != (want != line) {
			t.Fatalf("decolorizeLine(%q) = %q, the regex gives %q", line, got, want)
		}
	})
}

func BenchmarkDecolorize(b *testing.B) {
	s := newParserStageForTest(b, "decolorize", "")
	parserBenchForTest(b, s,
		"[2022-11-04 22:17:57.811] \033[0;32mhttp\033[0m: GET /_health (0 ms) 204",
		"2025-10-10T13:55:36Z level=info msg=\"plain line without any color in it at all\"")
}
