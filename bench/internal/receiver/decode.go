package receiver

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Visitor receives each entry of a push request. labels and line alias the
// request buffer and are only valid during the call.
type Visitor func(labels, line []byte, ts int64)

var errTruncated = errors.New("truncated message")

// field reads one protobuf field header and, for length-delimited fields,
// its payload. It returns the rest of buf.
func field(buf []byte) (num int, typ int, val uint64, payload, rest []byte, err error) {
	key, n := binary.Uvarint(buf)
	if n <= 0 {
		return 0, 0, 0, nil, nil, errTruncated
	}
	buf = buf[n:]
	num, typ = int(key>>3), int(key&7)
	if num == 0 {
		return 0, 0, 0, nil, nil, errors.New("field number 0")
	}
	switch typ {
	case 0: // varint
		val, n = binary.Uvarint(buf)
		if n <= 0 {
			return 0, 0, 0, nil, nil, errTruncated
		}
		return num, typ, val, nil, buf[n:], nil
	case 1: // fixed64
		if len(buf) < 8 {
			return 0, 0, 0, nil, nil, errTruncated
		}
		return num, typ, binary.LittleEndian.Uint64(buf), nil, buf[8:], nil
	case 2: // bytes
		l, n := binary.Uvarint(buf)
		if n <= 0 || l > uint64(len(buf)-n) {
			return 0, 0, 0, nil, nil, errTruncated
		}
		buf = buf[n:]
		return num, typ, 0, buf[:l], buf[l:], nil
	case 5: // fixed32
		if len(buf) < 4 {
			return 0, 0, 0, nil, nil, errTruncated
		}
		return num, typ, uint64(binary.LittleEndian.Uint32(buf)), nil, buf[4:], nil
	}
	return 0, 0, 0, nil, nil, fmt.Errorf("unsupported wire type %d", typ)
}

// WalkPush visits every entry of a protobuf-encoded (uncompressed)
// logproto.PushRequest without allocating, which keeps the receiver's own
// CPU small next to the agent being measured. It follows the wire format
// of github.com/grafana/loki/pkg/push; the tests check it against that
// package's encoder.
func WalkPush(buf []byte, visit Visitor) (streams int, err error) {
	for len(buf) > 0 {
		num, typ, _, payload, rest, err := field(buf)
		if err != nil {
			return streams, fmt.Errorf("push request: %w", err)
		}
		buf = rest
		if num != 1 {
			continue // format, and fields a newer Loki may add
		}
		if typ != 2 {
			return streams, fmt.Errorf("push request: streams field has wire type %d", typ)
		}
		if err := walkStream(payload, visit); err != nil {
			return streams, fmt.Errorf("stream %d: %w", streams, err)
		}
		streams++
	}
	return streams, nil
}

func walkStream(buf []byte, visit Visitor) error {
	// Labels may come after the entries on the wire; find them first.
	var labels []byte
	for b := buf; len(b) > 0; {
		num, typ, _, payload, rest, err := field(b)
		if err != nil {
			return err
		}
		if num == 1 && typ == 2 {
			labels = payload
		}
		b = rest
	}
	for len(buf) > 0 {
		num, typ, _, payload, rest, err := field(buf)
		if err != nil {
			return err
		}
		buf = rest
		if num != 2 {
			continue
		}
		if typ != 2 {
			return fmt.Errorf("entries field has wire type %d", typ)
		}
		line, ts, err := entry(payload)
		if err != nil {
			return fmt.Errorf("entry: %w", err)
		}
		visit(labels, line, ts)
	}
	return nil
}

func entry(buf []byte) (line []byte, ts int64, err error) {
	for len(buf) > 0 {
		num, typ, _, payload, rest, err := field(buf)
		if err != nil {
			return nil, 0, err
		}
		buf = rest
		switch {
		case num == 1 && typ == 2:
			if ts, err = timestamp(payload); err != nil {
				return nil, 0, err
			}
		case num == 2 && typ == 2:
			line = payload
		}
	}
	return line, ts, nil
}

// timestamp decodes google.protobuf.Timestamp into unix nanoseconds.
func timestamp(buf []byte) (int64, error) {
	var sec, nsec int64
	for len(buf) > 0 {
		num, typ, val, _, rest, err := field(buf)
		if err != nil {
			return 0, fmt.Errorf("timestamp: %w", err)
		}
		buf = rest
		if typ != 0 {
			continue
		}
		switch num {
		case 1:
			sec = int64(val)
		case 2:
			nsec = int64(int32(val))
		}
	}
	return sec*1e9 + nsec, nil
}

// jsonPush is Loki's JSON push body:
//
//	{"streams":[{"stream":{"job":"x"},"values":[["<unix ns>","line"],["<unix ns>","line",{"k":"v"}]]}]}
type jsonPush struct {
	Streams []struct {
		Stream map[string]string   `json:"stream"`
		Values [][]json.RawMessage `json:"values"`
	} `json:"streams"`
}

// WalkJSON visits every entry of a JSON push body. Labels are rendered the
// way the protobuf format carries them: {a="1", b="2"}, sorted by name.
func WalkJSON(body []byte, visit Visitor) (streams int, err error) {
	var req jsonPush
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, fmt.Errorf("push request: %w", err)
	}
	for si, s := range req.Streams {
		labels := []byte(renderLabels(s.Stream))
		for vi, v := range s.Values {
			if len(v) < 2 || len(v) > 3 {
				return si, fmt.Errorf("stream %d value %d: want [ts, line] or [ts, line, metadata], got %d elements", si, vi, len(v))
			}
			var tsText, line string
			if err := json.Unmarshal(v[0], &tsText); err != nil {
				return si, fmt.Errorf("stream %d value %d: timestamp: %w", si, vi, err)
			}
			ts, err := strconv.ParseInt(tsText, 10, 64)
			if err != nil {
				return si, fmt.Errorf("stream %d value %d: timestamp: %w", si, vi, err)
			}
			if err := json.Unmarshal(v[1], &line); err != nil {
				return si, fmt.Errorf("stream %d value %d: line: %w", si, vi, err)
			}
			if len(v) == 3 {
				var md map[string]string
				if err := json.Unmarshal(v[2], &md); err != nil {
					return si, fmt.Errorf("stream %d value %d: structured metadata: %w", si, vi, err)
				}
			}
			visit(labels, []byte(line), ts)
		}
	}
	return len(req.Streams), nil
}

func renderLabels(m map[string]string) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(m[k]))
	}
	b.WriteByte('}')
	return b.String()
}
