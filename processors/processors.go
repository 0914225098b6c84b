// Package processors holds vigil's processors: every Promtail pipeline
// stage under its Promtail name and keys, Prometheus relabeling, and stages
// Promtail lacks. One file per stage, each registered by name in its init.
//
// Stages pass data to each other through Entry.Extracted, as Promtail's
// stages do through the extracted map. A stage that cannot process an
// entry (malformed input, no match, a missing source field) passes it on
// unchanged and counts it in vigil_processor_errors_total, as Promtail
// passes such entries on.
package processors

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/pipeline"
)

// counters are a stage's error and drop counters, resolved once so the hot
// path does not look label values up per entry.
type counters struct {
	env pipeline.Env
}

// stageError counts an entry the stage could not process.
func (c counters) stageError(reason string) prometheus.Counter {
	return c.env.Metrics.StageErrors.WithLabelValues(c.env.Name, reason)
}

// dropped counts entries the stage dropped on purpose.
func (c counters) dropped(reason string) prometheus.Counter {
	return c.env.Metrics.Dropped.WithLabelValues(c.env.Name, reason)
}

// filter keeps the entries keep returns true for, in place.
func filter(b *pipeline.Batch, keep func(e *pipeline.Entry) bool) {
	out := b.Entries[:0]
	for i := range b.Entries {
		if keep(&b.Entries[i]) {
			out = append(out, b.Entries[i])
		}
	}
	clear(b.Entries[len(out):])
	b.Entries = out
}

// extractedValue looks name up the way Promtail's stages see their
// extracted map. Promtail seeds that map with the entry's labels when the
// pipeline starts, so a stage can read a label (such as filename) as if it
// had been extracted; vigil does not copy labels into Extracted per entry,
// so a name not extracted falls back to the label of that name.
func extractedValue(e *pipeline.Entry, name string) (string, bool) {
	if v, ok := e.Extracted.Get(name); ok {
		return v, true
	}
	for _, l := range e.Labels {
		if l.Name == name {
			return l.Value, true
		}
	}
	return "", false
}
