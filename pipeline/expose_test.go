package pipeline

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// fakeExposer exposes the metrics of its own registry, rendered by expfmt.
type fakeExposer struct {
	reg      *prometheus.Registry
	released int
}

func (f *fakeExposer) Describe(ch chan<- *prometheus.Desc) {}
func (f *fakeExposer) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := f.reg.Gather()
	_ = mfs
}

func (f *fakeExposer) Expose(format expfmt.Format) (*Exposition, error) {
	mfs, err := f.reg.Gather()
	if err != nil {
		return nil, err
	}
	x := &Exposition{Release: func() { f.released++ }}
	for _, mf := range mfs {
		var b bytes.Buffer
		if err := expfmt.NewEncoder(&b, format).Encode(mf); err != nil {
			return nil, err
		}
		x.Families = append(x.Families, ExposedFamily{Name: mf.GetName(), Text: b.Bytes()})
	}
	return x, nil
}

func gauge(reg *prometheus.Registry, name string, v float64) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: name + " help."})
	g.Set(v)
	reg.MustRegister(g)
}

// /metrics with an Exposer serves what one registry holding everything
// would have served: families merged by name, in every format, with the
// name[] filter.
func TestMetricsHandlerMergesExposers(t *testing.T) {
	a := NewAgent(slog.New(slog.DiscardHandler), nil)
	all := prometheus.NewRegistry()
	a.Registry = prometheus.NewRegistry()
	exp := &fakeExposer{reg: prometheus.NewRegistry()}
	for i, n := range []string{"a_metric", "m_metric", "z_metric"} {
		gauge(a.Registry, n, float64(i))
		gauge(all, n, float64(i))
	}
	for i, n := range []string{"b_total", "n_metric", "y_metric"} {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: n, Help: "Counter " + n + "."})
		c.Add(float64(i))
		exp.reg.MustRegister(c)
		all.MustRegister(c)
	}
	if err := a.registerer().Register(exp); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	ref := httptest.NewServer(promhttp.HandlerFor(all, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	defer ref.Close()
	get := func(base, query, accept string) (string, string) {
		req, _ := http.NewRequest(http.MethodGet, base+"/metrics"+query, nil)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header.Get("Content-Type")
	}
	for _, accept := range []string{"text/plain;version=0.0.4", "application/openmetrics-text;version=1.0.0", "application/openmetrics-text;version=0.0.1", ""} {
		for _, q := range []string{"", "?name[]=n_metric&name[]=z_metric"} {
			got, gct := get(srv.URL, q, accept)
			want, wct := get(ref.URL, q, accept)
			if got != want || gct != wct {
				t.Errorf("Accept %q, query %q:\ngot (%s):\n%s\nwant (%s):\n%s", accept, q, gct, got, wct, want)
			}
		}
	}
	if exp.released == 0 {
		t.Error("expositions never released")
	}
	// Unregistered, the exposer is no longer served; its descriptors leave
	// the registry.
	if !a.registerer().Unregister(exp) {
		t.Fatal("Unregister: false")
	}
	if got, _ := get(srv.URL, "", "text/plain"); bytes.Contains([]byte(got), []byte("b_total")) {
		t.Errorf("unregistered exposer still served:\n%s", got)
	}
}
