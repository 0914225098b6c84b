package processors

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// drop removes entries that meet every condition it is given (an AND; a
// pipeline of several drop stages is an OR), as Promtail's drop stage does:
//
//   - longer_than: the line is longer than this many bytes;
//   - older_than: the timestamp is older than now minus this duration;
//   - source without value or expression: every named extracted field exists;
//   - expression without source: the regexp matches the line;
//   - source with value or expression: the values of the named fields that
//     exist, joined with separator, equal value or match expression.

func init() {
	pipeline.RegisterProcessor("drop", newDrop)
}

const (
	defaultDropReason    = "drop_stage"
	defaultDropSeparator = ";"
)

type dropConfig struct {
	Source            *dropSource    `yaml:"source"`
	Separator         *string        `yaml:"separator"`
	Value             *string        `yaml:"value"`
	Expression        *string        `yaml:"expression"`
	OlderThan         *time.Duration `yaml:"older_than"`
	LongerThan        *dropByteSize  `yaml:"longer_than"`
	DropCounterReason string         `yaml:"drop_counter_reason"`
}

// dropSource is one extracted field name or a list of them.
type dropSource []string

// DecodeNode implements pipeline.NodeDecoder.
func (s *dropSource) DecodeNode(d pipeline.Decoder, n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = dropSource{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(dropSource, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return d.Errorf(c, "source: expected a field name")
			}
			out = append(out, c.Value)
		}
		*s = out
		return nil
	}
	return d.Errorf(n, "source: expected a field name or a list of field names")
}

// dropByteSize is a size in bytes written as Promtail's drop stage takes it:
// an integer, or a number with a unit where every unit is a power of 1024
// (8kb is 8192 bytes).
type dropByteSize int64

var dropByteUnits = map[string]int64{
	"": 1, "b": 1, "byte": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "kilo": 1 << 10, "kilobyte": 1 << 10, "kilobytes": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "mega": 1 << 20, "megabyte": 1 << 20, "megabytes": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "giga": 1 << 30, "gigabyte": 1 << 30, "gigabytes": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40, "tera": 1 << 40, "terabyte": 1 << 40, "terabytes": 1 << 40,
}

var dropByteSizeRE = regexp.MustCompile(`^\s*(\d+)\s*([A-Za-z]*)\s*$`)

