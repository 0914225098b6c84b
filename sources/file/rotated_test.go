package file

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pipeline"
)

func TestParseRotated(t *testing.T) {
	tests := []struct {
		name, key, value string
		want             rotatedGen // key, id, path, offset
		err              bool
	}{
		{"plain", "vigil-rotated:2049:131", "/var/log/app.log:1234",
			rotatedGen{id: fileID{2049, 131}, path: "/var/log/app.log", offset: 1234}, false},
		{"colons in the path", "vigil-rotated:1:2", "/logs/a:b:c.log:0",
			rotatedGen{id: fileID{1, 2}, path: "/logs/a:b:c.log", offset: 0}, false},
		{"no inode", "vigil-rotated:2049", "/a.log:1", rotatedGen{}, true},
		{"bad device", "vigil-rotated:x:1", "/a.log:1", rotatedGen{}, true},
		{"bad inode", "vigil-rotated:1:-1", "/a.log:1", rotatedGen{}, true},
		{"no offset", "vigil-rotated:1:2", "/a.log", rotatedGen{}, true},
		{"negative offset", "vigil-rotated:1:2", "/a.log:-5", rotatedGen{}, true},
		{"empty path", "vigil-rotated:1:2", ":5", rotatedGen{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRotated(tt.key, tt.value)
			if (err != nil) != tt.err {
				t.Fatalf("err %v, want error %v", err, tt.err)
			}
			if tt.err {
				return
			}
			tt.want.key = tt.key
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if k, v := rotatedKey(got.id), rotatedValue(got.path, got.offset); k != tt.key || v != tt.value {
				t.Errorf("formatted back as %q: %q", k, v)
			}
		})
	}
}

// A rotated-away generation's key follows its settlements and goes once
// it is finished (drained and closed) and fully settled; a generation left
// unfinished (shutdown) keeps it.
func TestTrackerRotated(t *testing.T) {
	const key = "vigil-rotated:1:2"
	tests := []struct {
		name string
		ops  []string // "settle N" of the spans ending at 10, 20, or "finish"
		want []string // the key's value after each op; "" is absent
	}{
		{"settled, then finished", []string{"settle 0", "settle 1", "finish"}, []string{"/f:10", "/f:20", ""}},
		{"finished, then settled", []string{"finish", "settle 1", "settle 0"}, []string{"/f:5", "/f:5", ""}},
		{"never finished", []string{"settle 0", "settle 1"}, []string{"/f:10", "/f:20"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pos, _ := pipeline.OpenPositions("", false)
			tr := newTracker("/f", pos, nil, 5, 20)
			spans := []*span{tr.open(), tr.open()}
			tr.push(spans[0], 10)
			tr.push(spans[1], 20)
			tr.rotate(key)
			newTracker("/f", pos, nil, 0, 0) // the new file at the path
			if v, _ := pos.Get(key); v != "/f:5" {
				t.Fatalf("after rotation the key is %q, want /f:5", v)
			}
			for i, op := range tt.ops {
				if op == "finish" {
					tr.finish()
				} else {
					spans[op[len(op)-1]-'0'].settle()
				}
				if v, _ := pos.Get(key); v != tt.want[i] {
					t.Fatalf("after %s: key %q, want %q", op, v, tt.want[i])
				}
			}
			if off, _ := pos.GetOffset("/f"); off != 0 {
				t.Errorf("the rotated generation moved the path key to %d", off)
			}
		})
	}
}

func rotatedKeyOf(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	id, ok := idOf(fi)
	if !ok {
		t.Skip("no device and inode numbers on this system")
	}
	return rotatedKey(id)
}

