package loggen

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jsonLine is the JSON format's schema; decoding with unknown fields
// disallowed catches a field added or renamed by mistake.
type jsonLine struct {
	TS         string  `json:"ts"`
	Level      string  `json:"level"`
	Tenant     string  `json:"tenant"`
	Method     string  `json:"method"`
	Path       string  `json:"path"`
	DurationMs float64 `json:"duration_ms"`
	Msg        string  `json:"msg"`
}

// jsonKeys returns the top-level keys of an object in the order written.
func jsonKeys(t *testing.T, line []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %q", line)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	}
	return keys
}

func TestJSONLineFormat(t *testing.T) {
	g := NewGenerator(1)
	base := time.Date(2025, 11, 25, 17, 39, 1, 123456789, time.UTC)
	const n = 20000
	wantKeys := "ts,level,tenant,method,path,duration_ms,msg"
	known := func(tab []weighted) map[string]bool {
		m := map[string]bool{}
		for _, e := range tab {
			m[e.v] = true
		}
		return m
	}
	knownLevels, knownTenants, knownMethods := known(levels), known(tenants), known(methods)
	seenLevels, seenTenants, paths := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var total int
	var line []byte
	for i := range n {
		// Vary the nanoseconds, including whole seconds, whose
		// RFC3339Nano form has no fraction at all.
		now := base.Add(time.Duration(i) * 999_999_937)
		line = g.AppendJSONLine(line[:0], now)
		if bytes.IndexByte(line, '\n') >= 0 {
			t.Fatalf("line %d contains a newline: %q", i, line)
		}
		if i < 200 {
			// Token-level parsing is slow; the field order is fixed by
			// the code, so a sample shows it.
			if got := strings.Join(jsonKeys(t, line), ","); got != wantKeys {
				t.Fatalf("line %d: keys %s, want %s: %q", i, got, wantKeys, line)
			}
		}
		var l jsonLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %d is not valid JSON of the schema: %v: %q", i, err, line)
		}
		ts, err := time.Parse(time.RFC3339Nano, l.TS)
		if err != nil || !ts.Equal(now) {
			t.Fatalf("line %d: ts %q parses as %v, %v; want %v", i, l.TS, ts, err, now)
		}
		wt, ok := ParseTimestamp(line)
		if !ok || wt != now.UnixNano() {
			t.Fatalf("line %d: ParseTimestamp = %d, %v; want %d", i, wt, ok, now.UnixNano())
		}
		if want := TimestampToken + strconv.FormatInt(now.UnixNano(), 10); !strings.HasSuffix(l.Msg, want) || len(l.Msg) <= len(want) {
			t.Fatalf("line %d: msg %q does not end with %q after a message", i, l.Msg, want)
		}
		if !knownLevels[l.Level] || !knownTenants[l.Tenant] || !knownMethods[l.Method] {
			t.Fatalf("line %d: unexpected level, tenant or method: %q", i, line)
		}
		if !strings.HasPrefix(l.Path, "/") || l.DurationMs <= 0 {
			t.Fatalf("line %d: bad path or duration: %q", i, line)
		}
		seenLevels[l.Level], seenTenants[l.Tenant], paths[l.Path] = true, true, true
		total += len(line)
	}
	avg := float64(total) / n
	t.Logf("average line: %.1f bytes", avg)
	if avg < 180 || avg > 200 {
		t.Errorf("average line is %.1f bytes, want about 190", avg)
	}
	if len(seenLevels) != len(levels) || len(seenTenants) != len(tenants) || len(paths) < n/2 {
		t.Errorf("too little variety in %d lines: %d levels, %d tenants, %d paths", n, len(seenLevels), len(seenTenants), len(paths))
	}
}

func TestAppendByFormat(t *testing.T) {
	now := time.Unix(1700000000, 5)
	for _, f := range []Format{Access, JSON} {
		a, b := NewGenerator(7), NewGenerator(7)
		for range 100 {
			la := a.Append(f, nil, now)
			var lb []byte
			if f == JSON {
				lb = b.AppendJSONLine(nil, now)
			} else {
				lb = b.AppendLine(nil, now)
			}
			if !bytes.Equal(la, lb) {
				t.Fatalf("%v: Append differs from the format's own method, or the same seed gave different lines:\n%s\n%s", f, la, lb)
			}
		}
		if isJSON := json.Valid(a.Append(f, nil, now)); isJSON != (f == JSON) {
			t.Errorf("%v: json.Valid = %v", f, isJSON)
		}
	}
}

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in   string
		want Format
		ok   bool
	}{
		{"access", Access, true},
		{"", Access, true},
		{"json", JSON, true},
		{"JSON", 0, false},
		{"logfmt", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseFormat(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok && tt.in != "" && got.String() != tt.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tt.in)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	res, err := Write(context.Background(), Config{Out: &buf, Lines: 500, Format: JSON, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	if res.Lines != 500 || len(lines) != 500 || int64(buf.Len()) != res.Bytes {
		t.Fatalf("wrote %d lines, %d bytes; result says %d, %d", len(lines), buf.Len(), res.Lines, res.Bytes)
	}
	for i, l := range lines {
		if !json.Valid(l) {
			t.Fatalf("line %d is not JSON: %q", i, l)
		}
		if _, ok := ParseTimestamp(l); !ok {
			t.Fatalf("line %d: no write time: %q", i, l)
		}
	}
}

func BenchmarkAppendJSONLine(b *testing.B) {
	g := NewGenerator(1)
	line := make([]byte, 0, 256)
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		line = g.AppendJSONLine(line[:0], now.Add(time.Duration(i)))
	}
	b.SetBytes(int64(len(line)))
}
