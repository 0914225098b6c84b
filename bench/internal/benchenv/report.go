package benchenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// BuildVigil builds ./cmd/vigil of the repository at root into out with
// the same flags as `make build`, so a benchmark measures the binary that
// ships.
func BuildVigil(root, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/vigil")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/vigil: %w\n%s", err, b)
	}
	return nil
}

// CommandLine is how to rerun a benchmark: go run pkg with args, quoted
// where a shell needs it.
func CommandLine(pkg string, args []string) string {
	parts := []string{"go", "run", pkg}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// CommandOutput is the trimmed standard output of name run in dir, or ""
// if it fails.
func CommandOutput(dir string, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// Revision names the code measured: the commit of the checkout at root,
// whether it has uncommitted changes, and the hash of the vigil binary.
func Revision(root, vigil string) string {
	rev := CommandOutput(root, "git", "rev-parse", "--short", "HEAD")
	if rev == "" {
		rev = "unknown"
	}
	if CommandOutput(root, "git", "status", "--porcelain") != "" {
		rev += " with uncommitted changes"
	}
	// The working tree changes between runs while others edit it; the
	// binary's hash tells which runs measured the same build.
	if sum, err := FileSHA(vigil); err == nil {
		rev += fmt.Sprintf(", binary %s sha256 %.12s", filepath.Base(vigil), sum)
	}
	return rev
}

// KernelRelease is the running kernel's release, or "" if /proc does not
// say.
func KernelRelease() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// AppendFile appends text to the file at path, creating it if need be.
func AppendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
