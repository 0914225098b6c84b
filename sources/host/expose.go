package host

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vigilhq/vigil/pipeline"
)

// The host source's fast path: the Source is a pipeline.Exposer, so the
// agent's /metrics handler asks it to render its families itself instead
// of gathering it through the registry. Collectors still send
// prometheus.Metrics (the Collector contract is unchanged), but the ones
// made by newMetric are hostMetrics: the descriptor, the value and the
// label values, nothing more. Expose renders them straight into text or
// OpenMetrics with what was parsed once per descriptor, sorted and checked
// as Gather sorts and checks them, byte for byte what promhttp would have
// written. Metrics of any other kind (textfile's, which may be summaries
// or histograms, hwmon's) and any family mixing kinds go through a
// registry of their own and expfmt, as before. Through the registry (the
// golden tests, anything that gathers the Source) a hostMetric writes
// itself as the const metric it stands for.

var _ pipeline.Exposer = (*Source)(nil)

// hostMetric is a sample of a descriptor the fast path understands.
type hostMetric struct {
	info   *descInfo
	desc   *prometheus.Desc
	vt     prometheus.ValueType
	value  float64
	labels []string // variable label values, in the descriptor's order
}

func (m *hostMetric) Desc() *prometheus.Desc { return m.desc }

// Write implements prometheus.Metric as the equivalent const metric.
func (m *hostMetric) Write(out *dto.Metric) error {
	cm, err := prometheus.NewConstMetric(m.desc, m.vt, m.value, m.labels...)
	if err != nil {
		return err
	}
	return cm.Write(out)
}

// newMetric is prometheus.MustNewConstMetric for collectors: the same
// checks and panics, a cheaper metric.
func newMetric(desc *prometheus.Desc, vt prometheus.ValueType, value float64, labels ...string) prometheus.Metric {
	info := descInfoOf(desc)
	if info == nil || len(labels) != len(info.varLabels) || (vt != prometheus.CounterValue && vt != prometheus.GaugeValue && vt != prometheus.UntypedValue) {
		return prometheus.MustNewConstMetric(desc, vt, value, labels...)
	}
	for _, l := range labels {
		if !utf8.ValidString(l) {
			return prometheus.MustNewConstMetric(desc, vt, value, labels...)
		}
	}
	return &hostMetric{info: info, desc: desc, vt: vt, value: value, labels: labels}
}

// descInfo is what the fast path needs of a descriptor, parsed once.
type descInfo struct {
	name, help string
	varLabels  []string
	// order lists the labels sorted by name, as dto.Metric holds them:
	// a variable label's index, or -1-i for constLabels[i].
	order       []int
	constLabels []string // names and values alternating
	labelNames  string   // the sorted label names, joined, to compare families
}

var descInfos = struct {
	sync.RWMutex
	m map[*prometheus.Desc]*descInfo // nil values: not for the fast path
}{m: map[*prometheus.Desc]*descInfo{}}

// descInfosMax bounds the cache; collectors create their descriptors once
// (or once per name seen), so it is only reached by a bug.
const descInfosMax = 1 << 14

func descInfoOf(d *prometheus.Desc) *descInfo {
	descInfos.RLock()
	info, ok := descInfos.m[d]
	descInfos.RUnlock()
	if ok {
		return info
	}
	info = parseDesc(d)
	descInfos.Lock()
	if len(descInfos.m) >= descInfosMax {
		clear(descInfos.m)
	}
	descInfos.m[d] = info
	descInfos.Unlock()
	return info
}

