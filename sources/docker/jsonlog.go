package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// A json-file log holds one JSON object a line, as the Engine's jsonlog
// package writes it:
//
//	{"log":"text\n","stream":"stdout","attrs":{...},"time":"2006-01-02T15:04:05.999999999Z"}
//
// The log is the message with its newline, which a piece of a line Docker
// split has not; attrs is there only with the labels, env or tag log
// options. decodeJSONLog reads that exact layout without reflection, and
// leaves any other (valid JSON) layout to encoding/json.

var (
	jsonLogPrefix = []byte(`{"log":"`)
	jsonStdout    = []byte(`,"stream":"stdout"`)
	jsonStderr    = []byte(`,"stream":"stderr"`)
	jsonTimeKey   = []byte(`"time":"`)
	jsonTimeField = []byte(`,"time":"`)
)

var errNotJSONLog = errors.New("not a json-file log entry")

// decodeJSONLog decodes one line of a json-file log (without its newline).
// The message is unescaped into dst, which is returned grown; text is the
// message within it. A line that is no log entry gives errNotJSONLog.
func decodeJSONLog(b, dst []byte) (stream byte, ts int64, text, grown []byte, err error) {
	if ts, ok := jsonLogTime(b); ok && bytes.HasPrefix(b, jsonLogPrefix) {
		start := len(dst)
		var end int
		if dst, end = unescapeJSON(dst, b[len(jsonLogPrefix):]); end >= 0 {
			// The stream, then at once the time jsonLogTime found: an
			// entry with attrs, or anything else, takes the slow path.
			rest := b[len(jsonLogPrefix)+end+1:]
			var stream byte
			switch {
			case bytes.HasPrefix(rest, jsonStdout):
				stream = streamStdout
			case bytes.HasPrefix(rest, jsonStderr):
				stream = streamStderr
			}
			if rest = rest[min(len(jsonStdout), len(rest)):]; stream != 0 && bytes.HasPrefix(rest, jsonTimeField) &&
				bytes.IndexByte(rest[len(jsonTimeField):], '"') == len(rest)-len(jsonTimeField)-2 {
				return stream, ts, dst[start:len(dst):len(dst)], dst, nil
			}
		}
		dst = dst[:start]
	}
	return decodeJSONLogSlow(b, dst)
}

// jsonLogTime finds the time at the end of an entry: `"time":"<t>"}`.
// Quotes inside strings are escaped, so the last `"time":"` is the key.
func jsonLogTime(b []byte) (int64, bool) {
	if len(b) < 32 || b[len(b)-1] != '}' || b[len(b)-2] != '"' {
		return 0, false
	}
	v := b[:len(b)-2]
	q := bytes.LastIndexByte(v, '"')
	if q < len(jsonTimeKey)-1 || !bytes.Equal(v[q-len(jsonTimeKey)+1:q+1], jsonTimeKey) {
		return 0, false
	}
	return parseDockerTime(v[q+1:])
}

// unescapeJSON appends the JSON string body s starts with (after its
// opening quote) to dst, unescaped, and returns the index of its closing
// quote in s, or -1 when the string is malformed or does not end.
func unescapeJSON(dst, s []byte) ([]byte, int) {
	i := 0
	for {
		q := bytes.IndexByte(s[i:], '"')
		if q < 0 {
			return dst, -1
		}
		seg := s[i : i+q]
		bs := bytes.IndexByte(seg, '\\')
		if bs < 0 {
			if !validJSONText(seg) {
				return dst, -1
			}
			return append(dst, seg...), i + q
		}
		if !validJSONText(seg[:bs]) {
			return dst, -1
		}
		dst = append(dst, seg[:bs]...)
		i += bs + 1
		if i >= len(s) {
			return dst, -1
		}
		c := s[i]
		i++
		switch c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'u':
			r, ok := hex4(s[i:])
			if !ok {
				return dst, -1
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok2 := rune(-1), false
				if len(s) >= i+6 && s[i] == '\\' && s[i+1] == 'u' {
					r2, ok2 = hex4(s[i+2:])
				}
				if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, -1
		}
	}
}

// validJSONText reports whether raw string bytes are valid UTF-8 without
// control characters, which JSON requires to be escaped. The Engine never
// writes invalid UTF-8; what does goes to encoding/json, which replaces it.
func validJSONText(b []byte) bool {
	for i, c := range b {
		if c < 0x20 {
			return false
		}
		if c >= 0x80 {
			for _, c := range b[i:] {
				if c < 0x20 {
					return false
				}
			}
			return utf8.Valid(b[i:])
		}
	}
	return true
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// decodeJSONLogSlow decodes an entry of any other layout: keys in another
// order, whitespace, a time with an offset.
func decodeJSONLogSlow(b, dst []byte) (stream byte, ts int64, text, grown []byte, err error) {
	var e struct {
		Log    *string `json:"log"`
		Stream string  `json:"stream"`
		Time   string  `json:"time"`
	}
	if json.Unmarshal(b, &e) != nil || e.Log == nil {
		return 0, 0, nil, dst, errNotJSONLog
	}
	switch e.Stream {
	case "stdout":
		stream = streamStdout
	case "stderr":
		stream = streamStderr
	default:
		return 0, 0, nil, dst, errNotJSONLog
	}
	ts, _ = splitTimestamp([]byte(e.Time + " "))
	if ts == 0 {
		return 0, 0, nil, dst, errNotJSONLog
	}
	start := len(dst)
	dst = append(dst, *e.Log...)
	return stream, ts, dst[start:len(dst):len(dst)], dst, nil
}
