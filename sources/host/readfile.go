package host

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
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
	f, err := openFile(path)
	if err != nil {
		return buf[:0], err
	}
	defer f.Close()
	buf = buf[:0]
	if cap(buf) == 0 {
		buf = make([]byte, 0, 4096)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if err == io.EOF {
				return buf, nil
			}
			return buf, err
		}
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
