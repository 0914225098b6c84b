package processors

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// mlHarness drives a multiline stage the way the runner does: batches are
// processed, what comes out goes to a "sink" that settles it later, and
// Flush runs between batches.
type mlHarness struct {
	t     *testing.T
	m     *multilineStage
	clock time.Time
	out   []pipeline.Entry
	// unsettled are batches delivered to the sink and not yet settled.
	unsettled []*pipeline.Batch
	settled   map[string]*atomic.Int32 // source batch name -> onSettled calls
}

func newMLHarness(t *testing.T, cfg string) *mlHarness {
	t.Helper()
	p, _ := ftBuild(t, "multiline", cfg)
	h := &mlHarness{t: t, m: p.(*multilineStage), clock: time.Unix(1000, 0), settled: map[string]*atomic.Int32{}}
	h.m.now = func() time.Time { return h.clock }
	return h
}

// process sends a source batch named name through the stage.
func (h *mlHarness) process(name string, entries ...pipeline.Entry) {
	n := &atomic.Int32{}
	h.settled[name] = n
	b := pipeline.NewBatch(len(entries), func() { n.Add(1) })
	b.Entries = append(b.Entries, entries...)
	h.m.Process(b)
	h.deliver(b)
}

func (h *mlHarness) deliver(b *pipeline.Batch) {
	h.out = append(h.out, b.Entries...)
	if len(b.Entries) == 0 {
		// The runner stops a batch with no entries left and settles it.
		b.Settle()
		return
	}
	h.unsettled = append(h.unsettled, b)
}

func (h *mlHarness) flush(after time.Duration, force bool) {
	h.clock = h.clock.Add(after)
	if b := h.m.Flush(h.clock, force); b != nil {
		h.deliver(b)
	}
}

func (h *mlHarness) settleAll() {
	for _, b := range h.unsettled {
		b.Settle()
	}
	h.unsettled = nil
}

func (h *mlHarness) lines() []string {
	out := make([]string, len(h.out))
	for i, e := range h.out {
		out[i] = string(e.Line)
	}
	return out
}

func (h *mlHarness) wantLines(want ...string) {
	h.t.Helper()
	if got := h.lines(); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		h.t.Fatalf("lines:\n got %q\nwant %q", got, want)
	}
}

func (h *mlHarness) settledCount(name string) int32 { return h.settled[name].Load() }

func mlEntry(line, stream string, ts int64) pipeline.Entry {
	return pipeline.Entry{Time: ts, Line: []byte(line), Labels: pipeline.Labels{{Name: "value", Value: stream}}}
}

// Promtail's own behaviour: lines before a stream's first start line pass
// as they are; a start line closes the block before it.
func TestMultilinePassesLinesBeforeTheFirstStartLine(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START", max_wait_time: 3s}`)
	h.process("b1",
		mlEntry("not a start line before 1", "label", 1),
		mlEntry("not a start line before 2", "label", 2),
		mlEntry("START line 1", "label", 3),
		mlEntry("not a start line", "label", 4),
		mlEntry("START line 2", "label", 5),
		mlEntry("START line 3", "label", 6),
	)
	h.flush(0, true)
	h.wantLines("not a start line before 1", "not a start line before 2", "START line 1\nnot a start line", "START line 2", "START line 3")
	for i, want := range []int64{1, 2, 3, 5, 6} {
		if h.out[i].Time != want {
			t.Errorf("entry %d has time %d, want %d (the first line's)", i, h.out[i].Time, want)
		}
	}
}

func TestMultilineKeepsStreamsApart(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START"}`)
	h.process("b1",
		mlEntry("START line 1", "one", 1),
		mlEntry("not a start line 1", "one", 2),
		mlEntry("START line 1", "two", 3),
		mlEntry("not a start line 2", "one", 4),
		mlEntry("START line 2", "two", 5),
		mlEntry("START line 2", "one", 6),
		mlEntry("not a start line 1", "one", 7),
	)
	h.flush(0, true)
	// Blocks closed by a start line come out in place; the rest at the
	// flush, in the order the streams were first seen.
	h.wantLines(
		"START line 1", // two
		"START line 1\nnot a start line 1\nnot a start line 2", // one
		"START line 2\nnot a start line 1",                     // one
		"START line 2")                                         // two
	wantStreams := []string{"two", "one", "one", "two"}
	wantTimes := []int64{3, 1, 6, 5}
	for i := range h.out {
		if got := h.out[i].Labels.Get("value"); got != wantStreams[i] {
			t.Errorf("entry %d in stream %q, want %q", i, got, wantStreams[i])
		}
		if h.out[i].Time != wantTimes[i] {
			t.Errorf("entry %d has time %d, want %d", i, h.out[i].Time, wantTimes[i])
		}
	}
}

