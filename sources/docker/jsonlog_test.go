package docker

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// jsonEntry writes an entry as the Engine's jsonlog package does: its own
// marshaller, HTML-safe escaping, RFC3339Nano (trailing zeros trimmed).
func jsonEntry(stream string, ns int64, text string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b) // escapes <, > and & as the Engine does
	_ = enc.Encode(text)
	return `{"log":` + string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))) + `,"stream":"` + stream + `","time":"` +
		time.Unix(0, ns).UTC().Format(time.RFC3339Nano) + `"}`
}

func TestDecodeJSONLog(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		stream byte
		ts     int64
		text   string
	}{
		{"plain", jsonEntry("stdout", t0, "GET / 200\n"), streamStdout, t0, "GET / 200\n"},
		{"stderr", jsonEntry("stderr", t0, "boom\n"), streamStderr, t0, "boom\n"},
		{"a piece of a split line has no newline", jsonEntry("stdout", t0, "abc"), streamStdout, t0, "abc"},
		{"whole seconds: no fraction", jsonEntry("stdout", 1_700_000_000_000_000_000, "x\n"), streamStdout, 1_700_000_000_000_000_000, "x\n"},
		{"trimmed fraction", jsonEntry("stdout", 1_700_000_000_120_000_000, "x\n"), streamStdout, 1_700_000_000_120_000_000, "x\n"},
		{"escapes", jsonEntry("stdout", t0, "q\"b\\s/\t<a&b>\u2028\x01é😀\r\n"), streamStdout, t0, "q\"b\\s/\t<a&b>\u2028\x01é😀\r\n"},
		{"surrogate pair escaped", `{"log":"\ud83d\ude00\n","stream":"stdout","time":"2023-11-14T22:13:20.123456789Z"}`, streamStdout, t0, "😀\n"},
		{"lone surrogate", `{"log":"\ud83dx\n","stream":"stdout","time":"2023-11-14T22:13:20.123456789Z"}`, streamStdout, t0, "\ufffdx\n"},
		{"attrs from log options", `{"log":"a\n","stream":"stdout","attrs":{"tag":"\"time\":\"x"},"time":"2023-11-14T22:13:20.123456789Z"}`, streamStdout, t0, "a\n"},
		{"several attrs", `{"log":"a\n","stream":"stderr","attrs":{"com.example.team":"core","env":"prod"},"time":"2023-11-14T22:13:20.123456789Z"}`, streamStderr, t0, "a\n"},
		{"empty attrs", `{"log":"a\n","stream":"stdout","attrs":{},"time":"2023-11-14T22:13:20.123456789Z"}`, streamStdout, t0, "a\n"},
		{"other key order", `{"time":"2023-11-14T22:13:20.123456789Z","stream":"stderr","log":"a\n"}`, streamStderr, t0, "a\n"},
		{"spaces and an offset", `{ "log" : "a\n", "stream" : "stdout", "time" : "2023-11-14T23:13:20.123456789+01:00" }`, streamStdout, t0, "a\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream, ts, text, _, err := decodeJSONLog([]byte(tc.in), nil)
			if err != nil {
				t.Fatalf("%s: %v", tc.in, err)
			}
			if stream != tc.stream || ts != tc.ts || string(text) != tc.text {
				t.Fatalf("got (%d, %d, %q), want (%d, %d, %q)", stream, ts, text, tc.stream, tc.ts, tc.text)
			}
		})
	}
	// What the Engine writes takes the fast path, which allocates nothing.
	dst := make([]byte, 0, 4096)
	for _, in := range []string{tests[0].in, tests[5].in, tests[8].in, tests[9].in} {
		b := []byte(in)
		if n := testing.AllocsPerRun(10, func() { _, _, _, _, _ = decodeJSONLog(b, dst[:0]) }); n != 0 {
			t.Errorf("%s: %v allocations: not the fast path", in, n)
		}
	}
	for _, bad := range []string{
		``, `{}`, `not json`, `{"log":"a\n","stream":"stdout"}`, `{"log":"a\n","stream":"other","time":"2023-11-14T22:13:20Z"}`,
		`{"log":"a\n","stream":"stdout","time":"yesterday"}`, `{"stream":"stdout","time":"2023-11-14T22:13:20Z"}`,
		`{"log":"a\n","stream":"stdout","time":"2023-11-14T22:13:20.123Z"`, // cut short
		`{"log":"a` + "\x01" + `","stream":"stdout","time":"2023-11-14T22:13:20.123Z"}`,
	} {
		if _, _, _, _, err := decodeJSONLog([]byte(bad), nil); err == nil {
			t.Errorf("%q: decoded, want an error", bad)
		}
	}
}

// The fast path agrees with encoding/json on every entry encoding/json
// accepts, and never accepts what encoding/json rejects.
func FuzzDecodeJSONLog(f *testing.F) {
	f.Add(jsonEntry("stdout", t0, "GET / 200\n"))
	f.Add(jsonEntry("stderr", t0, "q\"b\\s/\t<a&b>\u2028\x01é😀\r\n"))
	f.Add(`{"log":"\ud83d\ude00\n","stream":"stdout","time":"2023-11-14T22:13:20.123456789Z"}`)
	f.Add(`{"log":"a\n","stream":"stdout","attrs":{"k":"v"},"time":"2023-11-14T22:13:20.1Z"}`)
	f.Add(`{"log":"a\n","stream":"stdout","attrs":{"k":"v","l":"w"},"time":"2023-11-14T22:13:20.1Z"}`)
	f.Add(`{"log":"a\n","stream":"stdout","attrs":{"k":1},"time":"2023-11-14T22:13:20.1Z"}`)
	f.Fuzz(func(t *testing.T, in string) {
		stream, ts, text, _, err := decodeJSONLog([]byte(in), nil)
		var e struct {
			Log    *string
			Stream string
			Time   time.Time
		}
		jerr := json.Unmarshal([]byte(in), &e)
		if err != nil {
			return // rejected: passed on as malformed, which is always safe
		}
		if jerr != nil {
			t.Fatalf("%q: decoded (%d, %d, %q), encoding/json rejects it: %v", in, stream, ts, text, jerr)
		}
		if e.Log == nil || string(text) != *e.Log {
			t.Fatalf("%q: text %q, encoding/json %v", in, text, e.Log)
		}
		if ts != e.Time.UnixNano() {
			t.Fatalf("%q: time %d, encoding/json %d", in, ts, e.Time.UnixNano())
		}
		if want := map[string]byte{"stdout": streamStdout, "stderr": streamStderr}[e.Stream]; stream != want {
			t.Fatalf("%q: stream %d, encoding/json %q", in, stream, e.Stream)
		}
	})
}
