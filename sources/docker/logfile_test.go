package docker

import (
	"compress/gzip"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// fileLog writes a json-file log the way the Engine does, with a clock
// that moves a microsecond per entry.
type fileLog struct {
	t    *testing.T
	path string
	f    *os.File
	ns   int64
}

func newFileLog(t *testing.T) *fileLog {
	dir := t.TempDir()
	l := &fileLog{t: t, path: filepath.Join(dir, "c0ffee-json.log"), ns: t0}
	l.open()
	return l
}

func (l *fileLog) open() {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		l.t.Fatal(err)
	}
	l.f = f
}

func (l *fileLog) write(stream string, texts ...string) {
	for _, text := range texts {
		l.ns += 1000
		if _, err := l.f.WriteString(jsonEntry(stream, l.ns, text) + "\n"); err != nil {
			l.t.Fatal(err)
		}
	}
}

func (l *fileLog) raw(s string) {
	if _, err := l.f.WriteString(s); err != nil {
		l.t.Fatal(err)
	}
}

// rotate does what the Engine's rotation does: close, shift the
// generations up (compressing the ones past .1 when compress is set),
// rename the live file to .1, open a new one.
func (l *fileLog) rotate(compress bool) {
	l.f.Close()
	for n := 8; n >= 1; n-- {
		for _, ext := range []string{"", ".gz"} {
			from := fmt.Sprintf("%s.%d%s", l.path, n, ext)
			if _, err := os.Stat(from); err == nil {
				to := fmt.Sprintf("%s.%d%s", l.path, n+1, ext)
				if err := os.Rename(from, to); err != nil {
					l.t.Fatal(err)
				}
				if compress && ext == "" {
					gzipFile(l.t, to)
				}
			}
		}
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		l.t.Fatal(err)
	}
	l.open()
}

