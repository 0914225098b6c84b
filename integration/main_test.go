package integration

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/dockertest"
)

var (
	// vigilBin is the binary built by TestMain; empty under -short.
	vigilBin string
	// repoRoot is the module root, where bin/ and the Makefile live.
	repoRoot string
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := runTests(m)
	dockertest.RemoveImages()
	os.Exit(code)
}

func runTests(m *testing.M) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	repoRoot = root
	if testing.Short() {
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "vigil-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "vigil")
	args := []string{"build", "-o", bin}
	// The binary can be built with the race detector too; it is off by
	// default because it slows vigil down several times on a small machine.
	if os.Getenv("VIGIL_INTEGRATION_RACE") == "1" {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/vigil")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: building vigil (go %s in %s): %v\n%s", strings.Join(args, " "), root, err, out)
		return 1
	}
	vigilBin = bin
	return m.Run()
}

// moduleRoot is the directory of the main module's go.mod, so the tests
// work from any working directory.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module (go env GOMOD is %q)", mod)
	}
	return filepath.Dir(mod), nil
}

// needVigil skips under -short: these tests start processes and servers.
func needVigil(t *testing.T) {
	t.Helper()
	if testing.Short() || vigilBin == "" {
		t.Skip("integration test: skipped with -short")
	}
}

// missing fails under CI=true, where every part must be there, and skips
// elsewhere so a laptop without the part can still run the rest.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