func TestMultilineMaxWaitTime(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START", max_wait_time: 2s}`)
	h.process("b1", mlEntry("START line", "label", 1))
	h.flush(1999*time.Millisecond, false)
	h.wantLines()
	h.flush(time.Millisecond, false)
	h.wantLines("START line")
	// A line after the timeout forms its own block, with the timestamp of
	// the last start line, as in Promtail.
	h.process("b2", mlEntry("not a start line hitting timeout", "label", 9))
	h.flush(2*time.Second, false)
	h.wantLines("START line", "not a start line hitting timeout")
	if h.out[1].Time != 1 {
		t.Errorf("continuation block has time %d, want the last start line's (1)", h.out[1].Time)
	}
}

func TestMultilineWaitCountsFromTheLastLine(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START", max_wait_time: 2s}`)
	h.process("b1", mlEntry("START", "s", 1))
	h.clock = h.clock.Add(1500 * time.Millisecond)
	h.process("b2", mlEntry("more", "s", 2))
	h.flush(1500*time.Millisecond, false) // 3s after the start, 1.5s after the last line
	h.wantLines()
	h.flush(500*time.Millisecond, false)
	h.wantLines("START\nmore")
}

func TestMultilineMaxLines(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START", max_lines: 2}`)
	h.process("b1",
		mlEntry("START a", "s", 1),
		mlEntry("b", "s", 2),
		mlEntry("c", "s", 3),
		mlEntry("d", "s", 4),
		mlEntry("e", "s", 5),
		mlEntry("START f", "s", 6),
	)
	h.flush(0, true)
	h.wantLines("START a\nb", "c\nd", "e", "START f")
	for i, want := range []int64{1, 1, 1, 6} {
		if h.out[i].Time != want {
			t.Errorf("entry %d has time %d, want %d", i, h.out[i].Time, want)
		}
	}
}

func TestMultilineMaxLinesOne(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START", max_lines: 1}`)
	h.process("b1", mlEntry("START a", "s", 1), mlEntry("b", "s", 2), mlEntry("START c", "s", 3))
	h.wantLines("START a", "b", "START c")
}

func TestMultilineMaxLinesZeroIsUnlimited(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START", max_lines: 0}`)
	entries := []pipeline.Entry{mlEntry("START", "s", 1)}
	for i := 0; i < 300; i++ {
		entries = append(entries, mlEntry("x", "s", 2))
	}
	h.process("b1", entries...)
	h.flush(0, true)
	if len(h.out) != 1 || strings.Count(string(h.out[0].Line), "\n") != 300 {
		t.Fatalf("got %d entries, want one block of 301 lines", len(h.out))
	}
}

func TestMultilineDefaultMaxLinesIs128(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START"}`)
	entries := []pipeline.Entry{mlEntry("START", "s", 1)}
	for i := 0; i < 200; i++ {
		entries = append(entries, mlEntry("x", "s", 2))
	}
	h.process("b1", entries...)
	h.flush(0, true)
	if len(h.out) != 2 || strings.Count(string(h.out[0].Line), "\n") != 127 {
		t.Fatalf("got %d entries, first of %d lines; want 128 lines then the rest", len(h.out), strings.Count(string(h.out[0].Line), "\n")+1)
	}
}

