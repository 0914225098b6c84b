package file

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Discovery finds the files to tail.
//
// New files must be picked up within a second, and that must not cost a
// full directory walk every second on a large tree. So the directories a
// glob can match in are watched with inotify (creations and renames only,
// see watchMask), and any event triggers a re-evaluation of the globs. A
// glob's static prefix that does not exist yet is covered by watching its
// closest existing ancestor. The globs are also evaluated every sync_period
// as a safety net, and every second whenever the watches are incomplete:
// inotify unavailable or out of watches, a glob whose directory part cannot
// be split into watchable prefixes, or a failed event stream.

// match is a file found by the globs and the group it belongs to.
type match struct {
	path  string
	group int
}

// scan evaluates every group's globs. Paths are deduplicated; the first
// group that includes (and does not exclude) a path wins.
func scan(groups []group) []match {
	var out []match
	seen := map[string]bool{}
	for gi := range groups {
		g := &groups[gi]
		for _, p := range g.include {
			// Only I/O errors are possible here (patterns are validated),
			// and those are skipped file by file.
			paths, _ := doublestar.FilepathGlob(p, doublestar.WithFilesOnly())
			for _, m := range paths {
				m = filepath.ToSlash(m)
				if seen[m] || g.excluded(m) {
					continue
				}
				seen[m] = true
				out = append(out, match{path: m, group: gi})
			}
		}
	}
	return out
}

// groupOf returns the group scan gives path, if any: the first that
// includes it and does not exclude it.
func groupOf(groups []group, path string) (int, bool) {
	path = filepath.ToSlash(path)
	for gi := range groups {
		g := &groups[gi]
		if g.excluded(path) {
			continue
		}
		for _, p := range g.include {
			if doublestar.MatchUnvalidated(p, path) {
				return gi, true
			}
		}
	}
	return 0, false
}

// watchDirs adds to dirs every directory whose new entries can matter to
// pattern. It reports false when it cannot cover the pattern completely.
func watchDirs(pattern string, dirs map[string]bool) bool {
	base, rest := doublestar.SplitPattern(pattern)
	if !isDir(base) {
		// Watch the closest existing ancestor: creating the missing part
		// is an event there, and the next evaluation goes deeper.
		anc := ancestor(base)
		if anc == "" {
			return false
		}
		dirs[anc] = true
		return true
	}
	dirs[base] = true
	segs := strings.Split(rest, "/")
	if len(segs) == 1 {
		return true
	}
	complete := true
	fsys := os.DirFS(base)
	for i := 1; i < len(segs); i++ {
		prefix := strings.Join(segs[:i], "/")
		if !doublestar.ValidatePattern(prefix) {
			// A brace alternative spanning a '/': poll instead.
			complete = false
			continue
		}
		_ = doublestar.GlobWalk(fsys, prefix, func(p string, d fs.DirEntry) error {
			full := path.Join(base, p)
			if d.IsDir() || (d.Type()&fs.ModeSymlink != 0 && isDir(full)) {
				dirs[full] = true
			}
			return nil
		})
	}
	return complete
}

// ancestor returns the closest existing directory above p, or "".
func ancestor(p string) string {
	for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
		if isDir(dir) {
			return dir
		}
		if dir == filepath.Dir(dir) {
			return ""
		}
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// syncWatches makes w watch what the groups need and removes watches no
// longer needed. It reports whether the watches cover every glob, and
// whether it added any: a directory created inside a new one before its
// watch was in place sent no event, so the caller evaluates again soon,
// until the set of watches is stable.
func syncWatches(w *dirWatcher, groups []group) (complete, added bool, err error) {
	if w == nil || !w.ok() {
		return false, false, nil
	}
	before := map[string]bool{}
	for _, dir := range w.dirs() {
		before[dir] = true
	}
	want := map[string]bool{}
	complete = true
	for _, g := range groups {
		for _, p := range g.include {
			if !watchDirs(p, want) {
				complete = false
			}
		}
	}
	for dir := range want {
		if before[dir] {
			continue
		}
		if e := w.add(dir); e != nil {
			complete, err = false, e
			continue
		}
		added = true
	}
	for dir := range before {
		if !want[dir] {
			w.remove(dir)
		}
	}
	return complete && w.ok(), added, err
}
