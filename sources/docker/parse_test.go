package docker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

const t0 = int64(1_700_000_000_123_456_789)

func stamp(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
}

// frame builds one stdcopy frame holding a timestamped message.
func frame(stream byte, ns int64, text string) []byte {
	payload := stamp(ns) + " " + text
	var hdr [8]byte
	hdr[0] = stream
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(payload)))
	return append(hdr[:], payload...)
}

func parseAll(t *testing.T, in []byte, raw bool, since int64, maxLine int) []line {
	t.Helper()
	var got []line
	p := &parser{maxLine: maxLine, since: since, truncated: func() {}, emit: func(l line) bool {
		got = append(got, l)
		return true
	}, flushAtEOF: true}
	var err error
	if raw {
		err = p.readRaw(bytes.NewReader(in))
	} else {
		err = p.readMux(bytes.NewReader(in))
	}
	if err != io.EOF {
		t.Fatalf("read: %v", err)
	}
	return got
}

func TestParserMux(t *testing.T) {
	cat := func(fs ...[]byte) []byte { return bytes.Join(fs, nil) }
	tests := []struct {
		name    string
		in      []byte
		since   int64
		maxLine int
		want    []line
	}{
		{
			name: "streams and timestamps",
			in:   cat(frame(1, t0, "out\n"), frame(2, t0+1, "err\n")),
			want: []line{{t0, t0, 1, []byte("out")}, {t0 + 1, t0 + 1, 2, []byte("err")}},
		},
		{
			name:  "since is inclusive: at or before it is skipped",
			in:    cat(frame(1, t0, "a\n"), frame(1, t0+1, "b\n"), frame(1, t0+2, "c\n")),
			since: t0 + 1,
			want:  []line{{t0 + 2, t0 + 2, 1, []byte("c")}},
		},
		{
			name: "partial pieces are joined; time of the first, cursor of the last",
			in:   cat(frame(1, t0, "aaa"), frame(1, t0+5, "bbb"), frame(1, t0+9, "ccc\n")),
			want: []line{{t0, t0 + 9, 1, []byte("aaabbbccc")}},
		},
		{
			name: "the cursor stays before a line the other stream holds open",
			in:   cat(frame(1, t0, "open"), frame(2, t0+3, "err\n"), frame(1, t0+6, "ed\n")),
			want: []line{{t0 + 3, t0 - 1, 2, []byte("err")}, {t0, t0 + 6, 1, []byte("opened")}},
		},
		{
			name: "a line open at the end of the final pass is emitted",
			in:   cat(frame(1, t0, "x\n"), frame(1, t0+1, "dangling")),
			want: []line{{t0, t0, 1, []byte("x")}, {t0 + 1, t0 + 1, 1, []byte("dangling")}},
		},
		{
			name:    "long lines are truncated",
			in:      cat(frame(1, t0, "0123456789\n"), frame(1, t0+1, "01234"), frame(1, t0+2, "56789\n")),
			maxLine: 4,
			want:    []line{{t0, t0, 1, []byte("0123")}, {t0 + 1, t0 + 2, 1, []byte("0123")}},
		},
		{
			name: "empty lines are kept",
			in:   frame(1, t0, "\n"),
			want: []line{{t0, t0, 1, []byte{}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.maxLine == 0 {
				tc.maxLine = DefaultMaxLineSize
			}
			got := parseAll(t, tc.in, false, tc.since, tc.maxLine)
			if fmt.Sprintf("%v", got) != fmt.Sprintf("%v", tc.want) {
				t.Fatalf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestParserEngineErrorFrame(t *testing.T) {
	msg := "no such container"
	in := append([]byte{3, 0, 0, 0, 0, 0, 0, byte(len(msg))}, msg...)
	p := &parser{maxLine: 100, emit: func(line) bool { return true }, truncated: func() {}}
	if err := p.readMux(bytes.NewReader(in)); err == nil || !strings.Contains(err.Error(), msg) {
		t.Fatalf("got %v, want the engine's message", err)
	}
	p = &parser{maxLine: 100, emit: func(line) bool { return true }, truncated: func() {}}
	if err := p.readMux(bytes.NewReader(frame(1, t0, "cut")[:12])); err == nil || err == io.EOF {
		t.Fatalf("a truncated frame gave %v", err)
	}
}

func TestParserRaw(t *testing.T) {
	piece := strings.Repeat("p", dockerPieceSize)
	tests := []struct {
		name string
		in   string
		want []line
	}{
		{
			name: "CRLF lines",
			in:   stamp(t0) + " one\r\n" + stamp(t0+1) + " two\r\n",
			want: []line{{t0, t0, 1, []byte("one")}, {t0 + 1, t0 + 1, 1, []byte("two")}},
		},
		{
			name: "split line: continuation timestamps removed",
			in:   stamp(t0) + " " + piece + stamp(t0+4) + " " + piece + stamp(t0+8) + " end\r\n",
			want: []line{{t0, t0 + 8, 1, []byte(piece + piece + "end")}},
		},
		{
			name: "a text with a timestamp elsewhere is left alone",
			in:   stamp(t0) + " at " + stamp(t0) + " it broke\n",
			want: []line{{t0, t0, 1, []byte("at " + stamp(t0) + " it broke")}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseAll(t, []byte(tc.in), true, 0, DefaultMaxLineSize)
			if fmt.Sprintf("%v", got) != fmt.Sprintf("%v", tc.want) {
				t.Fatalf("got  %.300v\nwant %.300v", got, tc.want)
			}
		})
	}
}

func TestParseCursor(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{stamp(t0), t0, true},
		{"2023-11-14T22:13:20.5+01:00", time.Date(2023, 11, 14, 21, 13, 20, 5e8, time.UTC).UnixNano(), true},
		// Promtail's unix seconds resume at the start of that second.
		{"1700000000", 1_700_000_000*1e9 - 1, true},
		{"1700000000.75", 1_700_000_000*1e9 - 1, true},
		{"", 0, false},
		{"-5", 0, false},
		{"yesterday", 0, false},
		{"99999999999999999", 0, false},
	}
	for _, tc := range tests {
		got, ok := parseCursor(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseCursor(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if got, _ := parseCursor(formatCursor(t0)); got != t0 {
		t.Fatalf("round trip lost precision: %d != %d", got, t0)
	}
}

// Batches that settle out of order move the cursor only over a settled
// prefix; a destroyed container's key does not come back.
func TestCheckpointSettleOrder(t *testing.T) {
	pos, _ := pipeline.OpenPositions("", false)
	ck := newCheckpoint(pos, "abc")
	p1, p2, p3 := ck.add(t0+1), ck.add(t0+2), ck.add(t0+3)
	ck.settle(p2)
	if _, ok := pos.Get("cursor-abc"); ok {
		t.Fatal("cursor moved past an unsettled batch")
	}
	ck.settle(p1)
	if v, _ := pos.Get("cursor-abc"); v != formatCursor(t0+2) {
		t.Fatalf("cursor %q, want %q", v, formatCursor(t0+2))
	}
	if got := ck.load(); got != t0+2 {
		t.Fatalf("load = %d", got)
	}
	ck.remove()
	ck.settle(p3)
	if _, ok := pos.Get("cursor-abc"); ok {
		t.Fatal("a destroyed container's cursor came back")
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		cfg, want string
	}{
		{"host: \"ftp://x\"\n", "test.yaml:1:7: invalid docker host"},
		{"refresh_interval: -1s\n", "test.yaml:1:19: refresh_interval must not be negative"},
		{"filters:\n  - name: label\n", "test.yaml:2:5: a filter needs a name"},
		{"labels: {__x: y}\n", "invalid label name"},
		{"hots: x\n", "test.yaml:1:1"},
		{"relabel_configs:\n  - regex: '('\n", "test.yaml:2:12: invalid regex"},
		{"default_labels: [container, image]\n", "test.yaml:1:29: unknown default label \"image\""},
		{"port: 70000\n", "test.yaml:1:7: port 70000 is out of range"},
		{"tls_config: {insecure_skip_verify: true}\n", "test.yaml:1:1: TLS, auth and proxy settings apply to tcp://"},
		{"host: tcp://d:2376\ntls_config: {ca_file: /nonexistent}\n", "test.yaml:2:13: ca_file"},
		{"host: tcp://d:2376\nbasic_auth: {username: u}\nbearer_token: t\n", "test.yaml:3:15: at most one of"},
		{"containers_path: containers\n", "test.yaml:1:18: containers_path \"containers\" is not an absolute path"},
		{"read_log_files: maybe\n", "test.yaml:1:17"},
	}
	for _, tc := range tests {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tc.cfg), &doc); err != nil {
			t.Fatal(err)
		}
		_, err := New(pipeline.Env{Decoder: pipeline.Decoder{File: "test.yaml"}}, doc.Content[0])
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
	var doc yaml.Node
	_ = yaml.Unmarshal([]byte("filters:\n  - {name: label, values: [a=b]}\ntenant_label: tenant\n"), &doc)
	s, err := New(pipeline.Env{Decoder: pipeline.Decoder{File: "test.yaml"}}, doc.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.host != DefaultHost || s.cfg.refresh != DefaultRefreshInterval || !s.cfg.filters["label"]["a=b"] {
		t.Fatalf("defaults not applied: %+v", s.cfg)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"com.docker.compose.project": "com_docker_compose_project",
		"9lives":                     "_lives",
		"a-b/c":                      "a_b_c",
		"ok_1":                       "ok_1",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkParserMux(b *testing.B) {
	var in []byte
	for i := range 1000 {
		in = append(in, frame(byte(1+i%2), t0+int64(i), fmt.Sprintf("level=info msg=\"request served\" path=/api/v1/items/%d status=200 took=1.2ms\n", i))...)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	n := 0
	p := &parser{maxLine: DefaultMaxLineSize, truncated: func() {}, emit: func(line) bool { n++; return true }}
	for b.Loop() {
		p.since = 0
		_ = p.readMux(bytes.NewReader(in))
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}

// A line still open when a (non-final) stream ends is held back, not sent
// in pieces: the Engine may have ended the follow before its last pieces,
// and the next pass reads it again from its first piece.
func TestParserHoldsOpenLineAtEndOfStream(t *testing.T) {
	const t0 = 1700000000123456789
	var got []line
	p := &parser{maxLine: DefaultMaxLineSize, truncated: func() {}, emit: func(l line) bool {
		got = append(got, l)
		return true
	}}
	in := append(frame(1, t0, "x\n"), frame(1, t0+1, "first piece of a long line")...)
	if err := p.readMux(bytes.NewReader(in)); err != io.EOF {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got[0].data) != "x" || got[0].cursor != t0 {
		t.Fatalf("got %v, want only the complete line", got)
	}
	if !p.held {
		t.Fatal("the open line is not reported held")
	}
}

// A re-read starts at the cursor, which stays before a line the other
// stream held open, so it brings back lines already sent on this stream;
// the per-stream done marks skip them.
func TestParserSkipsLinesDoneOnReRead(t *testing.T) {
	const t0 = 1700000000123456789
	in := bytes.Join([][]byte{frame(2, t0, "err first piece "), frame(1, t0+1, "out done\n"), frame(2, t0+2, "err last piece\n"), frame(1, t0+3, "out new\n")}, nil)
	var got []line
	p := &parser{maxLine: DefaultMaxLineSize, since: t0 - 1, truncated: func() {}, emit: func(l line) bool {
		got = append(got, l)
		return true
	}}
	p.done[1] = t0 + 1 // "out done" was sent by the pass before
	if err := p.readMux(bytes.NewReader(in)); err != io.EOF {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0].data) != "err first piece err last piece" || string(got[1].data) != "out new" {
		t.Fatalf("got %v", got)
	}
}
