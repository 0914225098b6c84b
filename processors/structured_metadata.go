package processors

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// structured_metadata is Promtail's structured_metadata stage: it attaches
// extracted values, or labels, to the entry as Loki structured metadata.
//
//	structured_metadata:
//	  <metadata name>: [<extracted or label name>]   # empty means the same name
//
// As in Promtail, a name is looked up in the extracted values first and in
// the labels otherwise, and a label whose value went into the metadata is
// removed from the stream labels: that is how high-cardinality labels set
// by relabel_configs move out of the stream.

func init() {
	pipeline.RegisterProcessor("structured_metadata", newStructuredMetadataStage)
}

type structuredMetadataStage struct {
	names   []string
	sources []string
	vals    []string // scratch: "" where the source label moves, noLabelValue elsewhere
	memo    labelMemo
	invalid prometheus.Counter
}

func newStructuredMetadataStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	names, sources, err := decodeLabelSources(env.Decoder, node, "structured_metadata")
	if err != nil {
		return nil, err
	}
	return &structuredMetadataStage{
		names:   names,
		sources: sources,
		vals:    make([]string, len(names)),
		invalid: counters{env}.stageError("invalid_label_value"),
	}, nil
}

func (s *structuredMetadataStage) Process(b *pipeline.Batch) {
	// One backing array per batch holds every entry's metadata, so adding
	// metadata does not allocate per entry. Entries may share their
	// incoming metadata slice, so it is copied, never appended to.
	total := 0
	for i := range b.Entries {
		total += len(b.Entries[i].Metadata) + len(s.names)
	}
	arena := make([]pipeline.Label, 0, total)
	for i := range b.Entries {
		e := &b.Entries[i]
		start := len(arena)
		arena = append(arena, e.Metadata...)
		added := false
		for j, src := range s.sources {
			s.vals[j] = noLabelValue
			v, ok := e.Extracted.Get(src)
			if ok && !validLabelValue(v) {
				// Promtail skips the value and looks at the labels.
				s.invalid.Inc()
				ok = false
			}
			if !ok {
				if v, ok = lookupLabel(e.Labels, src); !ok {
					continue
				}
			}
			arena = append(arena, pipeline.Label{Name: s.names[j], Value: v})
			if cur, ok := lookupLabel(e.Labels, src); ok && cur == v {
				s.vals[j] = "" // the label moves into the metadata
			}
			added = true
		}
		if !added {
			arena = arena[:start]
			continue
		}
		e.Metadata = arena[start:len(arena):len(arena)]
		e.Labels = s.withoutMoved(e.Labels)
	}
}

// withoutMoved removes the labels that moved into the metadata. The memo
// is keyed by which labels move, not by the values, so unique values
// (trace IDs) do not defeat it.
func (s *structuredMetadataStage) withoutMoved(base pipeline.Labels) pipeline.Labels {
	if out, ok := s.memo.get(base, s.vals); ok {
		return out
	}
	m := s.memo.put(base, s.vals)
	out := base
	for j, src := range s.sources {
		if m.vals[j] != noLabelValue {
			out = out.Delete(src)
		}
	}
	m.out = out
	return out
}

func lookupLabel(ls pipeline.Labels, name string) (string, bool) {
	for _, l := range ls {
		if l.Name == name {
			return l.Value, true
		}
	}
	return "", false
}
