package processors

import (
	"sort"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// static_labels is Promtail's static_labels stage: it adds fixed labels to
// every entry. A null or empty value adds nothing, as in Promtail.
//
//	static_labels:
//	  <label name>: <value>

func init() {
	pipeline.RegisterProcessor("static_labels", newStaticLabelsStage)
}

type staticLabelsStage struct {
	labels pipeline.Labels // sorted; empty values already left out
	memo   labelMemo
}

func newStaticLabelsStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	d := env.Decoder
	if node == nil || node.Kind != yaml.MappingNode {
		return nil, d.Errorf(node, "static_labels stage expects a mapping of label name to value")
	}
	if len(node.Content) == 0 {
		return nil, d.Errorf(node, "static_labels stage config cannot be empty: name at least one label")
	}
	s := &staticLabelsStage{}
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		kn, vn := node.Content[i], node.Content[i+1]
		// Promtail checks names with the UTF-8 scheme here (unlike the
		// labels stage), so any non-empty UTF-8 name is accepted.
		if kn.Kind != yaml.ScalarNode || kn.Value == "" || !utf8.ValidString(kn.Value) {
			return nil, d.Errorf(kn, "invalid label name: %q", kn.Value)
		}
		if seen[kn.Value] {
			return nil, d.Errorf(kn, "duplicate key %q", kn.Value)
		}
		seen[kn.Value] = true
		if vn.Kind != yaml.ScalarNode {
			return nil, d.Errorf(vn, "static_labels: the value of %q must be a string", kn.Value)
		}
		if vn.Tag == "!!null" || vn.Value == "" {
			continue
		}
		s.labels = append(s.labels, pipeline.Label{Name: kn.Value, Value: vn.Value})
	}
	sort.Slice(s.labels, func(i, j int) bool { return s.labels[i].Name < s.labels[j].Name })
	return s, nil
}

func (s *staticLabelsStage) Process(b *pipeline.Batch) {
	if len(s.labels) > 0 {
		s.memo.apply(b, s.derive)
	}
}

func (s *staticLabelsStage) derive(out pipeline.Labels) pipeline.Labels {
	for _, l := range s.labels {
		out = out.Set(l.Name, l.Value)
	}
	return out
}
