package processors

import (
	"hash/maphash"
	"sort"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// labels is Promtail's labels stage: it copies extracted values into the
// entry's stream labels.
//
//	labels:
//	  <label name>: [<extracted name>]   # empty means the same name
//
// Building a new label set per entry is what the stage would cost, so the
// sets it derives are remembered (labelMemo): entries of one stream with
// the same extracted values share one label set, and steady state does not
// allocate.

func init() {
	pipeline.RegisterProcessor("labels", newLabelsStage)
}

type labelsStage struct {
	names   []string // label names, sorted
	sources []string // extracted names, parallel to names
	vals    []string // scratch: this entry's values
	memo    labelMemo
	invalid prometheus.Counter
}

func newLabelsStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	names, sources, err := decodeLabelSources(env.Decoder, node, "labels")
	if err != nil {
		return nil, err
	}
	return &labelsStage{
		names:   names,
		sources: sources,
		vals:    make([]string, len(names)),
		invalid: counters{env}.stageError("invalid_label_value"),
	}, nil
}

func (s *labelsStage) Process(b *pipeline.Batch) {
	for i := range b.Entries {
		e := &b.Entries[i]
		for j, src := range s.sources {
			v, ok := extractedValue(e, src)
			switch {
			case !ok:
				v = noLabelValue
			case !validLabelValue(v):
				// Promtail skips values that are not valid label values.
				s.invalid.Inc()
				v = noLabelValue
			}
			s.vals[j] = v
		}
		if out, ok := s.memo.get(e.Labels, s.vals); ok {
			e.Labels = out
			continue
		}
		m := s.memo.put(e.Labels, s.vals)
		out := e.Labels
		for j, name := range s.names {
			if v := m.vals[j]; v != noLabelValue {
				out = out.Set(name, v)
			}
		}
		m.out = out
		e.Labels = out
	}
	clear(s.vals) // do not keep the batch's lines alive
}

// decodeLabelSources reads a `name: source` mapping as the labels and
// structured_metadata stages take it: names must be valid Prometheus label
// names, an empty or null source means the name itself. The result is
// sorted by name so the stage behaves the same on every run.
func decodeLabelSources(d pipeline.Decoder, node *yaml.Node, stage string) (names, sources []string, err error) {
	if node == nil || node.Kind != yaml.MappingNode {
		return nil, nil, d.Errorf(node, "%s stage expects a mapping of label name to extracted name", stage)
	}
	if len(node.Content) == 0 {
		return nil, nil, d.Errorf(node, "%s stage config cannot be empty: name at least one label", stage)
	}
	type pair struct{ name, src string }
	var pairs []pair
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		kn, vn := node.Content[i], node.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			return nil, nil, d.Errorf(kn, "%s stage: expected a label name", stage)
		}
		if !validLegacyLabelName(kn.Value) {
			return nil, nil, d.Errorf(kn, "invalid label name: %q (must match [a-zA-Z_][a-zA-Z0-9_]*)", kn.Value)
		}
		if seen[kn.Value] {
			return nil, nil, d.Errorf(kn, "duplicate key %q", kn.Value)
		}
		seen[kn.Value] = true
		src := kn.Value
		if vn.Kind == yaml.ScalarNode && vn.Tag != "!!null" {
			if vn.Value != "" {
				src = vn.Value
			}
		} else if !(vn.Kind == yaml.ScalarNode && vn.Tag == "!!null") {
			return nil, nil, d.Errorf(vn, "%s stage: the value of %q must be the name of an extracted value or empty", stage, kn.Value)
		}
		pairs = append(pairs, pair{kn.Value, src})
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].name < pairs[j].name })
	for _, p := range pairs {
		names = append(names, p.name)
		sources = append(sources, p.src)
	}
	return names, sources, nil
}

// validLabelValue reports whether v is valid UTF-8, as Prometheus requires
// of label values, checking the common short ASCII case inline.
func validLabelValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] >= utf8.RuneSelf {
			return utf8.ValidString(v[i:])
		}
	}
	return true
}

// validLegacyLabelName reports whether s is a Prometheus label name in the
// classic character set, which is what Promtail checks for these stages.
func validLegacyLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