// parseDesc reads a descriptor through its String form, the only way
// client_golang shows its name, help and labels. Anything unusual (an
// invalid descriptor, a unit, constrained labels, names that need
// quoting) returns nil: such metrics take the registry's path.
func parseDesc(d *prometheus.Desc) *descInfo {
	s, ok := strings.CutPrefix(d.String(), "Desc{fqName: ")
	if !ok {
		return nil
	}
	quoted := func(prefix string) (string, bool) {
		var ok bool
		if s, ok = strings.CutPrefix(s, prefix); !ok {
			return "", false
		}
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", false
		}
		s = s[len(q):]
		v, err := strconv.Unquote(q)
		return v, err == nil
	}
	info := &descInfo{}
	var unit string
	if info.name, ok = quoted(""); !ok {
		return nil
	}
	if info.help, ok = quoted(", help: "); !ok {
		return nil
	}
	if unit, ok = quoted(", unit: "); !ok || unit != "" {
		return nil
	}
	if s, ok = strings.CutPrefix(s, ", constLabels: {"); !ok {
		return nil
	}
	for !strings.HasPrefix(s, "}") {
		name, rest, ok := strings.Cut(s, "=")
		if !ok {
			return nil
		}
		s = rest
		value, ok := quoted("")
		if !ok {
			return nil
		}
		info.constLabels = append(info.constLabels, name, value)
		s = strings.TrimPrefix(s, ",")
	}
	vars, ok := strings.CutPrefix(s, "}, variableLabels: {")
	if !ok {
		return nil
	}
	if vars, ok = strings.CutSuffix(vars, "}}"); !ok {
		return nil
	}
	if vars != "" {
		info.varLabels = strings.Split(vars, ",")
	}
	if !model.LegacyValidation.IsValidMetricName(info.name) {
		return nil
	}
	type label struct {
		name string
		ref  int
	}
	var labels []label
	for i, n := range info.varLabels {
		labels = append(labels, label{n, i})
	}
	for i := 0; i < len(info.constLabels); i += 2 {
		labels = append(labels, label{info.constLabels[i], -1 - i/2})
	}
	slices.SortFunc(labels, func(a, b label) int { return cmp.Compare(a.name, b.name) })
	names := make([]string, len(labels))
	for i, l := range labels {
		if !model.LegacyValidation.IsValidLabelName(l.name) || (i > 0 && l.name == labels[i-1].name) {
			return nil
		}
		info.order = append(info.order, l.ref)
		names[i] = l.name
	}
	info.labelNames = strings.Join(names, ",")
	// The descriptor must make valid const metrics.
	if _, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, 0, make([]string, len(info.varLabels))...); err != nil {
		return nil
	}
	return info
}

// label returns the value of the metric's i-th label in sorted order.
func (m *hostMetric) label(i int) string {
	if r := m.info.order[i]; r >= 0 {
		return m.labels[r]
	} else {
		return m.info.constLabels[2*(-1-r)+1]
	}
}

// labelName returns the name of the i-th label in sorted order.
func (info *descInfo) labelName(i int) string {
	if r := info.order[i]; r >= 0 {
		return info.varLabels[r]
	} else {
		return info.constLabels[2*(-1-r)]
	}
}

// exposeBufs keeps rendering buffers between scrapes.
var exposeBufs = make(chan []byte, 2)

// Expose implements pipeline.Exposer: one scrape of every collector,
// rendered in format.
func (s *Source) Expose(format expfmt.Format) (*pipeline.Exposition, error) {
	perCollector := s.collectAll()
	n := 0
	for _, ms := range perCollector {
		n += len(ms)
	}
	fast := make([]*hostMetric, 0, n)
	var other []prometheus.Metric
	for _, ms := range perCollector {
		for _, m := range ms {
			if hm, ok := m.(*hostMetric); ok {
				fast = append(fast, hm)
			} else {
				other = append(other, m)
			}
		}
	}
	return renderExposition(fast, other, format)
}

