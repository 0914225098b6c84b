package loggen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

// combined is nginx's combined format followed by the timestamp token.
var combined = regexp.MustCompile(`^(\S+) - - \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "([A-Z]+) (/\S*) (HTTP/[0-9.]+)" (\d{3}) (\d+) "([^"]*)" "([^"]*)" t=(\d+)$`)

func TestLineFormat(t *testing.T) {
	g := NewGenerator(1)
	base := time.Date(2025, 11, 25, 17, 39, 1, 123456789, time.UTC)
	const n = 20000
	var total int
	ips, paths, statuses, agents := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	var line []byte
	for i := range n {
		now := base.Add(time.Duration(i) * time.Millisecond)
		line = g.AppendLine(line[:0], now)
		if bytes.IndexByte(line, '\n') >= 0 {
			t.Fatalf("line %d contains a newline: %q", i, line)
		}
		m := combined.FindSubmatch(line)
		if m == nil {
			t.Fatalf("line %d is not in combined format: %q", i, line)
		}
		if len(line) < 90 || len(line) > 200 {
			t.Errorf("line %d has %d bytes, want 90..200: %q", i, len(line), line)
		}
		total += len(line)
		ts, ok := ParseTimestamp(line)
		if !ok || ts != now.UnixNano() {
			t.Fatalf("line %d: ParseTimestamp = %d, %v; want %d", i, ts, ok, now.UnixNano())
		}
		if got, _ := strconv.ParseInt(string(m[10]), 10, 64); got != now.UnixNano() {
			t.Fatalf("line %d: t= field %s, want %d", i, m[10], now.UnixNano())
		}
		if want := now.UTC().Format("02/Jan/2006:15:04:05 +0000"); string(m[2]) != want {
			t.Fatalf("line %d: time_local %q, want %q", i, m[2], want)
		}
		ips[string(m[1])], paths[string(m[4])], statuses[string(m[6])], agents[string(m[9])] = true, true, true, true
	}
	avg := float64(total) / n
	t.Logf("average line: %.1f bytes", avg)
	if avg < 120 || avg > 140 {
		t.Errorf("average line is %.1f bytes, want about 130", avg)
	}
	for name, c := range map[string]struct{ got, min int }{
		"ips": {len(ips), n * 9 / 10}, "paths": {len(paths), n / 2}, "statuses": {len(statuses), 8}, "agents": {len(agents), 10},
	} {
		if c.got < c.min {
			t.Errorf("only %d distinct %s in %d lines, want at least %d", c.got, name, n, c.min)
		}
	}
}

