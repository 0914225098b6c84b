package processors

import (
	"strings"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// relabel applies Prometheus relabel_configs to each entry's labels, with
// Prometheus's semantics for every action:
//
//	type: relabel
//	configs:
//	  - source_labels: [container]
//	    regex: 'web-(.*)'
//	    target_label: app
//	  - regex: pod_hash
//	    action: labeldrop
//
// Promtail has no such stage (it relabels targets, not entries). An entry whose rules say drop
// (keep, drop, keepequal, dropequal) is removed and counted.
//
// As after Prometheus's and Promtail's target relabeling, labels whose
// names start with "__" are removed from the result, so rules can use
// __tmp labels as scratch space and sources can offer __meta labels.
//
// Relabeling is costly (a label builder, regexes, new label sets), while
// an entry's labels come from a small set of streams whose label slices
// are shared between entries. So results are cached per distinct input
// set: in steady state an entry costs a hash and a map lookup, or a
// pointer comparison when it shares its labels with the previous entry.
type relabel struct {
	rules   pipeline.RelabelConfigs
	dropped prometheus.Counter

	cache map[uint64][]*relabelResult
	size  int
	// last short-cuts runs of entries that share one label slice.
	lastPtr *pipeline.Label
	lastLen int
	last    *relabelResult
}

type relabelResult struct {
	in, out pipeline.Labels
	keep    bool
}

type relabelConfig struct {
	Configs pipeline.RelabelConfigs `yaml:"configs"`
}

// relabelCacheMax bounds the cache: label sets that never repeat (a label
// carrying a request id) must not grow it without end. When full it starts
// over, which costs one relabeling per live stream.
const relabelCacheMax = 8192

func init() {
	pipeline.RegisterProcessor("relabel", newRelabel)
}

func newRelabel(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg relabelConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	if len(cfg.Configs) == 0 {
		return nil, env.Decoder.Errorf(node, "relabel: configs is required: a list of Prometheus relabel_configs")
	}
	return &relabel{
		rules:   cfg.Configs,
		dropped: counters{env}.dropped("relabel"),
		cache:   make(map[uint64][]*relabelResult),
	}, nil
}

func (r *relabel) Process(b *pipeline.Batch) {
	filter(b, func(e *pipeline.Entry) bool {
		res := r.lookup(e.Labels)
		if !res.keep {
			r.dropped.Inc()
			return false
		}
		e.Labels = res.out
		return true
	})
}

func (r *relabel) lookup(ls pipeline.Labels) *relabelResult {
	ptr := unsafe.SliceData(ls)
	if r.last != nil && ptr == r.lastPtr && len(ls) == r.lastLen {
		return r.last
	}
	h := relabelHash(ls)
	var res *relabelResult
	for _, c := range r.cache[h] {
		if sameLabelSet(c.in, ls) {
			res = c
			break
		}
	}
	if res == nil {
		res = r.compute(ls)
		if r.size >= relabelCacheMax {
			clear(r.cache)
			r.size = 0
		}
		r.cache[h] = append(r.cache[h], res)
		r.size++
	}
	// Holding the slice in last keeps its array alive, so the pointer
	// cannot be reused by another label set while it is compared against.
	r.lastPtr, r.lastLen, r.last = ptr, len(ls), res
	return res
}

func (r *relabel) compute(ls pipeline.Labels) *relabelResult {
	out, keep := r.rules.Apply(ls)
	if !keep {
		return &relabelResult{in: ls}
	}
	kept := out[:0]
	for _, l := range out {
		if !strings.HasPrefix(l.Name, "__") {
			kept = append(kept, l)
		}
	}
	clear(out[len(kept):])
	out = kept
	// An unchanged set keeps the input's slice, so later stages that key
	// their own caches on the slice see one set, not two.
	if sameLabelSet(out, ls) {
		out = ls
	}
	return &relabelResult{in: ls, out: out, keep: true}
}

// relabelHash hashes a label set the way pipeline.Labels.Hash does, on a
// digest that stays on the stack.
func relabelHash(ls pipeline.Labels) uint64 {
	var d xxhash.Digest
	d.Reset()
	sep := [1]byte{0xff}
	for _, l := range ls {
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write(sep[:])
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write(sep[:])
	}
	return d.Sum64()
}

func sameLabelSet(a, b pipeline.Labels) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