// renderExposition renders collected metrics as Gather and expfmt would.
func renderExposition(fast []*hostMetric, other []prometheus.Metric, format expfmt.Format) (*pipeline.Exposition, error) {

	// Families by name. A family the fast path cannot render alone (it
	// mixes kinds, types, help or label names, which Gather would merge
	// or reject) goes to the registry's path whole.
	st := getRenderState()
	defer putRenderState(st)
	fams := st.fams
	for _, m := range fast {
		f := fams[m.info.name]
		if f == nil {
			f = &family{}
			fams[m.info.name] = f
		}
		if len(f.metrics) == 0 {
			f.info, f.vt, f.slow = m.info, m.vt, false
		} else if f.info != m.info && (f.info.help != m.info.help || f.info.labelNames != m.info.labelNames) || f.vt != m.vt {
			f.slow = true
		}
		f.metrics = append(f.metrics, m)
	}
	var slowFams []*dto.MetricFamily
	if len(other) > 0 {
		for _, m := range other {
			if f := fams[descName(m.Desc())]; f != nil && len(f.metrics) > 0 {
				f.slow = true
			}
		}
	}
	for _, f := range fams {
		if f.slow && len(f.metrics) > 0 {
			for _, m := range f.metrics {
				other = append(other, m)
			}
		}
	}
	if len(other) > 0 {
		reg := prometheus.NewRegistry()
		if err := reg.Register(metricSlice(other)); err != nil {
			return nil, err
		}
		var err error
		if slowFams, err = reg.Gather(); err != nil {
			return nil, err
		}
	}

	names := st.names[:0]
	for name, f := range fams {
		if !f.slow && len(f.metrics) > 0 {
			names = append(names, name)
		}
	}
	for _, mf := range slowFams {
		names = append(names, mf.GetName())
	}
	slices.Sort(names)
	st.names = names

	var buf []byte
	select {
	case buf = <-exposeBufs:
	default:
		buf = make([]byte, 0, 64<<10)
	}
	om := format.FormatType() == expfmt.TypeOpenMetrics
	x := &pipeline.Exposition{Families: make([]pipeline.ExposedFamily, 0, len(names))}
	starts := st.starts[:0]
	si := 0
	for _, name := range names {
		start := len(buf)
		if f := fams[name]; f != nil && !f.slow && len(f.metrics) > 0 {
			var err error
			if buf, err = renderFamily(buf, f.info, f.vt, f.metrics, om); err != nil {
				return nil, err
			}
		} else {
			w := appendWriter{&buf}
			enc := expfmt.NewEncoder(w, format)
			if err := enc.Encode(slowFams[si]); err != nil {
				return nil, err
			}
			si++
		}
		starts = append(starts, start)
		x.Families = append(x.Families, pipeline.ExposedFamily{Name: name})
	}
	for i := range x.Families {
		end := len(buf)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		x.Families[i].Text = buf[starts[i]:end:end]
	}
	st.starts = starts
	x.Release = func() {
		select {
		case exposeBufs <- buf[:0]:
		default:
		}
	}
	return x, nil
}

// family is one metric family of a scrape, on the fast path unless slow.
type family struct {
	info    *descInfo
	vt      prometheus.ValueType
	metrics []*hostMetric
	slow    bool
}

// renderState is what renderExposition keeps between scrapes: the
// families (emptied, not dropped: the same ones come back on every
// scrape) and its slices.
type renderState struct {
	fams   map[string]*family
	names  []string
	starts []int
}

var renderStates sync.Pool

func getRenderState() *renderState {
	if st, ok := renderStates.Get().(*renderState); ok {
		return st
	}
	return &renderState{fams: make(map[string]*family, 256)}
}

// putRenderState empties st's families, keeping their slices, and keeps
// it for the next scrape. Families that stay empty for a scrape are
// dropped, so names seen once (a textfile's, an interface's) do not
// accumulate.
func putRenderState(st *renderState) {
	for name, f := range st.fams {
		if len(f.metrics) == 0 {
			delete(st.fams, name)
			continue
		}
		clear(f.metrics) // the metrics are not kept alive
		f.metrics = f.metrics[:0]
		f.info, f.slow = nil, false
	}
	clear(st.names)
	st.names = st.names[:0]
	renderStates.Put(st)
}

// descName is a descriptor's metric name, for the rare metrics outside
// the fast path.
func descName(d *prometheus.Desc) string {
	if info := descInfoOf(d); info != nil {
		return info.name
	}
	s, ok := strings.CutPrefix(d.String(), "Desc{fqName: ")
	if !ok {
		return ""
	}
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return ""
	}
	name, _ := strconv.Unquote(q)
	return name
}

// metricSlice re-sends metrics already collected, as an unchecked
// collector.
type metricSlice []prometheus.Metric

func (metricSlice) Describe(chan<- *prometheus.Desc) {}
func (s metricSlice) Collect(ch chan<- prometheus.Metric) {
	for _, m := range s {
		ch <- m
	}
}

// appendWriter appends to a byte slice; it has the methods expfmt uses
// to skip its own buffering.
type appendWriter struct{ b *[]byte }

