package processors

import (
	"math"
	"math/rand/v2"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// sampling keeps each entry with probability rate and drops the rest, as
// Promtail's sampling stage does.

func init() {
	pipeline.RegisterProcessor("sampling", newSampling)
}

const defaultSamplingReason = "sampling_stage"

type samplingConfig struct {
	Rate              *float64 `yaml:"rate"`
	DropCounterReason string   `yaml:"drop_counter_reason"`
}

type samplingStage struct {
	// An entry is kept when a uniform random 63-bit number is at most
	// boundary: rate scaled to the 63-bit range.
	boundary uint64
	rng      *rand.Rand

	droppedLines prometheus.Counter
	dropped      prometheus.Counter
}

func newSampling(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg samplingConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	// Promtail reads a missing rate as 0 and drops every line; a sampling
	// stage without a rate is far more likely a mistake, so it is an error.
	if cfg.Rate == nil {
		return nil, env.Decoder.Errorf(node, "sampling stage needs a rate between 0 and 1, such as 0.1 to keep 10%% of lines")
	}
	rate := *cfg.Rate
	if math.IsNaN(rate) || rate < 0 || rate > 1 {
		return nil, env.Decoder.Errorf(pipeline.NodeAt(node, "rate"), "sampling stage: rate must be between 0 and 1, not %v", rate)
	}
	reason := cfg.DropCounterReason
	if reason == "" {
		reason = defaultSamplingReason
	}
	lines, err := droppedLinesCounter(env)
	if err != nil {
		return nil, err
	}
	return &samplingStage{
		boundary:     samplingBoundary(rate),
		rng:          rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		droppedLines: lines.WithLabelValues(reason),
		dropped:      counters{env}.dropped(reason),
	}, nil
}

const samplingMax = uint64(math.MaxInt64)

func samplingBoundary(rate float64) uint64 {
	if rate >= 1 {
		return samplingMax
	}
	return uint64(float64(samplingMax) * rate)
}

// keep draws a number in [1, 2^63-1]: never 0, so a rate of 0 keeps
// nothing.
func (s *samplingStage) keep() bool {
	return s.rng.Uint64N(samplingMax)+1 <= s.boundary
}

func (s *samplingStage) Process(b *pipeline.Batch) {
	if s.boundary == samplingMax {
		return
	}
	n := 0
	filter(b, func(*pipeline.Entry) bool {
		if s.keep() {
			return true
		}
		n++
		return false
	})
	if n > 0 {
		s.droppedLines.Add(float64(n))
		s.dropped.Add(float64(n))
	}
}