// The merged entry is the first line's in everything but its line.
func TestMultilineKeepsTheFirstLinesEntry(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START"}`)
	first := mlEntry("START", "s", 10)
	first.Metadata = pipeline.Labels{{Name: "trace_id", Value: "abc"}}
	first.Tenant = "team-a"
	first.Extracted = pipeline.Fields{{Name: "level", Value: "error"}}
	next := mlEntry("  at frame", "s", 20)
	next.Tenant = "team-a"
	next.Extracted = pipeline.Fields{{Name: "level", Value: "other"}}
	h.process("b1", first, next)
	h.flush(0, true)
	if len(h.out) != 1 {
		t.Fatalf("got %q", h.lines())
	}
	e := h.out[0]
	if string(e.Line) != "START\n  at frame" || e.Time != 10 || e.Tenant != "team-a" ||
		e.Metadata.Get("trace_id") != "abc" || e.Labels.Get("value") != "s" {
		t.Fatalf("merged entry %+v", e)
	}
	if v, _ := e.Extracted.Get("level"); v != "error" {
		t.Fatalf("extracted level = %q, want the first line's", v)
	}
}

func TestMultilineTenantsAreSeparateStreams(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START"}`)
	a := mlEntry("START a", "s", 1)
	a.Tenant = "a"
	b := mlEntry("START b", "s", 2)
	b.Tenant = "b"
	cont := mlEntry("for a", "s", 3)
	cont.Tenant = "a"
	h.process("b1", a, b, cont)
	h.flush(0, true)
	h.wantLines("START a\nfor a", "START b")
}

// A block that spans batches keeps every batch it took lines from
// unsettled until the batch it goes out in is settled.
func TestMultilineHoldsBatchesUntilTheMergedEntryIsSettled(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START"}`)
	h.process("b1", mlEntry("before", "s", 1), mlEntry("START a", "s", 2), mlEntry("a1", "s", 3))
	h.wantLines("before")
	h.process("b2", mlEntry("a2", "s", 4))
	h.wantLines("before")
	h.settleAll()
	if h.settledCount("b1") != 0 || h.settledCount("b2") != 0 {
		t.Fatal("a batch settled while its lines were carried")
	}
	h.process("b3", mlEntry("START b", "s", 5), mlEntry("b1", "s", 6))
	// The merged entry carries lines of b1 and b2: it goes out at the
	// next flush, in a batch of the stage's own.
	h.wantLines("before")
	h.flush(0, false)
	h.wantLines("before", "START a\na1\na2")
	if h.settledCount("b1") != 0 || h.settledCount("b2") != 0 {
		t.Fatal("a batch settled before the merged entry was delivered")
	}
	h.settleAll()
	if h.settledCount("b1") != 1 || h.settledCount("b2") != 1 {
		t.Fatalf("settled b1=%d b2=%d after delivery, want 1 each", h.settledCount("b1"), h.settledCount("b2"))
	}
	if h.settledCount("b3") != 0 {
		t.Fatal("b3 settled while START b is carried")
	}
	h.flush(time.Hour, false)
	h.wantLines("before", "START a\na1\na2", "START b\nb1")
	if h.settledCount("b3") != 0 {
		t.Fatal("b3 settled before the flushed entry was delivered")
	}
	h.settleAll()
	if h.settledCount("b3") != 1 {
		t.Fatal("b3 not settled after the flushed entry was delivered")
	}
}

// With lines coming without a pause every batch ends in an open block.
// Each batch must still settle once what it carried is delivered, not
// wait for the batches after it.
func TestMultilineSettlementDoesNotChainAcrossBatches(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START"}`)
	for i := 0; i < 20; i++ {
		h.process(fmt.Sprint(i),
			mlEntry(fmt.Sprintf("more of %d", i-1), "s", int64(2*i)),
			mlEntry(fmt.Sprintf("START %d", i), "s", int64(2*i+1)),
			mlEntry(fmt.Sprintf("line of %d", i), "s", int64(2*i+1)))
		h.flush(0, false) // the runner's tick; no block has waited long
		h.settleAll()
		for j := 0; j < i; j++ {
			if h.settledCount(fmt.Sprint(j)) != 1 {
				t.Fatalf("after batch %d, batch %d is not settled: its lines were all delivered", i, j)
			}
		}
		if h.settledCount(fmt.Sprint(i)) != 0 {
			t.Fatalf("batch %d settled while its last block is open", i)
		}
	}
	if got := h.lines(); len(got) != 20 || got[1] != "START 0\nline of 0\nmore of 0" {
		t.Fatalf("lines %q", got)
	}
}

