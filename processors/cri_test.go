package processors

import (
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pipeline"
)

func TestCRIDocumented(t *testing.T) {
	tests := []struct {
		name       string
		line       string
		wantLine   string
		wantTime   string
		wantStream string
		wantFields map[string]string
	}{
		{
			name:       "documented example",
			line:       "2019-04-30T02:12:41.8443515Z stdout F message",
			wantLine:   "message",
			wantTime:   "2019-04-30T02:12:41.8443515Z",
			wantStream: "stdout",
			wantFields: map[string]string{"content": "message", "stream": "stdout", "flags": "F", "time": "2019-04-30T02:12:41.8443515Z"},
		},
		{
			name:       "the one well-formed line of the format description",
			line:       "2019-01-01T01:00:00.000000001Z stderr P test\ngood",
			wantLine:   "",
			wantTime:   "2019-01-01T01:00:00.000000001Z",
			wantStream: "stderr",
		},
		{name: "space inside the time", line: "2019-01-01 T01:00:00.000000001Z stderr testgood", wantLine: "2019-01-01 T01:00:00.000000001Z stderr testgood"},
		{name: "no stream", line: "2019-01-01T01:00:00.000000001Z testgood", wantLine: "2019-01-01T01:00:00.000000001Z testgood"},
		{
			// Promtail's own tests.
			name:       "multi line content",
			line:       "2019-01-01T01:00:00.000000001Z stderr F message\nmessage2",
			wantLine:   "message\nmessage2",
			wantTime:   "2019-01-01T01:00:00.000000001Z",
			wantStream: "stderr",
		},
		{name: "invalid timestamp", line: "3242 stderr F message", wantLine: "message", wantStream: "stderr"},
		{name: "invalid line", line: "i'm invalid!!!", wantLine: "i'm invalid!!!"},
		{name: "empty content", line: "2019-01-01T01:00:00Z stdout F ", wantLine: "", wantTime: "2019-01-01T01:00:00Z", wantStream: "stdout"},
		{name: "tab after time", line: "2019-01-01T01:00:00Z\tstdout F x", wantLine: "2019-01-01T01:00:00Z\tstdout F x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newParserStageForTest(t, "cri", "")
			b := parserBatchForTest(pipeline.Labels{{Name: "job", Value: "k8s"}}, tt.line)
			s.Process(b)
			if tt.name == "the one well-formed line of the format description" {
				// A P line waits for the rest; force it out to look at it.
				if len(b.Entries) != 0 {
					t.Fatalf("a partial line went out alone")
				}
				b = s.Processor.(pipeline.Flusher).Flush(time.Now(), true)
				if string(b.Entries[0].Line) != "test\ngood" {
					t.Fatalf("flushed %q", b.Entries[0].Line)
				}
				tt.wantLine = "test\ngood"
			}
			e := b.Entries[0]
			if string(e.Line) != tt.wantLine {
				t.Errorf("line = %q, want %q", e.Line, tt.wantLine)
			}
			wantTime := int64(1000)
			if tt.wantTime != "" {
				wantTime = parserTimeForTest(t, tt.wantTime)
			}
			if e.Time != wantTime {
				t.Errorf("time = %d, want %d", e.Time, wantTime)
			}
			if got := e.Labels.Get("stream"); got != tt.wantStream {
				t.Errorf("stream label = %q, want %q", got, tt.wantStream)
			}
			if tt.wantFields != nil {
				parserWantFieldsForTest(t, e.Extracted, tt.wantFields)
			}
			if tt.wantStream == "" && s.errors("malformed_cri") != 1 {
				t.Errorf("malformed line not counted")
			}
		})
	}
}

// criLineForTest is one line of a stream for the partial line tests.
type criLineForTest struct {
	labels string // value of label "l"
	line   string
}

