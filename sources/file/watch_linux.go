//go:build linux

package file

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"syscall"
)

// watchMask asks only for what can make a new file appear or a watched
// directory go away. IN_MODIFY is left out on purpose: a directory watch
// with it costs an event for every write(2) any process makes to any file
// in the directory. fsnotify v1.10 cannot leave it out (its WithOps option
// is unexported); measured on this machine, watching a directory with
// fsnotify while a writer appends 1M 130-byte lines one write(2) each
// costs about 2 µs of CPU per write, several times this source's whole
// budget per line. Files are followed by polling instead (see tailer).
const watchMask = syscall.IN_CREATE | syscall.IN_MOVED_TO | syscall.IN_DELETE_SELF |
	syscall.IN_MOVE_SELF | syscall.IN_ONLYDIR

// dirWatcher watches directories with inotify and reports, coalesced, that
// something changed; discovery then evaluates the globs again.
type dirWatcher struct {
	f      *os.File
	notify chan struct{}
	done   chan struct{}

	mu     sync.Mutex
	fd     int // used for add/remove only; f owns it and reads from it
	closed bool
	broken bool // the event stream failed: discovery must poll
	byWd   map[int32]string
	byDir  map[string]int32
}

func newDirWatcher() (*dirWatcher, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	w := &dirWatcher{
		// A non-blocking fd goes to the runtime poller, so Close wakes a
		// pending Read.
		f:      os.NewFile(uintptr(fd), "inotify"),
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
		fd:     fd,
		byWd:   map[int32]string{},
		byDir:  map[string]int32{},
	}
	go w.read()
	return w, nil
}

// events delivers a value after changes; several changes may coalesce.
func (w *dirWatcher) events() <-chan struct{} { return w.notify }

// ok reports whether the watcher still delivers events.
func (w *dirWatcher) ok() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.broken && !w.closed
}

// add watches dir. A directory that vanished meanwhile is not an error.
func (w *dirWatcher) add(dir string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("watcher closed")
	}
	if _, ok := w.byDir[dir]; ok {
		return nil
	}
	wd, err := syscall.InotifyAddWatch(w.fd, dir, watchMask)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	// Two names for one directory share a watch descriptor; the last name
	// wins and the periodic sync re-adds the other if it is still wanted.
	if old, ok := w.byWd[int32(wd)]; ok {
		delete(w.byDir, old)
	}
	w.byWd[int32(wd)] = dir
	w.byDir[dir] = int32(wd)
	return nil
}

// remove stops watching dir.
func (w *dirWatcher) remove(dir string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wd, ok := w.byDir[dir]
	if !ok || w.closed {
		return
	}
	_, _ = syscall.InotifyRmWatch(w.fd, uint32(wd))
	delete(w.byDir, dir)
	delete(w.byWd, wd)
}

// dirs lists the watched directories.
func (w *dirWatcher) dirs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.byDir))
	for d := range w.byDir {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

func (w *dirWatcher) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	_ = w.f.Close()
	<-w.done
}

func (w *dirWatcher) signal() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *dirWatcher) read() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			w.mu.Lock()
			closed := w.closed
			w.broken = true
			w.mu.Unlock()
			if !closed {
				w.signal()
			}
			return
		}
		w.mu.Lock()
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			wd := int32(binary.NativeEndian.Uint32(buf[off:]))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			off += syscall.SizeofInotifyEvent + nameLen
			switch {
			case mask&syscall.IN_IGNORED != 0:
				// The kernel dropped the watch: the directory is gone.
				w.forgetLocked(wd)
			case mask&syscall.IN_MOVE_SELF != 0:
				// The directory moved: its old path no longer names it.
				if _, ok := w.byWd[wd]; ok {
					_, _ = syscall.InotifyRmWatch(w.fd, uint32(wd))
					w.forgetLocked(wd)
				}
			}
			// IN_Q_OVERFLOW (events lost), IN_CREATE and IN_MOVED_TO all
			// mean the same to discovery: evaluate the globs again.
		}
		w.mu.Unlock()
		w.signal()
	}
}

func (w *dirWatcher) forgetLocked(wd int32) {
	if dir, ok := w.byWd[wd]; ok {
		delete(w.byWd, wd)
		delete(w.byDir, dir)
	}
}
