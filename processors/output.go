package processors

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// output is Promtail's output stage: the entry's line becomes an extracted
// value. When the value is missing the line is left as it is.
//
//	output:
//	  source: <extracted name>

func init() {
	pipeline.RegisterProcessor("output", newOutputStage)
}

type outputConfig struct {
	Source string `yaml:"source"`
}

type outputStage struct {
	source  string
	vals    []string // scratch: each entry's new line, where found
	found   []bool
	missing prometheus.Counter
}

func newOutputStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg outputConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	if cfg.Source == "" {
		return nil, env.Decoder.Errorf(pipeline.NodeAt(node, "source"), "output stage: source is required")
	}
	return &outputStage{source: cfg.Source, missing: counters{env}.stageError("missing_source")}, nil
}

func (s *outputStage) Process(b *pipeline.Batch) {
	// The new lines are copied into one buffer per batch: a value may point
	// into this or another entry's line, or into a string that must not be
	// written through, and later stages may change lines in place.
	s.vals = s.vals[:0]
	s.found = s.found[:0]
	total := 0
	for i := range b.Entries {
		v, ok := extractedValue(&b.Entries[i], s.source)
		if !ok {
			s.missing.Inc()
		}
		s.vals = append(s.vals, v)
		s.found = append(s.found, ok)
		total += len(v)
	}
	var arena batchLineArena
	arena.grow(total)
	for i := range b.Entries {
		if s.found[i] {
			b.Entries[i].Line = arena.add(s.vals[i])
		}
	}
	clear(s.vals) // do not keep the batch's memory alive
}

// batchLineArena hands out line buffers carved from one allocation per batch.
// Each piece has its capacity capped so an append by a later stage copies
// instead of running into the next entry's bytes.
type batchLineArena struct {
	buf []byte
}

func (a *batchLineArena) grow(n int) {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, n)
	}
}

func (a *batchLineArena) add(s string) []byte {
	start := len(a.buf)
	a.buf = append(a.buf, s...)
	return a.buf[start:len(a.buf):len(a.buf)]
}
