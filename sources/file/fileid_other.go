//go:build !unix

package file

import "os"

// fileID names a file independently of its path. Without device and inode
// numbers a rotated-away file cannot be found again after a restart, so
// rotated generations are not recorded (see tracker).
type fileID struct{ dev, ino uint64 }

func idOf(os.FileInfo) (fileID, bool) { return fileID{}, false }
