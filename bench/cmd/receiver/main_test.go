package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/vigilhq/vigil/bench/internal/receiver"
)

func TestRunGivesUpAfterTimeout(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"-listen", "127.0.0.1:0", "-expect", "1", "-timeout", "50ms", "-report-every", "0"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (no line arrived); stderr: %s", code, stderr.String())
	}
	var st receiver.Stats
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
		t.Fatalf("stats on stdout: %v\n%s", err, stdout.String())
	}
	if st.Lines != 0 {
		t.Errorf("lines %d, want 0", st.Lines)
	}
}

func TestRunBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-fail-first", "x"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if code := run([]string{"-listen", "256.0.0.1:1"}, &stdout, &stderr); code != 1 {
		t.Errorf("bad address: exit %d, want 1", code)
	}
}