// DecodeNode implements pipeline.NodeDecoder.
func (b *dropByteSize) DecodeNode(d pipeline.Decoder, n *yaml.Node) error {
	m := dropByteSizeRE.FindStringSubmatch(n.Value)
	if n.Kind != yaml.ScalarNode || m == nil {
		return d.Errorf(n, "longer_than: invalid size %q: want bytes, or a number with a unit such as 8kb", n.Value)
	}
	unit, ok := dropByteUnits[strings.ToLower(m[2])]
	if !ok {
		return d.Errorf(n, "longer_than: invalid size unit %q in %q (use b, kb, mb, gb or tb)", m[2], n.Value)
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || v > (1<<62)/unit {
		return d.Errorf(n, "longer_than: size %q is out of range", n.Value)
	}
	*b = dropByteSize(v * unit)
	return nil
}

type dropStage struct {
	sources      []string // nil when no source is set
	separator    string
	value        *string
	re           *regexp.Regexp
	olderThan    time.Duration
	hasOlderThan bool
	longerThan   int // -1: not set
	now          func() time.Time

	droppedLines prometheus.Counter // logentry_dropped_lines_total{reason}
	dropped      prometheus.Counter // vigil_dropped_entries_total{component,reason}
	joined       []byte             // reused to join source values
}

func newDrop(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg dropConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	if cfg.Source == nil && cfg.Expression == nil && cfg.OlderThan == nil && cfg.LongerThan == nil {
		return nil, env.Decoder.Errorf(node, "drop stage needs at least one of source, expression, older_than or longer_than")
	}
	if cfg.Value != nil && cfg.Source == nil {
		return nil, env.Decoder.Errorf(pipeline.NodeAt(node, "value"), "drop stage: value needs a source to compare with")
	}
	if cfg.Value != nil && cfg.Expression != nil {
		return nil, env.Decoder.Errorf(pipeline.NodeAt(node, "expression"), "drop stage: value and expression cannot both be set")
	}
	if cfg.Source != nil && len(*cfg.Source) == 0 {
		return nil, env.Decoder.Errorf(pipeline.NodeAt(node, "source"), "drop stage: source is an empty list")
	}
	if cfg.OlderThan != nil && *cfg.OlderThan < 0 {
		return nil, env.Decoder.Errorf(pipeline.NodeAt(node, "older_than"), "drop stage: older_than must not be negative")
	}
	s := &dropStage{separator: defaultDropSeparator, value: cfg.Value, longerThan: -1, now: time.Now}
	if cfg.Source != nil {
		s.sources = *cfg.Source
	}
	if cfg.Separator != nil {
		s.separator = *cfg.Separator
	}
	if cfg.Expression != nil {
		re, err := regexp.Compile(*cfg.Expression)
		if err != nil {
			return nil, env.Decoder.Errorf(pipeline.NodeAt(node, "expression"), "drop stage: invalid expression %q: %v", *cfg.Expression, err)
		}
		s.re = re
	}
	if cfg.OlderThan != nil {
		s.olderThan, s.hasOlderThan = *cfg.OlderThan, true
	}
	if cfg.LongerThan != nil {
		s.longerThan = int(*cfg.LongerThan)
	}
	reason := cfg.DropCounterReason
	if reason == "" {
		reason = defaultDropReason
	}
	lines, err := droppedLinesCounter(env)
	if err != nil {
		return nil, err
	}
	s.droppedLines = lines.WithLabelValues(reason)
	s.dropped = counters{env}.dropped(reason)
	return s, nil
}

func (s *dropStage) Process(b *pipeline.Batch) {
	var cutoff int64
	if s.hasOlderThan {
		cutoff = s.now().Add(-s.olderThan).UnixNano()
	}
	n := 0
	filter(b, func(e *pipeline.Entry) bool {
		if s.shouldDrop(e, cutoff) {
			n++
			return false
		}
		return true
	})
	if n > 0 {
		s.droppedLines.Add(float64(n))
		s.dropped.Add(float64(n))
	}
}

func (s *dropStage) shouldDrop(e *pipeline.Entry, cutoff int64) bool {
	// Cheapest checks first: each one that fails keeps the entry.
	if s.longerThan >= 0 && len(e.Line) <= s.longerThan {
		return false
	}
	if s.hasOlderThan && e.Time >= cutoff {
		return false
	}
	if s.sources == nil {
		return s.re == nil || s.re.Match(e.Line)
	}
	if s.re == nil && s.value == nil {
		for _, name := range s.sources {
			if _, ok := e.Extracted.Get(name); !ok {
				return false
			}
		}
		return true
	}
	// Promtail joins the values of the fields that exist and skips the
	// missing ones.
	j := s.joined[:0]
	first := true
	for _, name := range s.sources {
		v, ok := e.Extracted.Get(name)
		if !ok {
			continue
		}
		if !first {
			j = append(j, s.separator...)
		}
		first = false
		j = append(j, v...)
	}
	s.joined = j
	if s.value != nil {
		return string(j) == *s.value
	}
	return s.re.Match(j)
}

// droppedLinesCounter is Promtail's logentry_dropped_lines_total{reason},
// shared by every stage that drops on purpose (drop, match, sampling,
// limit) so existing dashboards keep counting.
func droppedLinesCounter(env pipeline.Env) (*prometheus.CounterVec, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "logentry_dropped_lines_total",
		Help: "A count of all log lines dropped as a result of a pipeline stage",
	}, []string{"reason"})
	if env.Registerer == nil {
		return vec, nil
	}
	c, err := pipeline.RegisterOrReuse(env.Registerer, vec)
	if err != nil {
		return nil, err
	}
	got, ok := c.(*prometheus.CounterVec)
	if !ok {
		return nil, fmt.Errorf("logentry_dropped_lines_total is registered as %T, not a counter vector", c)
	}
	return got, nil
}
