package processors

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// limit caps the rate of entries with a token bucket (rate per second,
// burst), as Promtail's limit stage does. With drop, entries over the rate
// are dropped; without it the stage waits for the bucket to refill, which
// holds up the pipeline and so, through the memory budget, the source
// (backpressure). With by_label_name each value of that label has its own
// bucket and entries without the label are not limited.

func init() {
	pipeline.RegisterProcessor("limit", newLimit)
}

const (
	limitDropReason = "ratelimit_drop_stage"
	// Promtail raises a smaller max_distinct_labels to this: a bucket
	// costs little, and too small a set resets buckets too often.
	minLimitDistinctLabels = 10000
)

type limitConfig struct {
	Rate              float64 `yaml:"rate"`
	Burst             int     `yaml:"burst"`
	Drop              bool    `yaml:"drop"`
	ByLabelName       string  `yaml:"by_label_name"`
	MaxDistinctLabels int     `yaml:"max_distinct_labels"`
}

// limitBucket holds up to burst tokens and gains rate tokens a second; it
// starts full, as golang.org/x/time/rate's limiter does.
type limitBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newLimitBucket(rate float64, burst int, now time.Time) *limitBucket {
	return &limitBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

func (t *limitBucket) refill(now time.Time) {
	if d := now.Sub(t.last); d > 0 {
		t.tokens = min(t.burst, t.tokens+d.Seconds()*t.rate)
		t.last = now
	}
}

// allow takes a token if one is there.
func (t *limitBucket) allow(now time.Time) bool {
	t.refill(now)
	if t.tokens >= 1 {
		t.tokens--
		return true
	}
	return false
}

// reserve takes n tokens, going into debt when there are not enough, and
// returns how long until the debt is paid off.
func (t *limitBucket) reserve(now time.Time, n int) time.Duration {
	t.refill(now)
	t.tokens -= float64(n)
	if t.tokens >= 0 {
		return 0
	}
	return time.Duration(-t.tokens / t.rate * float64(time.Second))
}

type limitStage struct {
	cfg   limitConfig
	now   func() time.Time
	sleep func(time.Duration)

	bucket *limitBucket // without by_label_name
	// Buckets per label value, in two generations: when the new one
	// reaches max_distinct_labels it becomes the old one, and values not
	// seen since are forgotten (Promtail's generational map).
	newGen, oldGen map[string]*limitBucket

	droppedLines  prometheus.Counter
	dropped       prometheus.Counter
	droppedByVec  *prometheus.CounterVec // logentry_dropped_lines_by_label_total{label_name,label_value}
	droppedByLine *pipeline.RateLimitedLogger
}

func newLimit(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg limitConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	if cfg.Rate <= 0 {
		return nil, env.Decoder.Errorf(pipeline.NodeAt(node, "rate"), "limit stage needs a rate above 0 (lines per second)")
	}
	if cfg.Burst <= 0 {
		return nil, env.Decoder.Errorf(pipeline.NodeAt(node, "burst"), "limit stage needs a burst above 0 (lines)")
	}
	if cfg.ByLabelName != "" && !cfg.Drop {
		return nil, env.Decoder.Errorf(pipeline.NodeAt(node, "by_label_name"), "limit stage: by_label_name needs drop: true")
	}
	logger := env.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ByLabelName != "" && cfg.MaxDistinctLabels < minLimitDistinctLabels {
		if cfg.MaxDistinctLabels != 0 {
			logger.Warn("limit stage: max_distinct_labels raised to the smallest reasonable value", "max_distinct_labels", minLimitDistinctLabels)
		}
		cfg.MaxDistinctLabels = minLimitDistinctLabels
	}
	lines, err := droppedLinesCounter(env)
	if err != nil {
		return nil, err
	}
	s := &limitStage{
		cfg:           cfg,
		now:           time.Now,
		sleep:         time.Sleep,
		droppedLines:  lines.WithLabelValues(limitDropReason),
		dropped:       counters{env}.dropped(limitDropReason),
		droppedByLine: pipeline.NewRateLimitedLogger(logger, 10*time.Second),
	}
	if cfg.ByLabelName != "" {
		vec := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logentry_dropped_lines_by_label_total",
			Help: "A count of all log lines dropped as a result of a pipeline stage",
		}, []string{"label_name", "label_value"})
		if env.Registerer != nil {
			c, err := pipeline.RegisterOrReuse(env.Registerer, vec)
			if err != nil {
				return nil, err
			}
			got, ok := c.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("logentry_dropped_lines_by_label_total is registered as %T, not a counter vector", c)
			}
			vec = got
		}
		s.droppedByVec = vec
		s.newGen = map[string]*limitBucket{}
	}
	return s, nil
}

func (s *limitStage) Process(b *pipeline.Batch) {
	if len(b.Entries) == 0 {
		return
	}
	now := s.now()
	if !s.cfg.Drop {
		if s.bucket == nil {
			s.bucket = newLimitBucket(s.cfg.Rate, s.cfg.Burst, now)
		}
		// The batch moves on as a whole, so it waits once, for its last
		// entry's turn.
		if d := s.bucket.reserve(now, len(b.Entries)); d > 0 {
			s.sleep(d)
		}
		return
	}
	n := 0
	if s.cfg.ByLabelName == "" {
		if s.bucket == nil {
			s.bucket = newLimitBucket(s.cfg.Rate, s.cfg.Burst, now)
		}
		filter(b, func(*pipeline.Entry) bool {
			if s.bucket.allow(now) {
				return true
			}
			n++
			return false
		})
	} else {
		filter(b, func(e *pipeline.Entry) bool {
			v := e.Labels.Get(s.cfg.ByLabelName)
			if v == "" {
				return true
			}
			if s.labelBucket(v, now).allow(now) {
				return true
			}
			n++
			s.droppedByVec.WithLabelValues(s.cfg.ByLabelName, v).Inc()
			return false
		})
	}
	if n > 0 {
		s.droppedLines.Add(float64(n))
		s.dropped.Add(float64(n))
		s.droppedByLine.Warn("limit", "limit stage dropped lines over the rate limit", "dropped", n, "rate", s.cfg.Rate, "burst", s.cfg.Burst)
	}
}

func (s *limitStage) labelBucket(v string, now time.Time) *limitBucket {
	if t, ok := s.newGen[v]; ok {
		return t
	}
	t, ok := s.oldGen[v]
	if !ok {
		t = newLimitBucket(s.cfg.Rate, s.cfg.Burst, now)
	}
	s.newGen[v] = t
	if len(s.newGen) >= s.cfg.MaxDistinctLabels {
		s.oldGen = s.newGen
		s.newGen = map[string]*limitBucket{}
		// As Promtail does: the per-value counters would otherwise grow
		// without bound with the values.
		s.droppedByVec.Reset()
	}
	return t
}
