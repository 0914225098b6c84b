package jsonstr

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// Scan accepts exactly the strings encoding/json accepts (for valid
// UTF-8), and Unescape decodes them as encoding/json does.
func FuzzString(f *testing.F) {
	for _, s := range []string{`"plain"`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\ud83d\ude00"`, `"\ud83dx"`, `"\u12"`, `"\x"`, "\"a\x01\"", `"unterminated`, `"é😀"`, `""`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if len(in) == 0 || in[0] != '"' || !utf8.ValidString(in) {
			return
		}
		end, esc, ok := Scan([]byte(in), 0)
		var want string
		jerr := json.Unmarshal([]byte(in), &want)
		if ok && end == len(in) {
			if jerr != nil {
				t.Fatalf("%q: Scan accepts it, encoding/json does not: %v", in, jerr)
			}
			got := string(Unescape(nil, []byte(in[1:end-1])))
			if got != want {
				t.Fatalf("%q: Unescape gives %q, encoding/json %q", in, got, want)
			}
			if !esc && got != in[1:end-1] {
				t.Fatalf("%q: no escape reported, but it decodes to %q", in, got)
			}
			return
		}
		if !ok && jerr == nil {
			t.Fatalf("%q: encoding/json accepts it, Scan does not", in)
		}
	})
}