// Once a stream's entry waits for the next flush, the stream's later
// entries wait with it, so they do not overtake it.
func TestMultilineKeepsAStreamsOrderAcrossTheFlush(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START"}`)
	h.process("b1", mlEntry("START a", "s", 1), mlEntry("START x", "other", 1))
	h.process("b2", mlEntry("a1", "s", 2), mlEntry("START b", "s", 3), mlEntry("START c", "s", 4), mlEntry("START y", "other", 5))
	h.process("b3", mlEntry("START d", "s", 6), mlEntry("START e", "s", 7))
	h.flush(0, false)
	h.flush(0, true)
	var s []string
	for _, e := range h.out {
		if e.Labels.Get("value") == "s" {
			s = append(s, string(e.Line))
		}
	}
	if fmt.Sprintf("%q", s) != fmt.Sprintf("%q", []string{"START a\na1", "START b", "START c", "START d", "START e"}) {
		t.Fatalf("stream s came out as %q", s)
	}
	h.settleAll()
	for _, name := range []string{"b1", "b2", "b3"} {
		if h.settledCount(name) != 1 {
			t.Fatalf("%s settled %d times", name, h.settledCount(name))
		}
	}
}

// A single-line block that goes out in its own batch is the original
// entry, and a carried one is a copy the batch's later stages cannot
// change.
func TestMultilineCopiesCarriedLines(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START"}`)
	line := []byte("START a")
	h.process("b1", pipeline.Entry{Time: 1, Line: line, Labels: pipeline.Labels{{Name: "value", Value: "s"}}})
	copy(line, "XXXXXXX") // a later stage rewriting the batch's bytes
	h.flush(time.Hour, false)
	h.wantLines("START a")
}

func TestMultilineForgetsIdleStreams(t *testing.T) {
	h := newMLHarness(t, `{firstline: "^START"}`)
	h.process("b1", mlEntry("START", "s", 1))
	h.flush(time.Minute, false)
	if len(h.m.order) != 1 {
		t.Fatal("stream forgotten too early")
	}
	h.clock = h.clock.Add(2 * time.Hour)
	h.flush(0, false)
	if len(h.m.order) != 0 || len(h.m.streams) != 0 || h.m.last != nil {
		t.Fatalf("idle stream kept: %d streams", len(h.m.order))
	}
	// With the stream forgotten, a continuation line passes as it is.
	h.process("b2", mlEntry("orphan", "s", 2))
	h.wantLines("START", "orphan")
}

// Documented by Promtail: the flask example.
func TestMultilineDocumentedFlaskExample(t *testing.T) {
	log := `[2020-12-03 11:36:20] "GET /hello HTTP/1.1" 200 -
[2020-12-03 11:36:23] ERROR in app: Exception on /error [GET]
Traceback (most recent call last):
  File "/home/pallets/.pyenv/versions/3.8.5/lib/python3.8/site-packages/flask/app.py", line 2447, in wsgi_app
    response = self.full_dispatch_request()
  File "/home/pallets/.pyenv/versions/3.8.5/lib/python3.8/site-packages/flask/app.py", line 1952, in full_dispatch_request
    rv = self.handle_user_exception(e)
  File "/home/pallets/.pyenv/versions/3.8.5/lib/python3.8/site-packages/flask/app.py", line 1821, in handle_user_exception
    reraise(exc_type, exc_value, tb)
  File "/home/pallets/.pyenv/versions/3.8.5/lib/python3.8/site-packages/flask/_compat.py", line 39, in reraise
    raise value
  File "/home/pallets/.pyenv/versions/3.8.5/lib/python3.8/site-packages/flask/app.py", line 1950, in full_dispatch_request
    rv = self.dispatch_request()
  File "/home/pallets/.pyenv/versions/3.8.5/lib/python3.8/site-packages/flask/app.py", line 1936, in dispatch_request
    return self.view_functions[rule.endpoint](**req.view_args)
  File "/home/pallets/src/deployment_tools/hello.py", line 10, in error
    raise Exception("Sorry, this route always breaks")
Exception: Sorry, this route always breaks
[2020-12-03 11:36:23] "GET /error HTTP/1.1" 500 -
[2020-12-03 11:36:26] "GET /hello HTTP/1.1" 200 -
[2020-12-03 11:36:27] "GET /hello HTTP/1.1" 200 -`
	lines := strings.Split(log, "\n")
	h := newMLHarness(t, `
firstline: '^\[\d{4}-\d{2}-\d{2} \d{1,2}:\d{2}:\d{2}\]'
max_wait_time: 3s
`)
	var entries []pipeline.Entry
	for i, l := range lines {
		entries = append(entries, mlEntry(l, "flask", int64(i)))
	}
	h.process("b1", entries...)
	h.flush(3*time.Second, false)
	h.wantLines(lines[0], strings.Join(lines[1:18], "\n"), lines[18], lines[19], lines[20])
	if !strings.HasSuffix(string(h.out[1].Line), "Exception: Sorry, this route always breaks") {
		t.Fatal("traceback not complete")
	}
}

