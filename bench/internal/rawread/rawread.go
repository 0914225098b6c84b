// Package rawread is the benchmark's floor: the least work any log shipper
// must do, reading files and finding line ends, with nothing else.
package rawread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// BufferSize is the read size; large enough that syscalls are a small part
// of the cost.
const BufferSize = 256 << 10

// Result counts what was read.
type Result struct {
	Lines int64 `json:"lines"`
	Bytes int64 `json:"bytes"`
	// LineBytes is the sum of line lengths without newlines, which forces
	// each line's bounds to be computed rather than just counting '\n'.
	LineBytes int64 `json:"line_bytes"`
}

// Files reads every file and splits it into lines with bytes.IndexByte.
// A last line without a newline counts as a line.
func Files(paths []string) (Result, error) {
	var res Result
	buf := make([]byte, BufferSize)
	for _, p := range paths {
		if err := file(p, buf, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

func file(path string, buf []byte, res *Result) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("rawread: %w", err)
	}
	defer f.Close()
	// buf[:carry] holds the start of a line whose end is in the next read.
	carry := 0
	for {
		if carry == len(buf) {
			// A line longer than the buffer: count what we have as its
			// start and keep looking for its end.
			res.LineBytes += int64(carry)
			carry = 0
		}
		n, err := f.Read(buf[carry:])
		res.Bytes += int64(n)
		data := buf[:carry+n]
		start := 0
		for {
			i := bytes.IndexByte(data[start:], '\n')
			if i < 0 {
				break
			}
			res.Lines++
			res.LineBytes += int64(i)
			start += i + 1
		}
		carry = copy(buf, data[start:])
		if errors.Is(err, io.EOF) {
			if carry > 0 {
				res.Lines++
				res.LineBytes += int64(carry)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("rawread: %s: %w", path, err)
		}
	}
}