func TestDeterministic(t *testing.T) {
	now := time.Unix(1700000000, 0)
	a, b := NewGenerator(7), NewGenerator(7)
	for range 100 {
		la, lb := a.AppendLine(nil, now), b.AppendLine(nil, now)
		if !bytes.Equal(la, lb) {
			t.Fatalf("same seed, different lines:\n%s\n%s", la, lb)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		line string
		want int64
		ok   bool
	}{
		{`1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1 "-" "a" t=1764092341123456789`, 1764092341123456789, true},
		{"x t=42\n", 42, true},
		{"x t=42\r\n", 42, true},
		{"x t=1 y t=2", 2, true},
		{"x t=9223372036854775807", 9223372036854775807, true},
		{"x t=9223372036854775808", 0, false},
		{"x t=99999999999999999999", 0, false},
		{"x t=", 0, false},
		{"x t=12a", 0, false},
		{"x t=12 ", 0, false},
		{"no token", 0, false},
		{"t=5", 0, false}, // the token starts with a space
		{`{"msg":"done t=1764092341123456789"}`, 1764092341123456789, true},
		{"{\"msg\":\"done t=7\"}\n", 7, true},
		{`{"msg":"done t=7"}}`, 0, false},
		{`{"msg":"done t=7"`, 0, false},
		{`{"msg":"done t=7", "x":1}`, 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseTimestamp([]byte(tt.line))
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseTimestamp(%q) = %d, %v; want %d, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestWriteRoundRobin(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := range 3 {
		paths = append(paths, filepath.Join(dir, "f"+strconv.Itoa(i)+".log"))
	}
	res, err := Write(context.Background(), Config{Paths: paths, Lines: 1000, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lines != 1000 {
		t.Fatalf("wrote %d lines, want 1000", res.Lines)
	}
	var total, bytesOnDisk int64
	var prev int64
	for i, p := range paths {
		lines := readLines(t, p)
		want := 333
		if i == 0 {
			want = 334
		}
		if len(lines) != want {
			t.Errorf("%s has %d lines, want %d", p, len(lines), want)
		}
		total += int64(len(lines))
		st, _ := os.Stat(p)
		bytesOnDisk += st.Size()
		for _, l := range lines {
			if _, ok := ParseTimestamp(l); !ok {
				t.Fatalf("%s: no timestamp in %q", p, l)
			}
		}
	}
	// Timestamps across files increase in write order: line i is in file i%3.
	for i := range 999 {
		l := readLines(t, paths[i%3])[i/3]
		ts, _ := ParseTimestamp(l)
		if ts < prev {
			t.Fatalf("line %d: timestamp went back from %d to %d", i, prev, ts)
		}
		prev = ts
	}
	if total != res.Lines || bytesOnDisk != res.Bytes {
		t.Errorf("files hold %d lines / %d bytes, result says %d / %d", total, bytesOnDisk, res.Lines, res.Bytes)
	}
}

func TestWriteRotation(t *testing.T) {
	for _, copyTruncate := range []bool{false, true} {
		t.Run(fmt.Sprintf("copytruncate=%v", copyTruncate), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "access.log")
			res, err := Write(context.Background(), Config{Paths: []string{p}, Lines: 250, RotateLines: 100, RotateKeep: 2, CopyTruncate: copyTruncate})
			if err != nil {
				t.Fatal(err)
			}
			if res.Rotations != 2 {
				t.Errorf("rotations = %d, want 2", res.Rotations)
			}
			// 250 lines in files of 100: the oldest 100 went to .2, the
			// next 100 to .1, and the last 50 are in the live file.
			for _, c := range []struct {
				path string
				n    int
			}{{p + ".2", 100}, {p + ".1", 100}, {p, 50}} {
				if got := len(readLines(t, c.path)); got != c.n {
					t.Errorf("%s has %d lines, want %d", c.path, got, c.n)
				}
			}
			// A hole left by truncating without seeking back would make
			// the files larger than what was written.
			var onDisk int64
			for _, f := range []string{p, p + ".1", p + ".2"} {
				st, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				onDisk += st.Size()
			}
			if onDisk != res.Bytes {
				t.Errorf("files hold %d bytes, %d were written", onDisk, res.Bytes)
			}
			if _, err := os.Stat(p + ".3"); !os.IsNotExist(err) {
				t.Errorf("%s.3 exists, RotateKeep is 2", p)
			}
			first, _ := ParseTimestamp(readLines(t, p+".2")[0])
			mid, _ := ParseTimestamp(readLines(t, p+".1")[0])
			last, _ := ParseTimestamp(readLines(t, p)[49])
			if first > mid || mid > last {
				t.Errorf("rotated files out of order: %d, %d, %d", first, mid, last)
			}
		})
	}
}

func TestWriteRate(t *testing.T) {
	var buf bytes.Buffer
	// 2000 lines/s for at most 10 s but capped at 300 lines: the cap ends
	// the run, and the rate keeps it from ending instantly.
	res, err := Write(context.Background(), Config{Out: &buf, Lines: 300, Rate: 2000, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lines != 300 || bytes.Count(buf.Bytes(), []byte("\n")) != 300 {
		t.Fatalf("wrote %d lines (%d in output), want 300", res.Lines, bytes.Count(buf.Bytes(), []byte("\n")))
	}
	// 300 lines at 2000/s take at least 150 ms; a generous lower bound
	// only, since a loaded machine may be slower but never faster.
	if res.Elapsed < 140*time.Millisecond {
		t.Errorf("rate-limited run took %v, want at least 150ms at 2000 lines/s", res.Elapsed)
	}
}

func TestWriteStopsOnDuration(t *testing.T) {
	var buf bytes.Buffer
	res, err := Write(context.Background(), Config{Out: &buf, Rate: 1000, Duration: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lines != 50 {
		t.Errorf("wrote %d lines in a 50ms run at 1000/s, want 50", res.Lines)
	}
}

func TestWriteRejectsUnbounded(t *testing.T) {
	if _, err := Write(context.Background(), Config{Out: &bytes.Buffer{}}); err == nil {
		t.Error("an unbounded run with no way to stop was accepted")
	}
	if _, err := Write(context.Background(), Config{}); err == nil {
		t.Error("a run with no output was accepted")
	}
}

func BenchmarkAppendLine(b *testing.B) {
	g := NewGenerator(1)
	line := make([]byte, 0, 256)
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		line = g.AppendLine(line[:0], now.Add(time.Duration(i)))
	}
	b.SetBytes(int64(len(line)))
}

func BenchmarkParseTimestamp(b *testing.B) {
	line := NewGenerator(1).AppendLine(nil, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParseTimestamp(line); !ok {
			b.Fatal("no timestamp")
		}
	}
}

func TestPaths(t *testing.T) {
	tests := []struct {
		path string
		n    int
		want []string
	}{
		{"/x/access.log", 1, []string{"/x/access.log"}},
		{"/x/access.log", 3, []string{"/x/access-0.log", "/x/access-1.log", "/x/access-2.log"}},
		{"/x/app", 11, nil},
	}
	for _, tt := range tests {
		got := Paths(tt.path, tt.n)
		if tt.want != nil && !slices.Equal(got, tt.want) {
			t.Errorf("Paths(%q, %d) = %v, want %v", tt.path, tt.n, got, tt.want)
		}
		if len(got) != max(tt.n, 1) {
			t.Errorf("Paths(%q, %d) has %d names", tt.path, tt.n, len(got))
		}
		if tt.n == 11 && (got[0] != "/x/app-00" || got[10] != "/x/app-10") {
			t.Errorf("Paths(%q, 11) = %v, want zero-padded names", tt.path, got)
		}
	}
}
