package pipeline

import (
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v3"
)

// RelabelConfigs is a list of Prometheus relabel_configs, decoded strictly
// and validated with positions, applied with Prometheus's own semantics.
type RelabelConfigs []*relabel.Config

var relabelKeys = []string{"source_labels", "separator", "regex", "modulus", "target_label", "replacement", "action"}

// DecodeNode implements NodeDecoder.
func (rc *RelabelConfigs) DecodeNode(d Decoder, n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return d.Errorf(n, "relabel_configs: expected a list")
	}
	for _, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.MappingNode {
			return d.Errorf(item, "relabel_configs: expected a mapping")
		}
		for i := 0; i+1 < len(item.Content); i += 2 {
			k, v := item.Content[i], item.Content[i+1]
			if !contains(relabelKeys, k.Value) {
				return d.Errorf(k, "unknown key %q in relabel_configs%s", k.Value, suggest(k.Value, relabelKeys))
			}
			if k.Value == "regex" {
				if _, err := relabel.NewRegexp(v.Value); err != nil {
					return d.Errorf(v, "invalid regex %q in relabel_configs: %v", v.Value, err)
				}
			}
		}
		c := &relabel.Config{}
		if err := item.Decode(c); err != nil {
			return d.Errorf(item, "invalid relabel config: %s", cleanYAMLError(err))
		}
		if err := c.Validate(model.UTF8Validation); err != nil {
			return d.Errorf(item, "invalid relabel config: %v", err)
		}
		*rc = append(*rc, c)
	}
	return nil
}

// Apply relabels ls. keep is false when a rule dropped the set.
func (rc RelabelConfigs) Apply(ls Labels) (out Labels, keep bool) {
	if len(rc) == 0 {
		return ls, true
	}
	b := labels.NewBuilder(labels.EmptyLabels())
	for _, l := range ls {
		b.Set(l.Name, l.Value)
	}
	if !relabel.ProcessBuilder(b, rc...) {
		return nil, false
	}
	res := b.Labels()
	out = make(Labels, 0, res.Len())
	res.Range(func(l labels.Label) { out = append(out, Label{l.Name, l.Value}) })
	return out, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
