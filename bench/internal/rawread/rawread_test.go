package rawread

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFiles(t *testing.T) {
	long := strings.Repeat("x", BufferSize*2+17)
	tests := []struct {
		name    string
		content []string
		want    Result
	}{
		{"empty", []string{""}, Result{}},
		{"one line", []string{"abc\n"}, Result{Lines: 1, Bytes: 4, LineBytes: 3}},
		{"no final newline", []string{"abc\nde"}, Result{Lines: 2, Bytes: 6, LineBytes: 5}},
		{"empty lines", []string{"\n\n\n"}, Result{Lines: 3, Bytes: 3}},
		{"two files", []string{"a\nb\n", "cc\n"}, Result{Lines: 3, Bytes: 7, LineBytes: 4}},
		{"line longer than buffer", []string{"a\n" + long + "\nb\n"}, Result{Lines: 3, Bytes: int64(len(long)) + 5, LineBytes: int64(len(long)) + 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var paths []string
			for i, c := range tt.content {
				p := filepath.Join(dir, string(rune('a'+i)))
				if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
				paths = append(paths, p)
			}
			got, err := Files(paths)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFilesManyBuffers(t *testing.T) {
	// Lines straddling every buffer boundary must each count once.
	var b bytes.Buffer
	var lines, lineBytes int64
	for i := 0; b.Len() < 3*BufferSize; i++ {
		l := strings.Repeat("y", i%300)
		b.WriteString(l + "\n")
		lines++
		lineBytes += int64(len(l))
	}
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Files([]string{p})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Result{Lines: lines, Bytes: int64(b.Len()), LineBytes: lineBytes}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestFilesMissing(t *testing.T) {
	if _, err := Files([]string{filepath.Join(t.TempDir(), "nope")}); err == nil {
		t.Error("missing file gave no error")
	}
}

func BenchmarkFiles(b *testing.B) {
	var buf bytes.Buffer
	for buf.Len() < 8<<20 {
		buf.WriteString(strings.Repeat("z", 132) + "\n")
	}
	p := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Files([]string{p}); err != nil {
			b.Fatal(err)
		}
	}
}
