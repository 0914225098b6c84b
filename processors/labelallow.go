package processors

import (
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// labelallow is Promtail's labelallow stage: it keeps only the named labels.
//
//	labelallow:
//	  - <label name>

func init() {
	pipeline.RegisterProcessor("labelallow", newLabelAllowStage)
}

type labelAllowStage struct {
	allow map[string]struct{}
	memo  labelMemo
}

func newLabelAllowStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	names, err := decodeLabelNameList(env.Decoder, node, "labelallow")
	if err != nil {
		return nil, err
	}
	s := &labelAllowStage{allow: make(map[string]struct{}, len(names))}
	for _, n := range names {
		s.allow[n] = struct{}{}
	}
	return s, nil
}

func (s *labelAllowStage) Process(b *pipeline.Batch) {
	for i := range b.Entries {
		e := &b.Entries[i]
		if out, ok := s.memo.get(e.Labels, nil); ok {
			e.Labels = out
			continue
		}
		m := s.memo.put(e.Labels, nil)
		out := e.Labels
		if !s.allowsAll(out) {
			kept := make(pipeline.Labels, 0, len(out))
			for _, l := range out {
				if _, ok := s.allow[l.Name]; ok {
					kept = append(kept, l)
				}
			}
			out = kept
		}
		m.out = out
		e.Labels = out
	}
}

func (s *labelAllowStage) allowsAll(ls pipeline.Labels) bool {
	for _, l := range ls {
		if _, ok := s.allow[l.Name]; !ok {
			return false
		}
	}
	return true
}
