package processors

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// match runs nested stages only on the entries a LogQL selector picks
// (action: keep), or drops those entries (action: drop), as Promtail's
// match stage does. Entries the selector does not pick pass unchanged.

func init() {
	pipeline.RegisterProcessor("match", newMatch)
}

const (
	matchActionKeep   = "keep"
	matchActionDrop   = "drop"
	defaultMatchDrop  = "match_stage"
	matchNestedPrefix = "/"
)

type matchConfig struct {
	Selector          string    `yaml:"selector"`
	Stages            yaml.Node `yaml:"stages"`
	Action            string    `yaml:"action"`
	PipelineName      *string   `yaml:"pipeline_name"`
	DropCounterReason string    `yaml:"drop_counter_reason"`
}

type matchStage struct {
	sel    *logqlSelector
	drop   bool
	stages []pipeline.Processor

	droppedLines prometheus.Counter
	dropped      prometheus.Counter

	out []pipeline.Entry // reused to reassemble a batch with mixed runs
	// The label matchers' verdict on the last label set. Entries of one
	// stream share their label slice, so the matchers run about once per
	// stream and batch.
	lastLabels pipeline.Labels
	lastPicked bool
}

// matchFlushStage is a match whose nested stages carry entries across
// batches (multiline): it is a pipeline.Flusher so the runner flushes them.
type matchFlushStage struct {
	*matchStage
}

func newMatch(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg matchConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	d := env.Decoder
	if cfg.PipelineName != nil && *cfg.PipelineName == "" {
		return nil, d.Errorf(pipeline.NodeAt(node, "pipeline_name"), "match stage: pipeline_name may be omitted but not empty")
	}
	if cfg.Selector == "" {
		return nil, d.Errorf(pipeline.NodeAt(node, "selector"), "match stage needs a selector, such as '{app=\"api\"} |= \"error\"'")
	}
	switch cfg.Action {
	case "":
		cfg.Action = matchActionKeep
	case matchActionKeep, matchActionDrop:
	default:
		return nil, d.Errorf(pipeline.NodeAt(node, "action"), "match stage: action must be keep or drop, not %q", cfg.Action)
	}
	stages, err := pipeline.StageList(d, &cfg.Stages)
	if err != nil {
		return nil, err
	}
	if cfg.Action == matchActionKeep && len(stages) == 0 {
		return nil, d.Errorf(node, "match stage with action keep needs at least one stage in stages")
	}
	if cfg.Action == matchActionDrop && len(stages) > 0 {
		return nil, d.Errorf(pipeline.NodeAt(node, "stages"), "match stage with action drop cannot have stages")
	}
	sel, err := parseLogQLSelector(cfg.Selector)
	if err != nil {
		return nil, d.Errorf(pipeline.NodeAt(node, "selector"), "match stage: invalid selector %q: %v", cfg.Selector, err)
	}
	m := &matchStage{sel: sel, drop: cfg.Action == matchActionDrop}
	if m.drop {
		reason := cfg.DropCounterReason
		if reason == "" {
			reason = defaultMatchDrop
		}
		lines, err := droppedLinesCounter(env)
		if err != nil {
			return nil, err
		}
		m.droppedLines = lines.WithLabelValues(reason)
		m.dropped = counters{env}.dropped(reason)
		return m, nil
	}
	// Nested stages are named after the match, so their metrics and
	// -inspect lines say where they sit: <match>/<pipeline_name>/<i>/<type>.
	prefix := env.Name + matchNestedPrefix
	if cfg.PipelineName != nil {
		prefix += *cfg.PipelineName + matchNestedPrefix
	}
	flushes := false
	for i, st := range stages {
		nested := env
		nested.Name = fmt.Sprintf("%s%d/%s", prefix, i, st.Type)
		if env.Logger != nil {
			nested.Logger = env.Logger.With("stage", nested.Name)
		}
		p, err := pipeline.NewProcessor(nested, st.Type, st.At, st.Node)
		if err != nil {
			return nil, err
		}
		if _, ok := p.(pipeline.Flusher); ok {
			flushes = true
		}
		m.stages = append(m.stages, p)
	}
	if flushes {
		return &matchFlushStage{m}, nil
	}
	return m, nil
}

func (m *matchStage) Process(b *pipeline.Batch) {
	if m.drop {
		n := 0
		filter(b, func(e *pipeline.Entry) bool {
			if m.selected(e) {
				n++
				return false
			}
			return true
		})
		if n > 0 {
			m.droppedLines.Add(float64(n))
			m.dropped.Add(float64(n))
		}
		return
	}
	// The nested stages run on each run of consecutive selected entries
	// in turn, with the batch itself narrowed to the run: entries keep
	// their order, and a nested stage that holds the batch (multiline)
	// holds the real one.
	all := b.Entries
	n := len(all)
	mixed := false
	for i := 0; i < n; {
		picked := m.selected(&all[i])
		j := i + 1
		for j < n && m.selected(&all[j]) == picked {
			j++
		}
		if i == 0 && j == n {
			if picked {
				m.run(b)
			}
			return
		}
		mixed = true
		if !picked {
			m.out = append(m.out, all[i:j]...)
		} else {
			b.Entries = all[i:j:j]
			m.run(b)
			m.out = append(m.out, b.Entries...)
		}
		i = j
	}
	if mixed {
		b.Entries = append(all[:0], m.out...)
		if len(m.out) < n {
			clear(all[len(m.out):n])
		}
		clear(m.out)
		m.out = m.out[:0]
	}
}

// selected reports whether the selector picks e.
func (m *matchStage) selected(e *pipeline.Entry) bool {
	ls := e.Labels
	if len(ls) == 0 || len(ls) != len(m.lastLabels) || &ls[0] != &m.lastLabels[0] {
		m.lastLabels, m.lastPicked = ls, m.sel.matchesLabels(ls)
	}
	return m.lastPicked && m.sel.matchesLine(e.Line)
}

// run passes b through the nested stages, stopping when none is left.
func (m *matchStage) run(b *pipeline.Batch) {
	for _, p := range m.stages {
		p.Process(b)
		if len(b.Entries) == 0 {
			return
		}
	}
}

// Flush releases what nested stages carry, running it through the nested
// stages after the one that carried it, as the runner does for top-level
// stages.
func (m *matchFlushStage) Flush(now time.Time, force bool) *pipeline.Batch {
	var out *pipeline.Batch
	for i, p := range m.stages {
		f, ok := p.(pipeline.Flusher)
		if !ok {
			continue
		}
		fb := f.Flush(now, force)
		if fb == nil {
			continue
		}
		for _, q := range m.stages[i+1:] {
			q.Process(fb)
			if len(fb.Entries) == 0 {
				break
			}
		}
		switch {
		case len(fb.Entries) == 0:
			// Everything was dropped: that settles it.
			fb.Settle()
		case out == nil:
			out = fb
		default:
			out.Entries = append(out.Entries, fb.Entries...)
			out.Attach(fb)
		}
	}
	return out
}