// A crash (here: positions saved, then the source stopped with batches
// never settled) right after a rename rotation: on restart, the lines only
// in the rotated file are read again from its committed offset, with the
// original path's labels, before the file now at the path.
func TestRecoverRotatedAfterCrash(t *testing.T) {
	const lineLen = int64(len("old-000000\n"))
	tests := []struct {
		name    string
		rotated string // where app.log goes, relative to the directory
		settled int    // batches of 4 lines settled before the crash
		fresh   bool   // a new app.log is created
	}{
		{"nothing settled", "app.log.1", 0, true},
		{"a prefix settled", "app.log.1", 2, true},
		{"no new file yet", "app.log.1", 1, false},
		{"moved to a subdirectory", "old/app.log.1", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "old"), 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "app.log")
			rotated := filepath.Join(dir, tt.rotated)
			posFile := filepath.Join(t.TempDir(), "positions.yaml")
			cfg := config(dir+"/*.log", "batch_lines: 4")
			writeFile(t, path, numbered("old", 0, 10))

			pos1, err := pipeline.OpenPositions(posFile, false)
			if err != nil {
				t.Fatal(err)
			}
			h1 := start(t, cfg, withPositions(pos1), holding())
			waitFor(t, "the old lines", func() bool { return h1.rec.count(path) == 10 })
			if err := os.Rename(path, rotated); err != nil {
				t.Fatal(err)
			}
			key := rotatedKeyOf(t, rotated)
			appendFile(t, rotated, numbered("late", 0, 5)) // the writer has not reopened yet
			total := 15
			if tt.fresh {
				writeFile(t, path, numbered("new", 0, 3))
				total += 3
			}
			waitFor(t, "every line and the rotation", func() bool {
				_, recorded := pos1.Get(key)
				return h1.rec.count(path) == total && recorded
			})
			for _, b := range h1.rec.heldBatches()[:tt.settled] {
				b.Settle()
			}
			committed := int64(4*tt.settled) * lineLen
			if v, _ := pos1.Get(key); v != rotatedValue(path, committed) {
				t.Fatalf("rotated key %q, want %q", v, rotatedValue(path, committed))
			}
			if err := pos1.Save(); err != nil {
				t.Fatal(err)
			}
			h1.stop()

			pos2, err := pipeline.OpenPositions(posFile, false)
			if err != nil {
				t.Fatal(err)
			}
			h2 := start(t, cfg, withPositions(pos2))
			want := append(expectLines("old", 4*tt.settled, 10), expectLines("late", 0, 5)...)
			newSize := int64(0)
			if tt.fresh {
				want = append(want, expectLines("new", 0, 3)...)
				newSize = int64(len(numbered("new", 0, 3)))
			}
			waitFor(t, "the recovered lines and the rotated key's removal", func() bool {
				_, recorded := pos2.Get(key)
				return h2.rec.count(path) == len(want) && !recorded
			})
			if got := h2.rec.lines(path); !reflect.DeepEqual(got, want) {
				t.Errorf("lines after restart %q, want %q", got, want)
			}
			if n := h2.rec.count(rotated); n != 0 {
				t.Errorf("%d lines labelled with the rotated name", n)
			}
			if tt.fresh {
				waitFor(t, "the new file's position and gauges", func() bool {
					read, _ := series(h2.metrics.ReadBytes, path)
					return h2.offset(path) == newSize && int64(read) == newSize
				})
			} else {
				waitFor(t, "the tailer to stop", func() bool { return h2.filesActive() == 0 })
				writeFile(t, path, "again\n")
				waitFor(t, "a file created at the path later", func() bool { return h2.rec.count(path) == len(want)+1 })
			}
			if w := h2.logs.warnings(); len(w) > 0 {
				t.Errorf("unexpected warnings: %q", w)
			}
		})
	}
}

