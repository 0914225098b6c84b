package host

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestNoData checks that each collector reports ErrNoData, without
// panicking or sending metrics, on a host lacking its kernel feature.
func TestNoData(t *testing.T) {
	for _, name := range []string{"pressure", "conntrack", "schedstat", "mdadm", "bonding", "hwmon"} {
		t.Run(name, func(t *testing.T) {
			empty := t.TempDir()
			c := newCollector(t, name, Paths{Proc: empty, Sys: empty, Root: empty}, nil)
			ch := make(chan prometheus.Metric, 100)
			if err := c.Update(ch); !errors.Is(err, ErrNoData) {
				t.Errorf("Update = %v, want ErrNoData", err)
			}
			if len(ch) != 0 {
				t.Errorf("%d metrics sent", len(ch))
			}
		})
	}
	// Collectors whose files always exist on Linux fail with an error
	// naming what is missing, as node_exporter's do.
	for _, name := range []string{"filefd", "entropy"} {
		t.Run(name, func(t *testing.T) {
			empty := t.TempDir()
			err := newCollector(t, name, Paths{Proc: empty, Sys: empty}, nil).Update(make(chan prometheus.Metric, 10))
			if err == nil || errors.Is(err, ErrNoData) {
				t.Errorf("Update = %v, want an error", err)
			}
		})
	}
	// thermal_zone and textfile report nothing (or only their own status)
	// without failing.
	for _, name := range []string{"thermal_zone", "textfile"} {
		t.Run(name, func(t *testing.T) {
			empty := t.TempDir()
			if err := newCollector(t, name, Paths{Proc: empty, Sys: empty}, nil).Update(make(chan prometheus.Metric, 10)); err != nil {
				t.Errorf("Update = %v", err)
			}
		})
	}
}

// TestMalformed checks that malformed files give an error naming the
// file instead of a panic.
func TestMalformed(t *testing.T) {
	for _, tc := range []struct {
		collector, file, body, mention string
	}{
		{"filefd", "sys/fs/file-nr", "1 2\n", "file-nr"},
		{"entropy", "sys/kernel/random/entropy_avail", "lots\n", "entropy_avail"},
		{"conntrack", "sys/net/netfilter/nf_conntrack_count", "x\n", "nf_conntrack_count"},
		{"pressure", "pressure/cpu", "some avg10=x\n", "pressure"},
	} {
		t.Run(tc.collector, func(t *testing.T) {
			proc := t.TempDir()
			path := filepath.Join(proc, tc.file)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			err := newCollector(t, tc.collector, Paths{Proc: proc, Sys: proc}, nil).Update(make(chan prometheus.Metric, 100))
			if err == nil || errors.Is(err, ErrNoData) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("Update = %v, want an error mentioning %s", err, tc.mention)
			}
		})
	}
}

// BenchmarkUpdate measures one scrape of each collector against the
// fixture trees (page cache warm), metrics drained and discarded.
func BenchmarkUpdate(b *testing.B) {
	dir := fixtureDir(b)
	for _, name := range []string{"pressure", "conntrack", "filefd", "entropy", "schedstat", "textfile", "mdadm", "bonding", "hwmon", "thermal_zone"} {
		b.Run(name, func(b *testing.B) {
			var opts map[string]string
			if name == "textfile" {
				opts = map[string]string{"directory": filepath.Join(dir, "textfile", "two_metric_files")}
			}
			benchUpdate(b, fixtureCollector(b, name, opts))
		})
	}
}
