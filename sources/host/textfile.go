package host

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func init() {
	Register(Spec{
		Name:           "textfile",
		DefaultEnabled: true,
		Options: []Option{{
			Name: "directory",
			Help: "Directory to read text files with metrics from, supports glob matching. " +
				"Several directories or globs are separated by commas (node_exporter repeats the flag).",
		}},
		New: newTextfileCollector,
	})
}

type textfileCollector struct {
	paths  []string // directories or globs
	logger *slog.Logger
	// mtime, when set, replaces file modification times (for tests).
	mtime *float64

	mtimeDesc, errorDesc *prometheus.Desc
}

func newTextfileCollector(env *Env) (Collector, error) {
	var paths []string
	for _, p := range strings.Split(env.Option("directory"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			paths = append(paths, p)
		}
	}
	return &textfileCollector{
		paths:  paths,
		logger: env.Logger,
		mtimeDesc: prometheus.NewDesc("node_textfile_mtime_seconds",
			"Unixtime mtime of textfiles successfully read.", []string{"file"}, nil),
		errorDesc: prometheus.NewDesc("node_textfile_scrape_error",
			"1 if there was an error opening or reading a file, 0 otherwise", nil, nil),
	}, nil
}

// textfileFamily is one metric name across all files: node_exporter merges
// families of the same name from several files when their help texts agree.
type textfileFamily struct {
	name  string
	help  string // first help text seen; "" when none
	typ   dto.MetricType
	files []string
	parts []*dto.MetricFamily // one per file, in file order
	bad   bool                // a later file disagreed; its part was dropped
}

func (c *textfileCollector) Update(ch chan<- prometheus.Metric) error {
	errored := false

	var dirs []string
	for _, p := range c.paths {
		matches, err := filepath.Glob(p)
		if err != nil || len(matches) == 0 {
			// Not a glob, or nothing matched: read it as a directory and
			// let that report the error.
			matches = []string{p}
		}
		dirs = append(dirs, matches...)
	}

	families := map[string]*textfileFamily{}
	var order []*textfileFamily
	mtimes := map[string]time.Time{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			errored = true
			c.logger.Error("failed to read textfile collector directory", "path", dir, "err", err)
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".prom") {
				continue
			}
			path := filepath.Join(dir, e.Name())
			parsed, mtime, err := textfileParseFile(path)
			if err != nil {
				errored = true
				c.logger.Error("failed to collect textfile data", "file", e.Name(), "err", err)
				continue
			}
			for _, mf := range textfileSorted(parsed) {
				name := mf.GetName()
				f, seen := families[name]
				if !seen {
					f = &textfileFamily{name: name, help: mf.GetHelp(), typ: mf.GetType()}
					families[name] = f
					order = append(order, f)
				} else if f.bad || (mf.Help != nil && f.help != "" && mf.GetHelp() != f.help) || mf.GetType() != f.typ {
					// The first file wins; a family that cannot be merged
					// would make the whole exposition invalid.
					f.bad = true
					errored = true
					c.logger.Error("inconsistent metric help text or type", "metric", name,
						"original_help_text", f.help, "new_help_text", mf.GetHelp(),
						"file", f.files[0], "new_file", path)
					continue
				}
				if f.help == "" {
					f.help = mf.GetHelp()
				}
				f.files = append(f.files, path)
				f.parts = append(f.parts, mf)
			}
			mtimes[path] = mtime
		}
	}

	for _, f := range order {
		help := f.help
		if help == "" {
			help = "Metric read from " + strings.Join(f.files, ", ")
		}
		for _, part := range f.parts {
			if err := c.convert(ch, f.name, help, part); err != nil {
				errored = true
				c.logger.Error("failed to convert textfile metric", "metric", f.name, "err", err)
			}
		}
	}

	if len(mtimes) > 0 {
		files := make([]string, 0, len(mtimes))
		for f := range mtimes {
			files = append(files, f)
		}
		sort.Strings(files)
		for _, f := range files {
			v := float64(mtimes[f].UnixNano() / 1e9)
			if c.mtime != nil {
				v = *c.mtime
			}
			// A file name that is not UTF-8 cannot be a label value.
			if m, err := prometheus.NewConstMetric(c.mtimeDesc, prometheus.GaugeValue, v, f); err == nil {
				ch <- m
			} else {
				errored = true
			}
		}
	}

	errVal := 0.0
	if errored {
		errVal = 1
	}
	ch <- prometheus.MustNewConstMetric(c.errorDesc, prometheus.GaugeValue, errVal)
	return nil
}

// textfileParseFile parses one file. A file with client-side timestamps
// is rejected as a whole, as node_exporter does. The modification time is
// taken after parsing, so that a file that fails does not look fresh.
func textfileParseFile(path string) (map[string]*dto.MetricFamily, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("failed to open textfile data file %q: %w", path, err)
	}
	defer f.Close()
	families, err := textfileParse(f)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("failed to parse textfile data from %q: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("failed to stat %q: %w", path, err)
	}
	return families, st.ModTime(), nil
}

// textfileParse parses text exposition format and rejects timestamps.
func textfileParse(r io.Reader) (map[string]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	for _, mf := range families {
		for _, m := range mf.Metric {
			if m.TimestampMs != nil {
				return nil, fmt.Errorf("contains unsupported client-side timestamps, skipping entire file")
			}
		}
	}
	return families, nil
}

func textfileSorted(m map[string]*dto.MetricFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(m))
	for _, mf := range m {
		out = append(out, mf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// convert sends one file's part of a family. Within it, every metric gets
// the union of the label names used, missing ones set to "".
func (c *textfileCollector) convert(ch chan<- prometheus.Metric, name, help string, mf *dto.MetricFamily) error {
	var all []string
	for _, m := range mf.Metric {
		for _, l := range m.Label {
			if !slices.Contains(all, l.GetName()) {
				all = append(all, l.GetName())
			}
		}
	}
	sort.Strings(all)
	desc := prometheus.NewDesc(name, help, all, nil)

	values := make([]string, len(all))
	var firstErr error
	for _, m := range mf.Metric {
		clear(values)
		for _, l := range m.Label {
			values[slices.Index(all, l.GetName())] = l.GetValue()
		}
		var (
			metric prometheus.Metric
			err    error
		)
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			metric, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, m.GetCounter().GetValue(), values...)
		case dto.MetricType_GAUGE:
			metric, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, m.GetGauge().GetValue(), values...)
		case dto.MetricType_UNTYPED:
			metric, err = prometheus.NewConstMetric(desc, prometheus.UntypedValue, m.GetUntyped().GetValue(), values...)
		case dto.MetricType_SUMMARY:
			quantiles := make(map[float64]float64, len(m.GetSummary().GetQuantile()))
			for _, q := range m.GetSummary().GetQuantile() {
				quantiles[q.GetQuantile()] = q.GetValue()
			}
			metric, err = prometheus.NewConstSummary(desc, m.GetSummary().GetSampleCount(), m.GetSummary().GetSampleSum(), quantiles, values...)
		case dto.MetricType_HISTOGRAM:
			buckets := make(map[float64]uint64, len(m.GetHistogram().GetBucket()))
			for _, b := range m.GetHistogram().GetBucket() {
				buckets[b.GetUpperBound()] = b.GetCumulativeCount()
			}
			metric, err = prometheus.NewConstHistogram(desc, m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum(), buckets, values...)
		default:
			err = fmt.Errorf("unsupported metric type %v", mf.GetType())
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		ch <- metric
	}
	return firstErr
}
