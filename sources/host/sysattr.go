package host

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// Reading sysfs attributes cheaply. A scrape reads hundreds of one-line
// files; through os.Open each costs six syscalls (open, fcntl, two
// epoll_ctl attempts to register it with the poller, read, close) and
// allocations, and each full path is walked again from /sys through the
// class symlink. Opening the device's directory once and each attribute
// relative to it with openat, then one read and a close, leaves three
// syscalls and a one-component lookup per attribute. The netclass
// collector goes further and keeps the files open between scrapes: one
// pread per attribute (see netclassCollector.read).

// sysAttrMax is how much of an attribute is read, as procfs's
// SysReadFile (which node_exporter uses) reads: one read of 128 bytes.
const sysAttrMax = 128

// openSysDir opens a directory to read attributes relative to. Close it
// with unix.Close.
func openSysDir(path string) (int, error) {
	return openPath(path, unix.O_PATH|unix.O_DIRECTORY)
}

// openSysAttrAt opens attribute name of the directory dirfd for reading.
func openSysAttrAt(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// readSysAttr reads an open attribute from its start into buf (at most
// sysAttrMax bytes, in one read, so a broken driver returning EAGAIN
// cannot make it spin) and returns it with surrounding white space
// trimmed, as procfs's SysReadFile does. Reading from offset 0 makes sysfs
// generate the value afresh, so a descriptor kept open reads the current
// value on every call. Errors are the bare errno, for the caller to
// classify and name the file.
func readSysAttr(fd int, buf *[sysAttrMax]byte) ([]byte, error) {
	for {
		n, err := unix.Pread(fd, buf[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return bytes.TrimSpace(buf[:max(n, 0)]), nil
	}
}

// sysAttrIgnorable says whether an attribute read failed in a way that
// means "not available for this device", which procfs's netclass parser
// (and so node_exporter) skips: missing, not permitted, not supported, or
// invalid for the device's state (speed of a link that is down).
func sysAttrIgnorable(err error) bool {
	switch err {
	case unix.ENOENT, unix.EACCES, unix.EPERM, unix.EOPNOTSUPP, unix.EINVAL:
		return true
	}
	return false
}

// internBytes returns b as a string, reusing prev when it holds the same
// bytes, so values that do not change between scrapes allocate nothing.
func internBytes(prev string, b []byte) string {
	if prev == string(b) {
		return prev
	}
	return string(b)
}

// readFile is os.ReadFile for procfs and sysfs files (see readFileInto).
func readFile(path string) ([]byte, error) {
	return readFileInto(path, make([]byte, 0, 512))
}
