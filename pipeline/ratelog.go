package pipeline

import (
	"log/slog"
	"sync"
	"time"
)

// RateLimitedLogger logs at most one message per key per interval, and says
// how many it held back, so a flood of drops cannot flood the log.
type RateLimitedLogger struct {
	Logger   *slog.Logger
	Interval time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// NewRateLimitedLogger logs through l at most once per interval per key.
func NewRateLimitedLogger(l *slog.Logger, interval time.Duration) *RateLimitedLogger {
	return &RateLimitedLogger{Logger: l, Interval: interval, last: map[string]time.Time{}, held: map[string]int{}}
}

// Warn logs msg under key unless the key logged within the interval.
func (r *RateLimitedLogger) Warn(key, msg string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	if t, ok := r.last[key]; ok && now.Sub(t) < r.Interval {
		r.held[key]++
		r.mu.Unlock()
		return
	}
	held := r.held[key]
	r.last[key] = now
	r.held[key] = 0
	r.mu.Unlock()
	if held > 0 {
		args = append(args, "suppressed_since_last", held)
	}
	r.Logger.Warn(msg, args...)
}
