package host

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// readUint reads a file holding one unsigned integer, as sysfs and
// /proc/sys attributes do. A parse error names the file; an error opening
// or reading it is os.ReadFile's, so errors.Is(err, os.ErrNotExist) holds
// for a missing file.
func readUint(path string) (uint64, error) {
	b, err := readFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// readFileInto reads the file at path into buf[:0], growing it as needed,
// so a collector can reuse one buffer across scrapes. Errors are the os
// package's (they name the file).
func readFileInto(path string, buf []byte) ([]byte, error) {
	if b, ok := readHeld(path, buf); ok {
		return b, nil
	}
	fd, err := openPath(path, unix.O_RDONLY)
	if err != nil {
		return buf[:0], err
	}
	buf, err = preadAll(fd, buf)
	if err != nil {
		unix.Close(fd)
		return buf, &os.PathError{Op: "read", Path: path, Err: err}
	}
	if !hold(path, fd) {
		unix.Close(fd)
	}
	return buf, nil
}

// Files read on every scrape stay open. Opening and closing a procfs or
// sysfs file costs more than reading it (the kernel sets up and tears down
// its seq_file each time), and a scrape reads dozens of them. Reading an
// open one again from offset 0 makes the kernel generate it afresh, as
// sysfs documents for its attributes, so a held descriptor reads what a new
// one would. Only files on procfs and sysfs are held: a regular file may be
// replaced by another under the same name. Held files are kept for the
// life of the process, keyed by path, at most heldFilesMax of them: paths
// of per-device files beyond that are opened every time. A held file that
// fails to read (its device went away) is closed and its path opened anew.
const heldFilesMax = 128

type heldFile struct {
	mu sync.Mutex
	fd int // -1 once closed
}

var held = struct {
	sync.Mutex
	m map[string]*heldFile
}{m: map[string]*heldFile{}}

// readHeld reads path through its held descriptor, if it has one that no
// other reader is using.
func readHeld(path string, buf []byte) ([]byte, bool) {
	held.Lock()
	f := held.m[path]
	held.Unlock()
	if f == nil || !f.mu.TryLock() {
		return buf, false
	}
	defer f.mu.Unlock()
	if f.fd < 0 {
		return buf, false
	}
	b, err := preadAll(f.fd, buf)
	if err == nil {
		return b, true
	}
	held.Lock()
	if held.m[path] == f {
		delete(held.m, path)
	}
	held.Unlock()
	unix.Close(f.fd)
	f.fd = -1
	return buf, false
}

// hold keeps fd open as path's held descriptor, and says whether it did.
func hold(path string, fd int) bool {
	var st unix.Statfs_t
	if unix.Fstatfs(fd, &st) != nil || (st.Type != unix.PROC_SUPER_MAGIC && st.Type != unix.SYSFS_MAGIC) {
		return false
	}
	held.Lock()
	defer held.Unlock()
	if held.m[path] != nil || len(held.m) >= heldFilesMax {
		return false
	}
	held.m[path] = &heldFile{fd: fd}
	return true
}

// openPath opens path with flags (and O_CLOEXEC), retrying on EINTR.
// Errors name the file.
func openPath(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// preadAll reads fd from offset 0 to its end into buf[:0], growing it as
// needed. Errors are the bare errno.
func preadAll(fd int, buf []byte) ([]byte, error) {
	buf = buf[:0]
	if cap(buf) == 0 {
		buf = make([]byte, 0, 4096)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Pread(fd, buf[len(buf):cap(buf)], int64(len(buf)))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// cutLine splits b at its first newline into the line, without the
// newline, and the rest (nil after the last line).
func cutLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// cutField splits off the first field separated by spaces, tabs or
// carriage returns; field is nil when there is none.
func cutField(s []byte) (field, rest []byte) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r') {
		i++
	}
	if i == len(s) {
		return nil, nil
	}
	j := i
	for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '\r' {
		j++
	}
	return s[i:j], s[j:]
}