// Rotated keys found on start that cannot or must not be read.
func TestRecoverRotatedEdgeCases(t *testing.T) {
	rotLines := expectLines("rot", 0, 6)
	rotSize := int64(len(numbered("rot", 0, 6)))
	tests := []struct {
		name    string
		include string                                                    // relative to the directory
		key     func(t *testing.T, path, rotated string) (string, string) // key, value
		keep    bool                                                      // the key stays
		warn    string                                                    // a warning containing this, or none
		lines   map[string][]string                                       // by filename label, relative
	}{
		{
			name: "found, read from its offset", include: "*.log",
			key: func(t *testing.T, path, rotated string) (string, string) {
				return rotatedKeyOf(t, rotated), rotatedValue(path, 4*int64(len("rot-000000\n")))
			},
			lines: map[string][]string{"app.log": append(rotLines[4:], "cur"), "app.log.1": nil},
		},
		{
			name: "gone", include: "*.log",
			key: func(t *testing.T, path, rotated string) (string, string) {
				k := rotatedKeyOf(t, rotated)
				return k[:strings.LastIndexByte(k, ':')] + ":4611686018427387904", rotatedValue(path, 0)
			},
			warn:  "gone",
			lines: map[string][]string{"app.log": {"cur"}, "app.log.1": nil},
		},
		{
			name: "shorter than its position: not the rotated file", include: "*.log",
			key: func(t *testing.T, path, rotated string) (string, string) {
				return rotatedKeyOf(t, rotated), rotatedValue(path, rotSize+100)
			},
			warn:  "gone",
			lines: map[string][]string{"app.log": {"cur"}, "app.log.1": nil},
		},
		{
			name: "another source's path", include: "*.log",
			key: func(t *testing.T, _, rotated string) (string, string) {
				return rotatedKeyOf(t, rotated), rotatedValue("/elsewhere/x.log", 0)
			},
			keep:  true,
			lines: map[string][]string{"app.log": {"cur"}, "app.log.1": nil},
		},
		{
			name: "tailed under its new name", include: "*.log*",
			key: func(t *testing.T, path, rotated string) (string, string) {
				return rotatedKeyOf(t, rotated), rotatedValue(path, 0)
			},
			lines: map[string][]string{"app.log": {"cur"}, "app.log.1": rotLines},
		},
		{
			name: "unreadable", include: "*.log",
			key:   func(*testing.T, string, string) (string, string) { return "vigil-rotated:1", "nonsense" },
			warn:  "unreadable",
			lines: map[string][]string{"app.log": {"cur"}, "app.log.1": nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path, rotated := filepath.Join(dir, "app.log"), filepath.Join(dir, "app.log.1")
			writeFile(t, rotated, numbered("rot", 0, 6))
			writeFile(t, path, "cur\n")
			pos, _ := pipeline.OpenPositions("", false)
			key, value := tt.key(t, path, rotated)
			pos.Put(key, value)

			h := start(t, config(filepath.Join(dir, tt.include)), withPositions(pos))
			waitFor(t, "the lines and the key", func() bool {
				for name, want := range tt.lines {
					if h.rec.count(filepath.Join(dir, name)) != len(want) {
						return false
					}
				}
				_, kept := pos.Get(key)
				return kept == tt.keep && h.offset(path) == 4
			})
			for name, want := range tt.lines {
				if got := h.rec.lines(filepath.Join(dir, name)); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: lines %q, want %q", name, got, want)
				}
			}
			w := h.logs.warnings()
			switch {
			case tt.warn == "" && len(w) > 0:
				t.Errorf("unexpected warnings: %q", w)
			case tt.warn != "" && (len(w) != 1 || !strings.Contains(w[0], tt.warn)):
				t.Errorf("warnings %q, want one about %q", w, tt.warn)
			}
		})
	}
}

// The read position gauge moves as batches are emitted, not only when a
// pass ends: here the pass never ends, as the output never takes a batch.
func TestReadBytesUnderBackpressure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	content := numbered("l", 0, 100)
	writeFile(t, path, content)
	out := &blockingOutput{}
	h := start(t, config(path, "batch_lines: 1"), withOutput(out))
	waitFor(t, "the reader to block in Emit", func() bool { return out.n() == 1 })
	waitFor(t, "the read position", func() bool {
		read, _ := series(h.metrics.ReadBytes, path)
		return int(read) == len(content) // read in one chunk
	})
	if off := h.offset(path); off != 0 {
		t.Errorf("position %d without a settle", off)
	}
}
