package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/bench/internal/loggen"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		args  []string
		code  int
		check func(t *testing.T, stdout string)
	}{
		{"stdout", []string{"-n", "5", "-q"}, 0, func(t *testing.T, stdout string) {
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if len(lines) != 5 {
				t.Fatalf("%d lines on stdout, want 5", len(lines))
			}
			for _, l := range lines {
				if _, ok := loggen.ParseTimestamp([]byte(l)); !ok {
					t.Errorf("no timestamp in %q", l)
				}
			}
		}},
		{"json", []string{"-n", "5", "-q", "-format", "json"}, 0, func(t *testing.T, stdout string) {
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if len(lines) != 5 {
				t.Fatalf("%d lines on stdout, want 5", len(lines))
			}
			for _, l := range lines {
				if !json.Valid([]byte(l)) {
					t.Errorf("not JSON: %q", l)
				}
				if _, ok := loggen.ParseTimestamp([]byte(l)); !ok {
					t.Errorf("no timestamp in %q", l)
				}
			}
		}},
		{"files", []string{"-o", filepath.Join(dir, "sub", "a.log"), "-files", "2", "-n", "7", "-q"}, 0, func(t *testing.T, _ string) {
			for name, want := range map[string]int{"a-0.log": 4, "a-1.log": 3} {
				b, err := os.ReadFile(filepath.Join(dir, "sub", name))
				if err != nil {
					t.Fatal(err)
				}
				if got := bytes.Count(b, []byte("\n")); got != want {
					t.Errorf("%s has %d lines, want %d", name, got, want)
				}
			}
		}},
		{"rotate", []string{"-o", filepath.Join(dir, "r.log"), "-n", "10", "-rotate-lines", "4", "-rotate-keep", "3", "-q"}, 0, func(t *testing.T, _ string) {
			for name, want := range map[string]int{"r.log.2": 4, "r.log.1": 4, "r.log": 2} {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if got := bytes.Count(b, []byte("\n")); got != want {
					t.Errorf("%s has %d lines, want %d", name, got, want)
				}
			}
		}},
		{"copytruncate", []string{"-o", filepath.Join(dir, "c.log"), "-n", "5", "-rotate-lines", "3", "-copytruncate", "-q"}, 0, func(t *testing.T, _ string) {
			for name, want := range map[string]int{"c.log.1": 3, "c.log": 2} {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if got := bytes.Count(b, []byte("\n")); got != want || b[0] == 0 {
					t.Errorf("%s has %d lines (first byte %q), want %d", name, got, b[0], want)
				}
			}
		}},
		{"files need a path", []string{"-files", "2"}, 2, nil},
		{"rotation needs a path", []string{"-rotate-lines", "2"}, 2, nil},
		{"stray argument", []string{"x"}, 2, nil},
		{"unknown format", []string{"-format", "xml", "-q"}, 2, nil},
		{"negative rate", []string{"-rate", "-1", "-q"}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if tt.check != nil {
				tt.check(t, stdout.String())
			}
		})
	}
}