func gzipFile(t *testing.T, name string) {
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(name + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	_, _ = zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.Remove(name)
}

// fileFollower runs followFile for one container on a log written by a
// fileLog, outside any Engine.
type fileFollower struct {
	src  *Source
	tr   *tracked
	out  *recorder
	logs *syncBuffer
	done chan struct{}
}

func followLog(t *testing.T, path string, pos *pipeline.Positions, tty bool) *fileFollower {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("refresh_interval: 1h\n"), &doc); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	src, err := New(pipeline.Env{
		Name: "docker_test", Decoder: pipeline.Decoder{File: "test.yaml"},
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: pipeline.NewTestMetrics(), Positions: pos,
	}, doc.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracked{id: "c0ffee", ck: newCheckpoint(pos, "c0ffee"), wake: make(chan struct{}, 1)}
	name := pipeline.Labels{{Name: "container", Value: "c0ffee"}}
	tr.meta.Store(&meta{tty: tty, logPath: path, stdout: append(name, pipeline.Label{Name: "stream", Value: "stdout"}),
		stderr: append(name, pipeline.Label{Name: "stream", Value: "stderr"}), keepStdout: true, keepStderr: true})
	ff := &fileFollower{src: src, tr: tr, out: &recorder{}, logs: logs, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(ff.done)
		if _, ok, err := src.followFile(ctx, ff.out, tr, path); !ok || err != nil {
			t.Errorf("followFile: ok %v, err %v", ok, err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-ff.done
	})
	return ff
}

// stop marks the container stopped and waits for the follower to end.
func (ff *fileFollower) stop(t *testing.T) {
	t.Helper()
	ff.tr.setStopped(true)
	select {
	case <-ff.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the follower did not end after the container stopped")
	}
}

func (ff *fileFollower) waitLines(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%d lines", n), func() bool { return len(ff.out.lines("c0ffee", "")) >= n })
}

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

func withNewlines(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l + "\n"
	}
	return out
}

// Rotation, in all the Engine's forms, loses and repeats nothing; a split
// line is joined; stderr keeps its stream; the follower ends once the
// container stopped.
func TestLogFileFollowsRotation(t *testing.T) {
	l := newFileLog(t)
	l.write("stdout", withNewlines(numbered("a", 0, 100))...)
	ff := followLog(t, l.path, memPositions(t), false)
	ff.waitLines(t, 100)

	l.rotate(false) // renamed to .1, new file
	l.write("stdout", withNewlines(numbered("b", 0, 50))...)
	l.write("stderr", "err\n")
	ff.waitLines(t, 151)

	// Written right before a rotation: read from the renamed file.
	l.write("stdout", withNewlines(numbered("c", 0, 10))...)
	l.rotate(true)
	l.write("stdout", "split ", "line\n")
	ff.waitLines(t, 162)

	// Two rotations within one poll: the generation in between is read.
	time.Sleep(50 * time.Millisecond)
	l.write("stdout", "d\n")
	l.rotate(false)
	l.write("stdout", "e\n")
	l.rotate(false)
	l.write("stdout", "f\n")
	ff.waitLines(t, 165)
	ff.stop(t)

	want := append(append(append(numbered("a", 0, 100), numbered("b", 0, 50)...), numbered("c", 0, 10)...), "split line", "d", "e", "f")
	equalLines(t, "stdout", ff.out.lines("c0ffee", "stdout"), want)
	equalLines(t, "stderr", ff.out.lines("c0ffee", "stderr"), []string{"err"})
}

// max-file 1 rotates by truncating the file in place: it is read again
// from its start.
func TestLogFileTruncatedInPlace(t *testing.T) {
	l := newFileLog(t)
	l.write("stdout", withNewlines(numbered("a", 0, 20))...)
	ff := followLog(t, l.path, memPositions(t), false)
	ff.waitLines(t, 20)
	if err := l.f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	l.write("stdout", "b\n")
	ff.waitLines(t, 21)
	ff.stop(t)
	equalLines(t, "lines", ff.out.lines("c0ffee", ""), append(numbered("a", 0, 20), "b"))
}

// A restart resumes after the checkpoint, also when the log rotated
// (into compressed generations) while vigil was down; a line that is no
// entry is passed on and counted; a TTY's CR is dropped.
func TestLogFileResumeAcrossRotations(t *testing.T) {
	pos := memPositions(t)
	l := newFileLog(t)
	l.write("stdout", withNewlines(numbered("a", 0, 30))...)
	ff := followLog(t, l.path, pos, false)
	ff.waitLines(t, 30)
	ff.stop(t)
	waitFor(t, 5*time.Second, "checkpoint", func() bool { return ff.tr.ck.load() == l.ns })

	// vigil is down: more lines, two rotations, the older compressed.
	l.write("stdout", withNewlines(numbered("b", 0, 10))...)
	l.rotate(false)
	l.write("stdout", withNewlines(numbered("c", 0, 10))...)
	l.rotate(true)
	l.raw("not an entry\n")
	l.write("stdout", "d\r\n")

	ff2 := followLog(t, l.path, pos, true)
	ff2.waitLines(t, 22)
	ff2.stop(t)
	want := append(append(numbered("b", 0, 10), numbered("c", 0, 10)...), "not an entry", "d")
	equalLines(t, "after restart", ff2.out.lines("c0ffee", ""), want)
	if got := ff2.src.malformed; counterValue(got) != 1 {
		t.Errorf("malformed entries counted: %v, want 1", counterValue(got))
	}
	if !strings.Contains(ff2.logs.String(), "is no log entry") {
		t.Errorf("no warning about the malformed entry; logs:\n%s", ff2.logs.String())
	}
}

// The binary search lands before the cursor in a large file: nothing
// after it is skipped, little before it is read.
func TestLogFileSeekBefore(t *testing.T) {
	l := newFileLog(t)
	for i := range 40000 {
		l.ns += int64(time.Millisecond) // 40 s of log, ~3.6 MB
		l.raw(jsonEntry("stdout", l.ns, fmt.Sprintf("line %d with some padding to make it longer\n", i)) + "\n")
	}
	f, err := os.Open(l.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	since := t0 + 30_000*int64(time.Millisecond)
	off, err := seekBefore(f, since)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(l.path)
	if off > 0 && data[off-1] != '\n' {
		t.Fatalf("offset %d is not a line start", off)
	}
	first, _ := jsonLogTime(data[off : off+int64(strings.IndexByte(string(data[off:]), '\n'))])
	if first >= since-int64(seekReorder) || first < since-int64(seekReorder)-int64(15*time.Second) {
		t.Fatalf("landed at time %v before the cursor, want a little over %v", time.Duration(since-first), seekReorder)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// discard is an Output that settles every batch at once.
type discard struct{ lines atomic.Int64 }

func (d *discard) Emit(ctx context.Context, b *pipeline.Batch) error {
	d.lines.Add(int64(len(b.Entries)))
	b.Settle()
	return nil
}

// BenchmarkLogFile reads a stopped container's json-file log of access-log
// lines from the start, through the parser and the batching, to an Output
// that settles at once: the docker source's cost per line without the
// Engine.
func BenchmarkLogFile(b *testing.B) {
	const lines = 200_000
	dir := b.TempDir()
	path := filepath.Join(dir, "c0ffee-json.log")
	var buf strings.Builder
	ns := t0
	for i := range lines {
		ns += 1000
		buf.WriteString(jsonEntry("stdout", ns, fmt.Sprintf(`10.0.%d.%d - - [14/Nov/2023:22:13:20 +0000] "GET /api/v1/items/%d HTTP/1.1" 200 %d "-" "curl/8.4.0"`+"\n", i%256, i%200, i, 100+i%9000)) + "\n")
	}
	if err := os.WriteFile(path, []byte(buf.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	var doc yaml.Node
	_ = yaml.Unmarshal([]byte("refresh_interval: 1h\n"), &doc)
	pos, _ := pipeline.OpenPositions("", false)
	src, err := New(pipeline.Env{Name: "bench", Decoder: pipeline.Decoder{File: "bench.yaml"}, Positions: pos}, doc.Content[0])
	if err != nil {
		b.Fatal(err)
	}
	name := pipeline.Labels{{Name: "container", Value: "c0ffee"}}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		pos.Remove(cursorKey("c0ffee")) // from the start again
		tr := &tracked{id: "c0ffee", ck: newCheckpoint(pos, "c0ffee"), wake: make(chan struct{}, 1)}
		tr.meta.Store(&meta{logPath: path, stdout: name, stderr: name, keepStdout: true, keepStderr: true})
		tr.stopped.Store(true)
		out := &discard{}
		if n, ok, err := src.followFile(context.Background(), out, tr, path); !ok || err != nil || out.lines.Load() != lines {
			b.Fatalf("ok %v, err %v, %d lines (%d), malformed %v", ok, err, out.lines.Load(), n, counterValue(src.malformed))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}

// A compressed generation cut short is read as far as it goes, with a
// warning, and the newer ones are read after it.
func TestLogFileDamagedGeneration(t *testing.T) {
	l := newFileLog(t)
	l.write("stdout", withNewlines(numbered("a", 0, 2000))...)
	l.rotate(false)
	l.write("stdout", "b\n")
	l.rotate(true) // a -> .2.gz
	l.write("stdout", "c\n")
	gz := l.path + ".2.gz"
	fi, err := os.Stat(gz)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(gz, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	ff := followLog(t, l.path, memPositions(t), false)
	waitFor(t, 10*time.Second, "b and c", func() bool {
		got := ff.out.lines("c0ffee", "")
		return len(got) >= 2 && got[len(got)-1] == "c"
	})
	ff.stop(t)
	got := ff.out.lines("c0ffee", "")
	if n := len(got) - 2; n >= 2000 || got[len(got)-2] != "b" {
		t.Fatalf("read %d lines of the damaged generation and then %q, want fewer than 2000 and then b, c", n, got[len(got)-2:])
	}
	// The entry the damage cut passes on as it is, as malformed input.
	damaged := got[:len(got)-2]
	if last := damaged[len(damaged)-1]; strings.HasPrefix(last, `{"log":`) {
		damaged = damaged[:len(damaged)-1]
	}
	equalLines(t, "damaged generation", damaged, numbered("a", 0, len(damaged)))
	if !strings.Contains(ff.logs.String(), "cannot be read to its end") {
		t.Errorf("no warning about the damaged file; logs:\n%s", ff.logs.String())
	}
}
