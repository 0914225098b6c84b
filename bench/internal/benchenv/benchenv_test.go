package benchenv

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want time.Duration
		ok   bool
	}{
		{"plain", "1234 (vigil) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 8 0 100 0 0", 2870 * time.Millisecond, true},
		{"parens and spaces in name", "99 (a) b (c) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0", 100 * time.Millisecond, true},
		{"truncated", "1 (x) S 1 2 3", 0, false},
		{"no name", "1 x S", 0, false},
		{"not numbers", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a b 0 0", 0, false},
	}
	for _, tt := range tests {
		got, err := parseStatCPU([]byte(tt.stat))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v, ok=%v", tt.name, got, err, tt.want, tt.ok)
		}
	}
}

func TestStatusKB(t *testing.T) {
	status := []byte("Name:\tvigil\nVmPeak:\t  800000 kB\nVmHWM:\t   31744 kB\nVmRSS:\t   30000 kB\n")
	if v, err := statusKB(status, "VmHWM:"); err != nil || v != 31744<<10 {
		t.Errorf("VmHWM = %d, %v; want %d", v, err, 31744<<10)
	}
	if _, err := statusKB(status, "VmSwap:"); err == nil {
		t.Error("missing key gave no error")
	}
	if _, err := statusKB([]byte("VmHWM: 12 MB\n"), "VmHWM:"); err == nil {
		t.Error("unexpected unit gave no error")
	}
}

func TestReadProcSelf(t *testing.T) {
	// Burn enough CPU to cross several 10 ms ticks.
	deadline := time.Now().Add(200 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	s, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU <= 0 || s.PeakRSS <= 0 || s.RSS <= 0 || s.PeakRSS < s.RSS {
		t.Errorf("implausible sample %+v after %d spins", s, x)
	}
}

func TestOneLineAndVerdict(t *testing.T) {
	if got := OneLine(errors.New("a | b\nmore")); got != "a / b" {
		t.Errorf("OneLine = %q", got)
	}
	if Verdict(true) != "met" || Verdict(false) != "**missed**" {
		t.Errorf("Verdict = %q, %q", Verdict(true), Verdict(false))
	}
}

func TestRepoRootAndFileSHA(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + "/bench/internal/benchenv"); err != nil {
		t.Errorf("RepoRoot = %s: %v", root, err)
	}
	path := t.TempDir() + "/f"
	if err := os.WriteFile(path, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if sum, err := FileSHA(path); err != nil || sum != abc {
		t.Errorf("FileSHA = %s, %v; want %s", sum, err, abc)
	}
	t.Chdir(t.TempDir())
	switch r, err := RepoRoot(); {
	case err == nil:
		t.Logf("the temporary directory is inside a vigil checkout (%s)", r)
	case !errors.Is(err, ErrNotInRepo):
		t.Errorf("RepoRoot outside the repository: %v", err)
	}
}