// Documented by Promtail: the Akka example, whose first lines start with a
// zero-width space.
func TestMultilineDocumentedAkkaExample(t *testing.T) {
	zw := "\u200b"
	lines := []string{
		zw + "[2021-01-07 14:17:43,494] [DEBUG] [akka.io.TcpListener] [HelloAkkaHttpServer-akka.actor.default-dispatcher-26] [akka://HelloAkkaHttpServer/system/IO-TCP/selectors/$a/0] - New connection accepted",
		zw + "[2021-01-07 14:17:43,499] [ERROR] [akka.actor.ActorSystemImpl] [HelloAkkaHttpServer-akka.actor.default-dispatcher-3] [akka.actor.ActorSystemImpl(HelloAkkaHttpServer)] - Error during processing of request: 'oh no! oh is unknown'. Completing with 500 Internal Server Error response. To change default exception handling behavior, provide a custom ExceptionHandler.",
		"java.lang.Exception: oh no! oh is unknown",
		"\tat com.grafana.UserRoutes.$anonfun$userRoutes$6(UserRoutes.scala:28)",
		"\tat akka.http.scaladsl.server.Directive$.$anonfun$addByNameNullaryApply$2(Directive.scala:166)",
		"\tat akka.http.scaladsl.server.ConjunctionMagnet$$anon$2.$anonfun$apply$3(Directive.scala:234)",
		"\tat akka.http.scaladsl.server.directives.BasicDirectives.$anonfun$mapRouteResult$2(BasicDirectives.scala:68)",
		"\tat akka.http.scaladsl.server.directives.BasicDirectives.$anonfun$textract$2(BasicDirectives.scala:161)",
		"\tat akka.http.scaladsl.server.RouteConcatenation$RouteWithConcatenation.$anonfun$$tilde$2(RouteConcatenation.scala:47)",
		"\tat akka.http.scaladsl.util.FastFuture$.strictTransform$1(FastFuture.scala:40)",
		"  ...",
	}
	h := newMLHarness(t, `
firstline: '^\x{200B}\['
max_wait_time: 3s
`)
	var entries []pipeline.Entry
	for i, l := range lines {
		entries = append(entries, mlEntry(l, "akka", int64(i)))
	}
	h.process("b1", entries...)
	h.flush(3*time.Second, false)
	h.wantLines(lines[0], strings.Join(lines[1:], "\n"))
}

func TestMultilineConfigErrors(t *testing.T) {
	tests := []struct {
		name, cfg, want string
	}{
		{"no firstline", "max_lines: 5\n", "x.yaml:1:1: multiline stage needs a firstline"},
		{"bad firstline", "firstline: \"[\"\n", "x.yaml:1:12: multiline stage: invalid firstline"},
		{"negative max_lines", "firstline: x\nmax_lines: -1\n", "x.yaml:2:12: invalid integer value"},
		{"bad max_wait_time", "firstline: x\nmax_wait_time: soon\n", "x.yaml:2:16: invalid duration"},
		{"negative max_wait_time", "firstline: x\nmax_wait_time: -1s\n", "x.yaml:2:16: multiline stage: max_wait_time must not be negative"},
		{"unknown key", "firstline: x\nmaxlines: 5\n", "x.yaml:2:1: unknown key \"maxlines\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ftBuildErr(t, "multiline", tt.cfg)
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("error %q, want prefix %q", got, tt.want)
			}
		})
	}
}

