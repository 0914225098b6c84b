package host

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkScrape measures one scrape of this package's default collectors
// on the fixture tree, through the engine and a registry, as Prometheus
// would see it (without HTTP and encoding).
func BenchmarkScrape(b *testing.B) {
	cfg := fixtureConfig(b, "cpu", "stat", "loadavg", "meminfo", "vmstat", "time", "os", "uname")
	cfg.Rootfs = "testdata/rootfs"
	s, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
