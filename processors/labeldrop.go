package processors

import (
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// labeldrop is Promtail's labeldrop stage: it removes the named labels.
//
//	labeldrop:
//	  - <label name>

func init() {
	pipeline.RegisterProcessor("labeldrop", newLabelDropStage)
}

type labelDropStage struct {
	drop []string
	memo labelMemo
}

func newLabelDropStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	names, err := decodeLabelNameList(env.Decoder, node, "labeldrop")
	if err != nil {
		return nil, err
	}
	return &labelDropStage{drop: names}, nil
}

func (s *labelDropStage) Process(b *pipeline.Batch) { s.memo.apply(b, s.derive) }

func (s *labelDropStage) derive(out pipeline.Labels) pipeline.Labels {
	for _, name := range s.drop {
		out = out.Delete(name)
	}
	return out
}

// decodeLabelNameList reads the list of label names labeldrop and
// labelallow take. Promtail rejects an empty list.
func decodeLabelNameList(d pipeline.Decoder, node *yaml.Node, stage string) ([]string, error) {
	if node == nil || node.Kind != yaml.SequenceNode {
		return nil, d.Errorf(node, "%s stage expects a list of label names", stage)
	}
	if len(node.Content) == 0 {
		return nil, d.Errorf(node, "%s stage config cannot be empty: name at least one label", stage)
	}
	var names []string
	for _, n := range node.Content {
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Value == "" {
			return nil, d.Errorf(n, "%s stage: expected a label name", stage)
		}
		names = append(names, n.Value)
	}
	return names, nil
}
