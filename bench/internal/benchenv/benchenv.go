// Package benchenv holds what the benchmark commands (harness, hostbench)
// need to know about their surroundings: the repository they run in, the
// machine, free ports, what /proc says about the processes they measure,
// and the small formatting helpers their reports share.
package benchenv

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotInRepo is RepoRoot's error outside the vigil repository. Commands
// wrap it to say how they should be run.
var ErrNotInRepo = errors.New("no go.mod of github.com/vigilhq/vigil above the current directory")

// RepoRoot returns the nearest directory at or above the working directory
// whose go.mod is vigil's module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/vigilhq/vigil\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNotInRepo
		}
		dir = parent
	}
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago. Another process could take it before the caller's child binds it;
// the child then fails to start and the run reports that.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// CPUModel is the first "model name" in /proc/cpuinfo, or "" if there is
// none.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(bytes.TrimSpace(k)) == "model name" {
			return string(bytes.TrimSpace(v))
		}
	}
	return ""
}

// FileSHA returns the hex SHA-256 of the file at path.
func FileSHA(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// OneLine is err's first line, fit for a Markdown table cell.
func OneLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return strings.ReplaceAll(s, "|", "/")
}

// Verdict says whether a target was met, in a report's words.
func Verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}