func TestCRIPartialLines(t *testing.T) {
	const ts1, ts2 = "2019-05-07T18:57:50.904275087+00:00", "2019-05-07T18:57:55.904275087+00:00"
	tests := []struct {
		name   string
		config string
		lines  []criLineForTest
		want   []string
	}{
		{
			name:  "full lines",
			lines: []criLineForTest{{"a", ts1 + " stdout F some full line"}, {"a", ts2 + " stdout F log"}},
			want:  []string{"some full line", "log"},
		},
		{
			name: "two streams",
			lines: []criLineForTest{
				{"a", ts1 + " stdout P partial line 1 "}, {"b", ts1 + " stdout P partial line 2 "},
				{"a", ts2 + " stdout F log finished"}, {"b", ts2 + " stdout F another full log"},
			},
			want: []string{"partial line 1 log finished", "partial line 2 another full log"},
		},
		{
			name:   "max_partial_lines exceeded sends the waiting lines",
			config: "max_partial_lines: 3",
			lines: []criLineForTest{
				{"a", ts1 + " stdout P partial line 1 "}, {"b", ts1 + " stdout P partial line 2 "},
				{"a", ts1 + " stdout P partial line 3 "}, {"c", ts1 + " stdout P partial line 4 "},
				{"d", ts1 + " stdout P partial line 5 "},
				{"a", ts2 + " stdout F log finished"}, {"c", ts2 + " stdout F another full log"},
				{"d", ts2 + " stdout F yet an another full log"},
			},
			want: []string{
				"partial line 1 partial line 3 ", "partial line 2 ", "partial line 4 ",
				"log finished", "another full log", "partial line 5 yet an another full log",
			},
		},
		{
			name:   "one stream past max_partial_lines keeps joining",
			config: "max_partial_lines: 3",
			lines: []criLineForTest{
				{"a", ts1 + " stdout P partial line 1 "}, {"a", ts1 + " stdout P partial line 2 "},
				{"a", ts1 + " stdout P partial line 3 "}, {"a", ts1 + " stdout P partial line 4 "},
				{"a", ts2 + " stdout F log finished"}, {"a", ts2 + " stdout F another full log"},
			},
			want: []string{"partial line 1 partial line 2 partial line 3 partial line 4 log finished", "another full log"},
		},
		{
			name:   "truncation",
			config: "max_partial_line_size_truncate: true\nmax_partial_line_size: 11",
			lines: []criLineForTest{
				{"a", ts1 + " stdout P partial line 1 "}, {"b", ts1 + " stdout P partial"},
				{"a", ts2 + " stdout F log finished"}, {"b", ts2 + " stdout F full"},
			},
			want: []string{"partial lin", "partialfull"},
		},
		{
			name: "stdout and stderr are separate streams",
			lines: []criLineForTest{
				{"a", ts1 + " stdout P out "}, {"a", ts1 + " stderr P err "},
				{"a", ts2 + " stderr F done"}, {"a", ts2 + " stdout F done"},
			},
			want: []string{"err done", "out done"},
		},
		{
			name:  "a malformed line ends the pieces of its label set, as in Promtail",
			lines: []criLineForTest{{"a", ts1 + " stdout P piece "}, {"a", "garbage"}},
			want:  []string{"garbage"},
		},
	}
	for _, tt := range tests {
		for _, batched := range []bool{false, true} {
			name := tt.name + "/one batch per line"
			if batched {
				name = tt.name + "/one batch"
			}
			t.Run(name, func(t *testing.T) {
				s := newParserStageForTest(t, "cri", tt.config)
				var got []string
				var batches []*pipeline.Batch
				for i := 0; i < len(tt.lines); {
					n := 1
					if batched {
						n = len(tt.lines)
					}
					b := pipeline.NewBatch(n, nil)
					for _, l := range tt.lines[i : i+n] {
						b.Entries = append(b.Entries, pipeline.Entry{Line: []byte(l.line), Labels: pipeline.Labels{{Name: "l", Value: l.labels}}})
					}
					i += n
					s.Process(b)
					for _, e := range b.Entries {
						got = append(got, string(e.Line))
					}
					batches = append(batches, b)
				}
				if tt.name == "a malformed line ends the pieces of its label set, as in Promtail" {
					// The malformed line has no stream label, so it does
					// not end the stdout piece: that one waits.
					fl := s.Processor.(pipeline.Flusher).Flush(time.Now(), true)
					got = append(got, string(fl.Entries[0].Line))
					tt.want = []string{"garbage", "piece "}
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("lines = %q\nwant %q", got, tt.want)
				}
				if p := s.Processor.(*criStage).pending; len(p) != 0 {
					t.Errorf("%d lines still waiting", len(p))
				}
			})
		}
	}
}

