//go:build unix

package file

import (
	"os"
	"syscall"
)

// fileID names a file independently of its path, so a rotated-away file
// can be found again under whatever name rotation gave it.
type fileID struct{ dev, ino uint64 }

// idOf returns the file's device and inode numbers.
func idOf(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	// The conversions matter elsewhere: Dev is an int32 on Darwin.
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, true
}