// noLabelValue stands for "no value" in labelMemo keys. It is not valid
// UTF-8, so no real label value can equal it.
const noLabelValue = "\xff"

// labelMemo remembers label sets a stage derived from a base set and a few
// values, so entries of the same stream with the same values get the same
// (shared, immutable) set without allocating.
//
// The base set is keyed by identity: label sets are immutable, and the
// entries of a stream share one slice, so the same backing array and
// length mean the same labels. The remembered entry keeps the base alive,
// so its address cannot be reused by another set while it is remembered.
type labelMemo struct {
	// recent holds the last few entries used, checked before hashing:
	// streams usually take a handful of value combinations (levels), and
	// comparing a few short strings is cheaper than hashing them.
	recent [4]*memoEntry
	next   int
	m      map[uint64]*memoEntry
}

type memoEntry struct {
	base pipeline.Labels
	vals []string // owned copies: the inputs may point into a batch's lines
	out  pipeline.Labels
}

// maxMemoEntries bounds the memo. Reaching it usually means the values are
// high-cardinality (which makes a bad label anyway); starting over keeps
// memory bounded at the cost of rebuilding.
const maxMemoEntries = 4096

func (m *memoEntry) matches(base pipeline.Labels, vals []string) bool {
	if len(m.base) != len(base) || unsafe.SliceData(m.base) != unsafe.SliceData(base) || len(m.vals) != len(vals) {
		return false
	}
	for i := range vals {
		if m.vals[i] != vals[i] {
			return false
		}
	}
	return true
}

// memoSeed seeds the memo's hashes; any seed works, the hash is only a
// map key that is verified on lookup.
var memoSeed = maphash.MakeSeed()

func memoHash(base pipeline.Labels, vals []string) uint64 {
	h := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(base))))*31 + uint64(len(base))
	for _, v := range vals {
		h = (h ^ maphash.String(memoSeed, v)) * 1099511628211
	}
	return h
}

// get returns the set derived from base and vals before, if any.
// apply sets each entry's labels to derive(labels), computing it once per
// distinct label set: the stages that change labels without reading any
// value (labeldrop, labelallow, static_labels) share this loop.
func (c *labelMemo) apply(b *pipeline.Batch, derive func(pipeline.Labels) pipeline.Labels) {
	for i := range b.Entries {
		e := &b.Entries[i]
		if out, ok := c.get(e.Labels, nil); ok {
			e.Labels = out
			continue
		}
		m := c.put(e.Labels, nil)
		m.out = derive(e.Labels)
		e.Labels = m.out
	}
}

func (c *labelMemo) get(base pipeline.Labels, vals []string) (pipeline.Labels, bool) {
	for _, m := range c.recent {
		if m != nil && m.matches(base, vals) {
			return m.out, true
		}
	}
	if c.m == nil {
		return nil, false
	}
	if m, ok := c.m[memoHash(base, vals)]; ok && m.matches(base, vals) {
		c.remember(m)
		return m.out, true
	}
	return nil, false
}

func (c *labelMemo) remember(m *memoEntry) {
	c.recent[c.next] = m
	c.next = (c.next + 1) % len(c.recent)
}

// put adds an entry for base and vals, with owned copies of vals; the
// caller builds the derived set from those copies and stores it in out.
func (c *labelMemo) put(base pipeline.Labels, vals []string) *memoEntry {
	if c.m == nil || len(c.m) >= maxMemoEntries {
		c.m = make(map[uint64]*memoEntry)
		c.recent = [len(c.recent)]*memoEntry{}
	}
	m := &memoEntry{base: base, vals: make([]string, len(vals))}
	for i, v := range vals {
		m.vals[i] = strings.Clone(v)
	}
	c.m[memoHash(base, vals)] = m
	c.remember(m)
	return m
}

// cfgListItem returns the i-th item of the list under key, for errors
// about one item, or the best node available when it is not there as such
// (an alias, for one).
func cfgListItem(node *yaml.Node, key string, i int) *yaml.Node {
	n := pipeline.NodeAt(node, key)
	if n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}