func (w appendWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }
func (w appendWriter) WriteString(s string) (int, error) {
	*w.b = append(*w.b, s...)
	return len(s), nil
}
func (w appendWriter) WriteByte(c byte) error { *w.b = append(*w.b, c); return nil }
func (w appendWriter) WriteRune(r rune) (int, error) {
	n := len(*w.b)
	*w.b = utf8.AppendRune(*w.b, r)
	return len(*w.b) - n, nil
}

// renderFamily appends one family as expfmt's text (or OpenMetrics)
// encoder writes it after Gather: HELP, TYPE, then the samples sorted by
// their label values, label pairs sorted by name. Two samples with the
// same label values fail the scrape, as they fail Gather.
func renderFamily(buf []byte, info *descInfo, vt prometheus.ValueType, ms []*hostMetric, om bool) ([]byte, error) {
	nl := len(info.order)
	if nl > 0 {
		slices.SortFunc(ms, func(a, b *hostMetric) int {
			for i := range nl {
				if c := strings.Compare(a.label(i), b.label(i)); c != 0 {
					return c
				}
			}
			return 0
		})
	}
	for i := 1; i < len(ms); i++ {
		same := true
		for l := range nl {
			if ms[i].label(l) != ms[i-1].label(l) {
				same = false
				break
			}
		}
		if same {
			var pairs []string
			for l := range nl {
				pairs = append(pairs, fmt.Sprintf("%s:%q", info.labelName(l), ms[i].label(l)))
			}
			return buf, fmt.Errorf("collected metric %q { label:{%s}} was collected before with the same name and label values", info.name, strings.Join(pairs, " label:"))
		}
	}

	name, sampleName, typ := info.name, info.name, ""
	switch vt {
	case prometheus.CounterValue:
		typ = "counter"
		if om {
			if base, ok := strings.CutSuffix(name, "_total"); ok {
				name = base
			} else {
				typ = "unknown"
			}
		}
	case prometheus.GaugeValue:
		typ = "gauge"
	default:
		typ = "untyped"
		if om {
			typ = "unknown"
		}
	}
	buf = append(buf, "# HELP "...)
	buf = append(buf, name...)
	buf = append(buf, ' ')
	buf = appendEscaped(buf, info.help, om)
	buf = append(buf, "\n# TYPE "...)
	buf = append(buf, name...)
	buf = append(buf, ' ')
	buf = append(buf, typ...)
	buf = append(buf, '\n')
	for _, m := range ms {
		buf = append(buf, sampleName...)
		if nl > 0 {
			for l := range nl {
				if l == 0 {
					buf = append(buf, '{')
				} else {
					buf = append(buf, ',')
				}
				buf = append(buf, info.labelName(l)...)
				buf = append(buf, '=', '"')
				buf = appendEscaped(buf, m.label(l), true)
				buf = append(buf, '"')
			}
			buf = append(buf, '}')
		}
		buf = append(buf, ' ')
		buf = appendFloat(buf, m.value, om)
		buf = append(buf, '\n')
	}
	return buf, nil
}

// appendEscaped escapes as expfmt: backslash and newline, and the double
// quote when quote is set.
func appendEscaped(buf []byte, s string, quote bool) []byte {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c == '\n' || (c == '"' && quote) {
			clean = false
			break
		}
	}
	if clean {
		return append(buf, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			buf = append(buf, '\\', '\\')
		case c == '\n':
			buf = append(buf, '\\', 'n')
		case c == '"' && quote:
			buf = append(buf, '\\', '"')
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

// appendFloat formats as expfmt's text (or OpenMetrics) writer.
func appendFloat(buf []byte, f float64, om bool) []byte {
	switch {
	case f == 1:
		if om {
			return append(buf, "1.0"...)
		}
		return append(buf, '1')
	case f == 0:
		if om {
			return append(buf, "0.0"...)
		}
		return append(buf, '0')
	case f == -1:
		if om {
			return append(buf, "-1.0"...)
		}
		return append(buf, "-1"...)
	case math.IsNaN(f):
		return append(buf, "NaN"...)
	case math.IsInf(f, +1):
		return append(buf, "+Inf"...)
	case math.IsInf(f, -1):
		return append(buf, "-Inf"...)
	}
	n := len(buf)
	buf = strconv.AppendFloat(buf, f, 'g', -1, 64)
	if om && !strings.ContainsAny(string(buf[n:]), "e.") {
		buf = append(buf, '.', '0')
	}
	return buf
}
