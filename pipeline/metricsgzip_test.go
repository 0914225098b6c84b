package pipeline

import (
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{"gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"deflate, gzip;q=1.0, *;q=0.5"}, true}, // Prometheus
		{[]string{"gzip;q=0"}, false},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"gzip;q=0, *"}, false},
		{[]string{"identity"}, false},
		{[]string{"gzip;q=0.5, identity"}, false},
		{[]string{"zstd", "gzip"}, true},
		{[]string{"gzip;q=bad"}, false},
	} {
		if got := acceptsGzip(tc.header); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

// /metrics answers gzip with the same body it sends uncompressed, in both
// text and OpenMetrics.
func TestMetricsGzip(t *testing.T) {
	a := NewAgent(slog.New(slog.DiscardHandler), nil)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "gzip_test_gauge", Help: "A gauge."})
	g.Set(42)
	// Enough series that the body spans several compression blocks
	// (metricsGzipBuffer), written by promhttp one family at a time.
	many := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gzip_test_many", Help: "Many series."}, []string{"device", "mode"})
	for i := range 3000 {
		many.WithLabelValues(fmt.Sprintf("dev%d", i), "user").Set(float64(i))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(g, many)
	a.Registry = reg
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(accept, encoding string) (string, *http.Response, int64) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
		req.Header.Set("Accept", accept)
		if encoding != "" {
			req.Header.Set("Accept-Encoding", encoding)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		wire := &countingReader{r: resp.Body}
		var r io.Reader = wire
		if resp.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(wire)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b), resp, wire.n
	}
	for _, accept := range []string{"text/plain;version=0.0.4", "application/openmetrics-text;version=1.0.0"} {
		plain, presp, _ := get(accept, "")
		zipped, zresp, wire := get(accept, "gzip")
		if presp.Header.Get("Content-Encoding") != "" {
			t.Errorf("%s: compressed without Accept-Encoding", accept)
		}
		if zresp.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s: Content-Encoding %q, want gzip", accept, zresp.Header.Get("Content-Encoding"))
		}
		if plain != zipped || !strings.Contains(plain, "gzip_test_gauge 42") || !strings.Contains(plain, `gzip_test_many{device="dev2999",mode="user"} 2999`) {
			t.Errorf("%s: plain (%d bytes) and gzip (%d bytes) bodies differ", accept, len(plain), len(zipped))
		}
		if len(plain) < 3*metricsGzipBuffer {
			t.Errorf("%s: body of %d bytes spans fewer than 3 compression blocks", accept, len(plain))
		}
		if wire > int64(len(plain))/4 {
			t.Errorf("%s: %d bytes compressed to %d", accept, len(plain), wire)
		}
		if presp.Header.Get("Content-Type") != zresp.Header.Get("Content-Type") {
			t.Errorf("%s: content types %q and %q", accept, presp.Header.Get("Content-Type"), zresp.Header.Get("Content-Type"))
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