func TestCRIJoinedLineKeepsFLinesFields(t *testing.T) {
	s := newParserStageForTest(t, "cri", "")
	out := parserRunForTest(nil, []string{
		"2019-05-07T18:57:50Z stdout P first ",
		"2019-05-07T18:57:55Z stdout F last",
	}, s)
	if len(out) != 1 {
		t.Fatalf("got %d entries", len(out))
	}
	e := out[0]
	if string(e.Line) != "first last" || e.Time != parserTimeForTest(t, "2019-05-07T18:57:55Z") {
		t.Errorf("got %q at %d", e.Line, e.Time)
	}
	parserWantFieldsForTest(t, e.Extracted, map[string]string{"time": "2019-05-07T18:57:55Z", "stream": "stdout", "flags": "F", "content": "last"})
}

// criSettleCounterForTest counts a batch's settlement.
func criSettleCounterForTest() (*atomic.Int32, func()) {
	var n atomic.Int32
	return &n, func() { n.Add(1) }
}

func TestCRIPiecesHoldTheirBatchAcrossBatches(t *testing.T) {
	s := newParserStageForTest(t, "cri", "")
	settled1, on1 := criSettleCounterForTest()
	b1 := pipeline.NewBatch(2, on1)
	b1.Entries = append(b1.Entries,
		pipeline.Entry{Line: []byte("2019-05-07T18:57:50Z stdout F whole")},
		pipeline.Entry{Line: []byte("2019-05-07T18:57:50Z stdout P first ")})
	s.Process(b1)
	if len(b1.Entries) != 1 || string(b1.Entries[0].Line) != "whole" {
		t.Fatalf("batch 1 = %v", b1.Entries)
	}
	b1.Settle() // the runner's reference, after the sinks
	if settled1.Load() != 0 {
		t.Fatal("batch 1 settled while its piece waits")
	}
	settled2, on2 := criSettleCounterForTest()
	b2 := pipeline.NewBatch(1, on2)
	b2.Entries = append(b2.Entries, pipeline.Entry{Line: []byte("2019-05-07T18:57:51Z stdout F last")})
	s.Process(b2)
	if len(b2.Entries) != 1 || string(b2.Entries[0].Line) != "first last" {
		t.Fatalf("batch 2 = %q", b2.Entries[0].Line)
	}
	b2.Hold() // a sink keeps it
	b2.Settle()
	if settled1.Load() != 0 || settled2.Load() != 0 {
		t.Fatal("settled before the sink delivered the joined line")
	}
	b2.Settle()
	if settled1.Load() != 1 || settled2.Load() != 1 {
		t.Fatalf("after delivery: batch 1 settled %d times, batch 2 %d", settled1.Load(), settled2.Load())
	}
}

func TestCRIPiecesInOneBatchDoNotHoldIt(t *testing.T) {
	s := newParserStageForTest(t, "cri", "")
	settled, on := criSettleCounterForTest()
	b := pipeline.NewBatch(3, on)
	b.Entries = append(b.Entries,
		pipeline.Entry{Line: []byte("2019-05-07T18:57:50Z stdout P a")},
		pipeline.Entry{Line: []byte("2019-05-07T18:57:50Z stdout P b")},
		pipeline.Entry{Line: []byte("2019-05-07T18:57:50Z stdout F c")})
	s.Process(b)
	if len(b.Entries) != 1 || string(b.Entries[0].Line) != "abc" {
		t.Fatalf("got %v", b.Entries)
	}
	b.Settle()
	if settled.Load() != 1 {
		t.Fatalf("batch settled %d times", settled.Load())
	}
}

func TestCRIFlushSendsStalePieces(t *testing.T) {
	s := newParserStageForTest(t, "cri", "")
	f := s.Processor.(pipeline.Flusher)
	settled, on := criSettleCounterForTest()
	b := pipeline.NewBatch(1, on)
	b.Entries = append(b.Entries, pipeline.Entry{Line: []byte("2019-05-07T18:57:50Z stdout P stuck"), Labels: pipeline.Labels{{Name: "job", Value: "k"}}})
	s.Process(b)
	b.Settle()
	if fb := f.Flush(time.Now(), false); fb != nil {
		t.Fatalf("flushed a fresh piece: %v", fb.Entries)
	}
	fb := f.Flush(time.Now().Add(criPartialMaxWait+time.Second), false)
	if fb == nil || len(fb.Entries) != 1 || string(fb.Entries[0].Line) != "stuck" {
		t.Fatalf("stale piece not flushed: %v", fb)
	}
	e := fb.Entries[0]
	if e.Labels.Get("stream") != "stdout" || e.Labels.Get("job") != "k" || e.Time != parserTimeForTest(t, "2019-05-07T18:57:50Z") {
		t.Errorf("flushed entry lost its labels or time: %+v", e)
	}
	if settled.Load() != 0 {
		t.Fatal("source batch settled before the flushed line")
	}
	fb.Settle()
	if settled.Load() != 1 {
		t.Fatal("source batch not settled with the flushed line")
	}
	if fb := f.Flush(time.Now().Add(time.Hour), true); fb != nil {
		t.Fatalf("flushed twice: %v", fb.Entries)
	}
}

