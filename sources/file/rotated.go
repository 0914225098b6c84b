package file

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// rotatedPrefix starts the positions key of a rotated-away generation.
// The format is described with tracker.
const rotatedPrefix = "vigil-rotated:"

func rotatedKey(id fileID) string {
	return rotatedPrefix + strconv.FormatUint(id.dev, 10) + ":" + strconv.FormatUint(id.ino, 10)
}

func rotatedValue(path string, offset int64) string {
	return path + ":" + strconv.FormatInt(offset, 10)
}

// rotatedGen is a rotated-away generation recorded in the positions.
type rotatedGen struct {
	key    string
	id     fileID
	path   string // the path it was read at, whose labels its lines carry
	offset int64  // committed: everything before it is settled
	group  int
	found  string // where it is now; "" if not found
}

// parseRotated reads a rotated-generation key and its value. The path is
// everything before the value's last colon, so it may hold colons itself.
func parseRotated(key, value string) (rotatedGen, error) {
	g := rotatedGen{key: key}
	ids, ok := strings.CutPrefix(key, rotatedPrefix)
	dev, ino, ok2 := strings.Cut(ids, ":")
	if !ok || !ok2 {
		return g, errors.New("key is not vigil-rotated:<dev>:<inode>")
	}
	var err error
	if g.id.dev, err = strconv.ParseUint(dev, 10, 64); err != nil {
		return g, fmt.Errorf("device number: %w", err)
	}
	if g.id.ino, err = strconv.ParseUint(ino, 10, 64); err != nil {
		return g, fmt.Errorf("inode number: %w", err)
	}
	i := strings.LastIndexByte(value, ':')
	if i <= 0 {
		return g, errors.New("value is not <path>:<offset>")
	}
	g.path = value[:i]
	if g.offset, err = strconv.ParseInt(value[i+1:], 10, 64); err != nil || g.offset < 0 {
		return g, fmt.Errorf("offset %q is not a byte offset", value[i+1:])
	}
	return g, nil
}

// recoverRotated finds the generations rotated away before the last stop
// that the positions record for this source's paths (those its globs
// match), and returns one tailer per original path that drains them before
// anything else. Keys of other sources' paths are left alone.
func (s *Source) recoverRotated() []*tailer {
	var gens []*rotatedGen
	for _, key := range s.positions.Keys() {
		if !strings.HasPrefix(key, rotatedPrefix) {
			continue
		}
		value, _ := s.positions.Get(key)
		g, err := parseRotated(key, value)
		if err != nil {
			s.log.Warn("removing an unreadable rotated-file position", "key", key, "value", value, "err", err)
			s.positions.Remove(key)
			continue
		}
		var ours bool
		if g.group, ours = groupOf(s.cfg.groups, g.path); !ours {
			continue
		}
		gens = append(gens, &g)
	}
	if len(gens) == 0 {
		return nil
	}
	locate(gens)

	var out []*tailer
	byPath := map[string]*tailer{}
	for _, g := range gens {
		r := s.reopen(g)
		if r == nil {
			continue
		}
		t := byPath[g.path]
		if t == nil {
			t = s.newTailer(g.path, &s.cfg.groups[g.group])
			byPath[g.path] = t
			out = append(out, t)
		}
		t.old = append(t.old, r)
	}
	// Drain the older rotations of a path first, as their lines are.
	for _, t := range out {
		sort.SliceStable(t.old, func(i, j int) bool { return t.old[i].fi.ModTime().Before(t.old[j].fi.ModTime()) })
	}
	return out
}

// locate looks for each generation's file by device and inode: in the
// original path's directory first, where rotation renames files (app.log.1,
// app.log-20260101), then one level below it (logrotate's olddir). A file
// moved further away, or to another file system, is not found.
func locate(gens []*rotatedGen) {
	want := make(map[fileID]*rotatedGen, len(gens))
	var dirs []string
	seen := map[string]bool{}
	addDir := func(dir string) {
		if !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	for _, g := range gens {
		want[g.id] = g
		addDir(filepath.Dir(g.path))
	}
	originals := len(dirs)
	left := len(want)
	for i := 0; i < len(dirs) && left > 0; i++ {
		entries, err := os.ReadDir(dirs[i])
		if err != nil {
			continue
		}
		for _, e := range entries {
			full := filepath.Join(dirs[i], e.Name())
			if e.IsDir() {
				if i < originals {
					addDir(full)
				}
				continue
			}
			fi, err := os.Stat(full) // through a symlink: its target is what was read
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			if id, ok := idOf(fi); ok {
				if g := want[id]; g != nil && g.found == "" {
					g.found = full
					left--
				}
			}
		}
	}
}

// reopen opens g's file at its committed offset, with a tracker that keeps
// its key up to date; or it decides what becomes of the key and returns nil.
func (s *Source) reopen(g *rotatedGen) *reader {
	log := s.log.With("path", g.path, "position", g.offset, "device", g.id.dev, "inode", g.id.ino)
	lost := func(reason string) *reader {
		log.Warn("a file rotated away before the last stop is gone; its lines after the saved position cannot be recovered",
			"reason", reason)
		s.positions.Remove(g.key)
		return nil
	}
	if g.found == "" {
		return lost("no file with its device and inode next to its path")
	}
	if _, ok := groupOf(s.cfg.groups, g.found); ok {
		// Its new name is tailed in its own right, under its own key.
		log.Info("a file rotated away before the last stop is now tailed under its new name", "rotated", g.found)
		s.positions.Remove(g.key)
		return nil
	}
	f, err := os.Open(g.found)
	if err != nil {
		log.Warn("cannot open a file rotated away before the last stop; will try again at the next start", "err", err)
		return nil
	}
	fi, err := f.Stat()
	if err == nil {
		if id, _ := idOf(fi); id != g.id {
			err = fmt.Errorf("%s was replaced while it was opened", g.found)
		}
	}
	if err == nil && fi.Size() < g.offset {
		f.Close()
		// Its inode was reused by another file, or it was truncated since:
		// reading it would send other lines than those it held.
		return lost(fmt.Sprintf("%s, the file with its inode, is shorter (%d bytes) than the saved position", g.found, fi.Size()))
	}
	if err == nil {
		_, err = f.Seek(g.offset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		log.Warn("cannot open a file rotated away before the last stop; will try again at the next start", "err", err)
		return nil
	}
	log.Info("reading the rest of a file rotated away before the last stop", "rotated", g.found, "size", fi.Size())
	return &reader{
		f:    f,
		fi:   fi,
		sp:   newSplitter(s.cfg.maxLine, g.offset),
		tr:   newRotatedTracker(g.path, s.positions, g.key, g.offset),
		size: fi.Size(),
	}
}
