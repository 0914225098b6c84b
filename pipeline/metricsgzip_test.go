package pipeline

import (
	"compress/gzip"
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
	reg := prometheus.NewRegistry()
	reg.MustRegister(g)
	a.Registry = reg
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(accept, encoding string) (string, *http.Response) {
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
		var r io.Reader = resp.Body
		if resp.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b), resp
	}
	for _, accept := range []string{"text/plain;version=0.0.4", "application/openmetrics-text;version=1.0.0"} {
		plain, presp := get(accept, "")
		zipped, zresp := get(accept, "gzip")
		if presp.Header.Get("Content-Encoding") != "" {
			t.Errorf("%s: compressed without Accept-Encoding", accept)
		}
		if zresp.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s: Content-Encoding %q, want gzip", accept, zresp.Header.Get("Content-Encoding"))
		}
		if plain != zipped || !strings.Contains(plain, "gzip_test_gauge 42") {
			t.Errorf("%s: plain %q, gzip %q", accept, plain, zipped)
		}
		if presp.Header.Get("Content-Type") != zresp.Header.Get("Content-Type") {
			t.Errorf("%s: content types %q and %q", accept, presp.Header.Get("Content-Type"), zresp.Header.Get("Content-Type"))
		}
	}
}
