package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/vigilhq/vigil/internal/jsonstr"
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
	jsonLogPrefix  = []byte(`{"log":"`)
	jsonStdout     = []byte(`,"stream":"stdout"`)
	jsonStderr     = []byte(`,"stream":"stderr"`)
	jsonTimeField  = []byte(`,"time":"`)
	jsonAttrsField = []byte(`,"attrs":{`)
)

var errNotJSONLog = errors.New("not a json-file log entry")

// decodeJSONLog decodes one line of a json-file log (without its newline).
// The message is unescaped into dst, which is returned grown; text is the
// message within it. A line that is no log entry gives errNotJSONLog.
func decodeJSONLog(b, dst []byte) (stream byte, ts int64, text, grown []byte, err error) {
	if ts, ok := jsonLogTime(b); ok && bytes.HasPrefix(b, jsonLogPrefix) {
		// The message's string: valid JSON, and valid UTF-8 (the Engine
		// writes nothing else; encoding/json would replace what is not).
		end, esc, ok := jsonstr.Scan(b, len(jsonLogPrefix)-1)
		if ok && utf8.Valid(b[len(jsonLogPrefix):end-1]) {
			// The stream, the attrs the labels, env and tag log options
			// add, then the time jsonLogTime found; anything else takes
			// the slow path.
			rest := b[end:]
			var stream byte
			switch {
			case bytes.HasPrefix(rest, jsonStdout):
				stream = streamStdout
			case bytes.HasPrefix(rest, jsonStderr):
				stream = streamStderr
			}
			rest = rest[min(len(jsonStdout), len(rest)):]
			if bytes.HasPrefix(rest, jsonAttrsField) {
				rest = skipAttrs(rest[len(jsonAttrsField):])
			}
			if stream != 0 && bytes.HasPrefix(rest, jsonTimeField) &&
				bytes.IndexByte(rest[len(jsonTimeField):], '"') == len(rest)-len(jsonTimeField)-2 {
				start := len(dst)
				if raw := b[len(jsonLogPrefix) : end-1]; esc {
					dst = jsonstr.Unescape(dst, raw)
				} else {
					dst = append(dst, raw...)
				}
				return stream, ts, dst[start:len(dst):len(dst)], dst, nil
			}
		}
	}
	return decodeJSONLogSlow(b, dst)
}

// skipAttrs skips the attrs object (after its opening brace), which holds
// string values only, and returns what follows it, or nil when it is not
// such an object.
func skipAttrs(b []byte) []byte {
	if len(b) > 0 && b[0] == '}' {
		return b[1:]
	}
	str := func(i int) int { // the end of the string at i, or -1
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		end, _, ok := jsonstr.Scan(b, i)
		if !ok || !utf8.Valid(b[i:end]) {
			return -1
		}
		return end
	}
	i := 0
	for {
		if i = str(i); i < 0 || i >= len(b) || b[i] != ':' {
			return nil
		}
		if i = str(i + 1); i < 0 || i >= len(b) {
			return nil
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return b[i+1:]
		default:
			return nil
		}
	}
}

// jsonLogTime finds the time at the end of an entry: `,"time":"<t>"}`.
// Quotes inside strings are escaped, so the last `,"time":"` is the key.
func jsonLogTime(b []byte) (int64, bool) {
	if len(b) < 32 || b[len(b)-1] != '}' || b[len(b)-2] != '"' {
		return 0, false
	}
	v := b[:len(b)-2]
	q := bytes.LastIndexByte(v, '"')
	if q < len(jsonTimeField)-1 || !bytes.Equal(v[q-len(jsonTimeField)+1:q+1], jsonTimeField) {
		return 0, false
	}
	return parseDockerTime(v[q+1:])
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