// FuzzMultiline feeds random lines in random batches, with flushes in
// between, and checks what must always hold: per stream the lines come out
// in order and all of them, no block exceeds max_lines, and every source
// batch settles exactly once, only after what carried its lines.
//
// Input: batches separated by NUL, lines by "\n". A line of even length
// belongs to stream "0", odd to "1". Start lines begin with "[".
func FuzzMultiline(f *testing.F) {
	f.Add("[a\nb\nc\x00d\n[e\nf", uint8(3), uint16(0))
	f.Add("x\ny\n[z\x00\x00[w\nv\nu\nt", uint8(0), uint16(0xffff))
	f.Add("[1\n[2\n[3\n4\n5\x006\n[7", uint8(1), uint16(2))
	f.Add("no start line at all\x00still none", uint8(2), uint16(1))
	f.Fuzz(func(t *testing.T, data string, maxLines uint8, flushMask uint16) {
		p, _ := ftBuild(t, "multiline", fmt.Sprintf(`{firstline: "^\\[", max_lines: %d, max_wait_time: 1s}`, maxLines))
		m := p.(*multilineStage)
		clock := time.Unix(0, 0)
		m.now = func() time.Time { return clock }
		streams := [2]pipeline.Labels{{{Name: "s", Value: "0"}}, {{Name: "s", Value: "1"}}}
		var in, out [2][]string
		var settled []*atomic.Int32
		var delivered []*pipeline.Batch
		deliver := func(b *pipeline.Batch) {
			for _, e := range b.Entries {
				k := 0
				if e.Labels.Get("s") == "1" {
					k = 1
				}
				out[k] = append(out[k], string(e.Line))
				if maxLines > 0 && strings.Count(string(e.Line), "\n") >= int(maxLines) {
					t.Fatalf("block of more than %d lines: %q", maxLines, e.Line)
				}
			}
			delivered = append(delivered, b)
		}
		for i, chunk := range strings.Split(data, "\x00") {
			n := &atomic.Int32{}
			settled = append(settled, n)
			b := pipeline.NewBatch(0, func() { n.Add(1) })
			for _, line := range strings.Split(chunk, "\n") {
				k := len(line) % 2
				in[k] = append(in[k], line)
				b.Entries = append(b.Entries, pipeline.Entry{Time: int64(i), Line: []byte(line), Labels: streams[k]})
			}
			p.Process(b)
			deliver(b)
			clock = clock.Add(time.Duration(i%3) * 500 * time.Millisecond)
			if flushMask&(1<<(i%16)) != 0 {
				if fb := m.Flush(clock, false); fb != nil {
					deliver(fb)
				}
			}
		}
		if fb := m.Flush(clock, true); fb != nil {
			deliver(fb)
		}
		for i, n := range settled {
			if n.Load() != 0 {
				t.Fatalf("batch %d settled before what was delivered was settled", i)
			}
		}
		for _, b := range delivered {
			b.Settle()
		}
		for i, n := range settled {
			if n.Load() != 1 {
				t.Fatalf("batch %d settled %d times, want 1", i, n.Load())
			}
		}
		for k := range in {
			if got, want := strings.Join(out[k], "\n"), strings.Join(in[k], "\n"); got != want {
				t.Fatalf("stream %d: lines came out as %q, went in as %q", k, out[k], in[k])
			}
		}
	})
}

func BenchmarkMultiline(b *testing.B) {
	p, _ := ftBuild(b, "multiline", `{firstline: "^\\d{4}-"}`)
	labels := pipeline.Labels{{Name: "job", Value: "app"}}
	entries := make([]pipeline.Entry, 1024)
	for i := range entries {
		line := "2024-05-01T10:00:00Z INFO request served path=/api/v1/items status=200"
		if i%8 >= 5 { // every eighth record has a three-line stack trace
			line = "\tat com.example.Handler.serve(Handler.java:42)"
		}
		entries[i] = pipeline.Entry{Time: int64(i), Line: []byte(line), Labels: labels}
	}
	ftBench(b, p, entries)
}

// A source fed from a channel and a sink that keeps what it gets until told
// to settle, for running multiline under the real runner.
type mlChanSource struct{ in chan *pipeline.Batch }

func (s *mlChanSource) Run(ctx context.Context, out pipeline.Output) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-s.in:
			if err := out.Emit(ctx, b); err != nil {
				return err
			}
		}
	}
}