func TestCRIConfig(t *testing.T) {
	parserConfigErrorForTest(t, "cri", "max_partial_lines: -1", "1:20", "must not be negative")
	parserConfigErrorForTest(t, "cri", "max_partial_line_size: lots", "1:24", "invalid size")
	parserConfigErrorForTest(t, "cri", "max_partial_lines: 3\nmax_lines: 2", "2:1", "max_lines")
	s := newParserStageForTest(t, "cri", "max_partial_line_size: 256KiB\nmax_partial_line_size_truncate: true")
	c := s.Processor.(*criStage)
	if c.maxSize != 256<<10 || !c.truncate || c.maxLines != 100 {
		t.Errorf("config = %+v", c)
	}
}

var criRegexpForTest = regexp.MustCompile(`^(?s)(?P<time>\S+?) (?P<stream>stdout|stderr) (?P<flags>\S+?) (?P<content>.*)$`)

func FuzzCRI(f *testing.F) {
	for _, s := range []string{
		"2019-04-30T02:12:41.8443515Z stdout F message",
		"2019-01-01T01:00:00.000000001Z stderr P test\ngood",
		"x stdout P a\n2019-01-01T01:00:00Z stdout F b",
		"a stderr  b", "a stdout F", "\xff stdout \xfe \xfd", "a  stdout F x", "a stdouts F x",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := criRegexpForTest.FindSubmatch(data)
		ts, stream, flags, content, ok := criParse(data)
		if ok != (m != nil) {
			t.Fatalf("criParse ok=%v, regexp match=%v, for %q", ok, m != nil, data)
		}
		if ok && (string(ts) != string(m[1]) || string(stream) != string(m[2]) || string(flags) != string(m[3]) || string(content) != string(m[4])) {
			t.Fatalf("criParse = %q %q %q %q, regexp %q, for %q", ts, stream, flags, content, m[1:], data)
		}
		// The stage, on the input split into lines and batches.
		s := newParserStageForTest(t, "cri", "max_partial_lines: 2\nmax_partial_line_size: 8\nmax_partial_line_size_truncate: true")
		lines := strings.Split(string(data), "\n")
		var sources []*pipeline.Batch
		var settled atomic.Int32
		out := 0
		for i, l := range lines {
			b := pipeline.NewBatch(1, func() { settled.Add(1) })
			b.Entries = append(b.Entries, pipeline.Entry{Line: []byte(l), Labels: pipeline.Labels{{Name: "n", Value: string(rune('a' + i%3))}}})
			s.Process(b)
			out += len(b.Entries)
			b.Settle()
			sources = append(sources, b)
		}
		if fb := s.Processor.(pipeline.Flusher).Flush(time.Now(), true); fb != nil {
			out += len(fb.Entries)
			fb.Settle()
		}
		if out == 0 || out > len(lines) {
			t.Fatalf("%d lines in, %d out", len(lines), out)
		}
		if int(settled.Load()) != len(sources) {
			t.Fatalf("%d of %d source batches settled", settled.Load(), len(sources))
		}
	})
}

func BenchmarkCRI(b *testing.B) {
	s := newParserStageForTest(b, "cri", "")
	parserBenchForTest(b, s,
		`2025-10-10T13:55:36.123456789Z stdout F 192.168.1.10 - - [10/Oct/2025:13:55:36 +0000] "GET /api/v1/users?id=42 HTTP/1.1" 200 1534 "-" "curl/8.5.0"`,
		`2025-10-10T13:55:36.223456789+00:00 stderr F level=info msg="request served" path=/api/v1/items duration=12ms`)
}

func BenchmarkCRIPartial(b *testing.B) {
	s := newParserStageForTest(b, "cri", "")
	parserBenchForTest(b, s,
		`2025-10-10T13:55:36.123456789Z stdout P first half of a long line that the runtime split, `,
		`2025-10-10T13:55:36.123456789Z stdout F and the second half`)
}
