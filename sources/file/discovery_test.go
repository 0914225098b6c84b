package file

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestWatchDirs(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a/b", "a/x", "c", "c/x/y"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "a/file.log"), "")
	tests := []struct {
		pattern  string
		want     []string // relative to dir; "." is dir itself
		complete bool
	}{
		{"*.log", []string{"."}, true},
		{"**/*.log", []string{".", "a", "a/b", "a/x", "c", "c/x", "c/x/y"}, true},
		{"*/x/*.log", []string{".", "a", "a/x", "c", "c/x"}, true},
		{"a/*.log", []string{"a"}, true},
		{"missing/deeper/*.log", []string{"."}, true},
		{"{a,c/x}/*.log", []string{".", "a", "c/x"}, false}, // "{a,c" alone is no pattern: poll
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			got := map[string]bool{}
			complete := watchDirs(filepath.ToSlash(filepath.Join(dir, tt.pattern)), got)
			var rel []string
			for d := range got {
				r, err := filepath.Rel(dir, d)
				if err != nil || strings.HasPrefix(r, "..") {
					t.Fatalf("watch outside the tree: %s", d)
				}
				rel = append(rel, r)
			}
			sort.Strings(rel)
			if !reflect.DeepEqual(rel, tt.want) || complete != tt.complete {
				t.Errorf("watch %q complete=%v, want %q complete=%v", rel, complete, tt.want, tt.complete)
			}
		})
	}
}

func TestScanDeduplicatesAcrossGroups(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.log", "b.log", "b.txt"} {
		writeFile(t, filepath.Join(dir, f), "")
	}
	groups := []group{
		{include: []string{dir + "/*.log"}, exclude: []string{"**/b.*"}},
		{include: []string{dir + "/b.*", dir + "/*.log"}},
	}
	got := map[string]int{}
	for _, m := range scan(groups) {
		if _, dup := got[m.path]; dup {
			t.Errorf("%s listed twice", m.path)
		}
		got[m.path] = m.group
	}
	want := map[string]int{dir + "/a.log": 0, dir + "/b.log": 1, dir + "/b.txt": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("scan %v, want %v", got, want)
	}
}
