package pipeline

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Exposer is a metrics source that renders its own exposition. Served
// through the registry, every sample becomes a dto.Metric that Gather
// checks and sorts and the encoder walks again; a source with many
// samples and precomputed descriptors (the host source) renders them
// straight from its values for a fraction of that. The agent serves an
// Exposer's families merged by name with the registry's, in the format the
// scrape negotiated, so /metrics looks exactly as if it had been gathered.
//
// An Exposer is still a prometheus.Collector: the registry holds its
// descriptors (Describe), so conflicts with other collectors are found at
// registration as before, and anything that gathers the registry itself
// rather than serving /metrics can still collect it.
type Exposer interface {
	prometheus.Collector
	// Expose collects once and renders the families in format (text or
	// OpenMetrics), sorted by name. An error fails the scrape, as a
	// Gather error does.
	Expose(format expfmt.Format) (*Exposition, error)
}

// Exposition is what an Exposer rendered for one scrape.
type Exposition struct {
	// Families sorted by name; each Text is the complete rendering of
	// the family (HELP, TYPE and samples) in the requested format.
	Families []ExposedFamily
	// Release, if set, is called once the exposition is written, so its
	// buffers can be reused.
	Release func()
}

// ExposedFamily is one rendered metric family.
type ExposedFamily struct {
	Name string
	Text []byte
}

// exposers are the Exposers of the running graph, served by the /metrics
// handler next to the registry. Only their descriptors are in the
// registry (a describeOnly proxy), so Gather does not collect them twice.
type exposers struct {
	mu      sync.Mutex
	list    []Exposer
	proxies map[prometheus.Collector]*describeOnly
}

func (e *exposers) snapshot() []Exposer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Exposer(nil), e.list...)
}

// describeOnly stands in the registry for an Exposer: it describes it and
// collects nothing, the /metrics handler exposing it instead.
type describeOnly struct{ e Exposer }

func (d *describeOnly) Describe(ch chan<- *prometheus.Desc) { d.e.Describe(ch) }
func (d *describeOnly) Collect(chan<- prometheus.Metric)    {}

// agentRegisterer is the Registerer graphs register their metrics with:
// the agent's registry, Exposers diverted to the /metrics handler.
type agentRegisterer struct {
	reg *prometheus.Registry
	exp *exposers
}

func (r agentRegisterer) Register(c prometheus.Collector) error {
	e, ok := c.(Exposer)
	if !ok {
		return r.reg.Register(c)
	}
	p := &describeOnly{e}
	if err := r.reg.Register(p); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if d, ok := are.ExistingCollector.(*describeOnly); ok {
				are.ExistingCollector = d.e
				return are
			}
		}
		return err
	}
	r.exp.mu.Lock()
	defer r.exp.mu.Unlock()
	if r.exp.proxies == nil {
		r.exp.proxies = map[prometheus.Collector]*describeOnly{}
	}
	r.exp.proxies[c] = p
	r.exp.list = append(r.exp.list, e)
	return nil
}

func (r agentRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r agentRegisterer) Unregister(c prometheus.Collector) bool {
	r.exp.mu.Lock()
	p, ok := r.exp.proxies[c]
	if ok {
		delete(r.exp.proxies, c)
		for i, e := range r.exp.list {
			if e == c {
				r.exp.list = append(r.exp.list[:i:i], r.exp.list[i+1:]...)
				break
			}
		}
	}
	r.exp.mu.Unlock()
	if ok {
		// An Exposer that describes nothing is unchecked, and the
		// registry cannot unregister those; it is no longer served all
		// the same.
		r.reg.Unregister(p)
		return true
	}
	return r.reg.Unregister(c)
}

// metricsHandler serves /metrics: promhttp's handler while no Exposer
// runs, otherwise the registry's families and the Exposers' merged by
// name, negotiated and encoded as promhttp does (OpenMetrics enabled,
// errors answered with 500).
func metricsHandler(reg *prometheus.Registry, exp *exposers, logger *slog.Logger, plain http.Handler) http.Handler {
	errorLog := slog.NewLogLogger(logger.Handler(), slog.LevelError)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list := exp.snapshot()
		if len(list) == 0 {
			plain.ServeHTTP(w, r)
			return
		}
		fail := func(err error) {
			errorLog.Println("error gathering metrics:", err)
			w.Header().Del("Content-Encoding")
			http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
		}
		format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultOpenMetricsAcceptedFormats()...)
		mfs, err := reg.Gather()
		if err != nil {
			fail(err)
			return
		}
		exps := make([]*Exposition, 0, len(list))
		defer func() {
			for _, x := range exps {
				if x.Release != nil {
					x.Release()
				}
			}
		}()
		for _, e := range list {
			x, err := e.Expose(format)
			if err != nil {
				fail(err)
				return
			}
			exps = append(exps, x)
		}
		var filter map[string]bool
		if names := r.URL.Query()["name[]"]; len(names) > 0 {
			filter = make(map[string]bool, len(names))
			for _, n := range names {
				filter[n] = true
			}
		}
		w.Header().Add("Vary", "Accept")
		w.Header().Set("Content-Type", string(format))
		bw := getExposeWriter(w)
		defer putExposeWriter(bw)
		enc := expfmt.NewEncoder(bw, format)
		// Merge: the registry's families and each exposition are sorted
		// by name.
		next := make([]int, len(exps))
		i := 0
		for {
			best, bestName := -1, ""
			if i < len(mfs) {
				best, bestName = len(exps), mfs[i].GetName()
			}
			for k, x := range exps {
				if next[k] < len(x.Families) {
					if n := x.Families[next[k]].Name; best < 0 || n < bestName {
						best, bestName = k, n
					} else if n == bestName {
						// Gather would have merged the two or failed; the
						// sources have to be told apart instead.
						errorLog.Println("error encoding and sending metric family:", fmt.Errorf("metric family %s is exposed by two sources; served once", n))
						next[k]++
					}
				}
			}
			if best < 0 {
				break
			}
			if best == len(exps) {
				if filter == nil || filter[bestName] {
					if err := enc.Encode(mfs[i]); err != nil {
						errorLog.Println("error encoding and sending metric family:", err)
						return
					}
				}
				i++
				continue
			}
			f := exps[best].Families[next[best]]
			next[best]++
			if filter == nil || filter[f.Name] {
				if _, err := bw.Write(f.Text); err != nil {
					return
				}
			}
		}
		if c, ok := enc.(expfmt.Closer); ok {
			if err := c.Close(); err != nil {
				errorLog.Println("error encoding and sending metric family:", err)
				return
			}
		}
		_ = bw.Flush()
	})
}

// exposeWriters keeps the /metrics handler's idle write buffers, so a
// scrape does not allocate one (32 kB) again; like metricsGzipWriters, a
// channel rather than a sync.Pool, which garbage collections empty.
var exposeWriters = make(chan *bufio.Writer, 4)

func getExposeWriter(w io.Writer) *bufio.Writer {
	select {
	case bw := <-exposeWriters:
		bw.Reset(w)
		return bw
	default:
		return bufio.NewWriterSize(w, 32<<10)
	}
}

func putExposeWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	select {
	case exposeWriters <- bw:
	default:
	}
}