type mlHoldSink struct {
	mu      sync.Mutex
	lines   []string
	batches []*pipeline.Batch
}

func (s *mlHoldSink) Consume(b *pipeline.Batch) {
	b.Hold()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range b.Entries {
		s.lines = append(s.lines, string(e.Line))
	}
	s.batches = append(s.batches, b)
}

// settleAll settles what the sink holds and returns how many lines it had
// received by then.
func (s *mlHoldSink) settleAll() int {
	s.mu.Lock()
	bs := s.batches
	n := len(s.lines)
	s.batches = nil
	s.mu.Unlock()
	for _, b := range bs {
		b.Settle()
	}
	return n
}

func (s *mlHoldSink) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

func (s *mlHoldSink) Close(context.Context) error {
	s.settleAll()
	return nil
}

var (
	mlTestSource = &mlChanSource{in: make(chan *pipeline.Batch)}
	mlTestSink   = &mlHoldSink{}
)

func init() {
	pipeline.RegisterSource("test_multiline_src", func(pipeline.Env, *yaml.Node) (pipeline.Source, error) {
		return mlTestSource, nil
	})
	pipeline.RegisterSink("test_multiline_sink", func(pipeline.Env, *yaml.Node) (pipeline.Sink, error) {
		return mlTestSink, nil
	})
}

func TestMultilineUnderTheRunner(t *testing.T) {
	mlTestSink.mu.Lock()
	mlTestSink.lines, mlTestSink.batches = nil, nil
	mlTestSink.mu.Unlock()
	src := fmt.Sprintf(`
positions: {filename: %q}
sources: {src: {type: test_multiline_src}}
processors:
  ml: {type: multiline, firstline: '^START', max_wait_time: 1s}
  up: {type: match, selector: '{job="x"}', stages: [{test_match_upper: }]}
sinks: {sink: {type: test_multiline_sink}}
pipelines:
  p: {sources: [src], processors: [ml, up], sinks: [sink]}
`, t.TempDir()+"/positions.yaml")
	cfg, err := pipeline.Load("test.yaml", []byte(src), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := pipeline.Build(cfg, slog.New(slog.DiscardHandler), pipeline.NewTestMetrics())
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	stopped := false
	defer func() {
		if !stopped {
			_ = g.Stop(5 * time.Second)
		}
	}()
	labels := pipeline.Labels{{Name: "job", Value: "x"}}
	var settled [2]atomic.Int32
	send := func(i int, lines ...string) {
		b := pipeline.NewBatch(len(lines), func() { settled[i].Add(1) })
		for _, l := range lines {
			b.Entries = append(b.Entries, pipeline.Entry{Line: []byte(l), Labels: labels})
		}
		mlTestSource.in <- b
	}
	// waitFor waits until the sink has received at least want, in order.
	waitFor := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got := mlTestSink.snapshot()
			if len(got) >= len(want) && fmt.Sprint(got[:len(want)]) == fmt.Sprint(want) {
				if len(got) > 3 {
					t.Fatalf("sink has more than was sent: %q", got)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("sink has %q, want %q first", got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	send(0, "START a", "a1")
	send(1, "a2", "START b")
	waitFor("START A\nA1\nA2")
	if settled[0].Load() != 0 {
		t.Fatal("first batch settled before the sink settled its merged entry")
	}
	delivered := mlTestSink.settleAll()
	if settled[0].Load() != 1 {
		t.Fatal("first batch not settled after its merged entry was")
	}
	// START b goes out once the stream has been quiet for max_wait_time.
	waitFor("START A\nA1\nA2", "START B")
	if delivered < 2 && settled[1].Load() != 0 {
		t.Fatal("second batch settled before START b was delivered")
	}
	mlTestSink.settleAll()
	if settled[1].Load() != 1 {
		t.Fatal("second batch not settled")
	}
	// What is still carried at shutdown is flushed, not lost.
	send(0, "START c", "c1")
	stopped = true
	if err := g.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := mlTestSink.snapshot(); fmt.Sprint(got) != fmt.Sprint([]string{"START A\nA1\nA2", "START B", "START C\nC1"}) {
		t.Fatalf("after stop the sink has %q", got)
	}
	if settled[0].Load() != 2 {
		t.Fatal("batch carried at shutdown not settled by the sink's close")
	}
}
