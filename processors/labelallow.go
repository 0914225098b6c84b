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

func (s *labelAllowStage) Process(b *pipeline.Batch) { s.memo.apply(b, s.derive) }

func (s *labelAllowStage) derive(ls pipeline.Labels) pipeline.Labels {
	if s.allowsAll(ls) {
		return ls
	}
	kept := make(pipeline.Labels, 0, len(ls))
	for _, l := range ls {
		if _, ok := s.allow[l.Name]; ok {
			kept = append(kept, l)
		}
	}
	return kept
}

func (s *labelAllowStage) allowsAll(ls pipeline.Labels) bool {
	for _, l := range ls {
		if _, ok := s.allow[l.Name]; !ok {
			return false
		}
	}
	return true
}
