// Package dockertest is what tests that run real containers share: a
// check that the Engine is there, the project's own programs built into
// FROM scratch images (the test machines have no registry), and the docker
// command.
package dockertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Need skips the test when the docker command or the Engine is missing,
// naming what is missing; with CI=true that is a failure instead.
func Need(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		Missing(tb, "Docker is missing: no docker command in PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		Missing(tb, "the Docker Engine is not reachable (docker version: %v): %s", err, bytes.TrimSpace(out))
	}
}

// Missing skips the test, naming what is missing; with CI=true that is a
// failure instead.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf(format, args...)
	}
	tb.Skipf(format+"; skipping", args...)
}

var images = struct {
	sync.Mutex
	built map[string]*image
	names []string
}{built: map[string]*image{}}

type image struct {
	once sync.Once
	name string
	err  error
}

// Image builds the Go package pkg (an import path) as a static binary into
// a FROM scratch image whose entry point it is, with the extra Dockerfile
// lines, once per test process; RemoveImages removes what was built.
func Image(tb testing.TB, pkg string, dockerfile ...string) string {
	tb.Helper()
	Need(tb)
	images.Lock()
	im := images.built[pkg]
	if im == nil {
		im = &image{}
		images.built[pkg] = im
	}
	images.Unlock()
	im.once.Do(func() { im.name, im.err = build(pkg, dockerfile) })
	if im.err != nil {
		tb.Fatal(im.err)
	}
	return im.name
}

func build(pkg string, extra []string) (string, error) {
	dir, err := os.MkdirTemp("", "vigil-image")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bin := path.Base(pkg)
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, bin), pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, out)
	}
	df := fmt.Sprintf("FROM scratch\nCOPY %s /%s\n%sENTRYPOINT [\"/%s\"]\n", bin, bin, strings.Join(append(extra, ""), "\n"), bin)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return "", err
	}
	name := fmt.Sprintf("vigiltest-%s:%d", bin, os.Getpid())
	if out, err := exec.Command("docker", "build", "-q", "-t", name, dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("docker build of %s: %v\n%s", pkg, err, out)
	}
	images.Lock()
	images.names = append(images.names, name)
	images.Unlock()
	return name, nil
}

// RemoveImages removes the images this process built; call it from
// TestMain after the tests ran.
func RemoveImages() {
	images.Lock()
	defer images.Unlock()
	for _, name := range images.names {
		_ = exec.Command("docker", "rmi", "-f", name).Run()
	}
	images.names = nil
}

// Docker runs the docker command and returns its trimmed stdout; a failure
// fails the test with stderr.
func Docker(tb testing.TB, args ...string) string {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}
