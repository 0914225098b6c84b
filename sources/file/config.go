// Package file is vigil's Promtail-compatible file tailer: the source type
// "file". It finds files by doublestar globs, follows them through rename
// and copytruncate rotation, and moves a file's position in the Promtail
// positions file only once the batches before it have settled.
package file

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// Defaults.
const (
	DefaultSyncPeriod         = 10 * time.Second
	DefaultMaxLineSize        = 256 << 10
	DefaultPartialLineTimeout = 5 * time.Second
	DefaultBatchLines         = 1024
	DefaultBatchBytes         = 256 << 10
)

// Config is the file source's config.
//
// The top-level include, exclude and labels form one group of files. Each
// entry of targets is another group (the Promtail translation makes one per
// static_config). The top-level labels are defaults for every target and the
// top-level exclude applies to every target as well. A path matched by
// several groups is tailed once, with the labels of the first group.
type Config struct {
	Include []Pattern `yaml:"include"`
	Exclude []Pattern `yaml:"exclude"`
	Labels  LabelSet  `yaml:"labels"`
	Targets []Target  `yaml:"targets"`
	// SyncPeriod is how often the globs are evaluated again as a safety net
	// for missed directory events (Promtail's target_config.sync_period).
	SyncPeriod time.Duration `yaml:"sync_period"`
	// MaxLineSize truncates longer lines; the rest of such a line is skipped.
	MaxLineSize pipeline.ByteSize `yaml:"max_line_size"`
	// PartialLineTimeout is how long a last line without a newline is held
	// before it is emitted as it is.
	PartialLineTimeout time.Duration     `yaml:"partial_line_timeout"`
	BatchLines         int               `yaml:"batch_lines"`
	BatchBytes         pipeline.ByteSize `yaml:"batch_bytes"`
}

// Target is one group of files with its own globs and labels.
type Target struct {
	Include []Pattern `yaml:"include"`
	Exclude []Pattern `yaml:"exclude"`
	Labels  LabelSet  `yaml:"labels"`
}

// DecodeNode implements pipeline.NodeDecoder so that a target without an
// include pattern is reported at the target's position.
func (t *Target) DecodeNode(d pipeline.Decoder, n *yaml.Node) error {
	type plain Target
	if err := d.Decode(n, (*plain)(t)); err != nil {
		return err
	}
	if len(t.Include) == 0 {
		return d.Errorf(n, "target has no include pattern")
	}
	return nil
}

// Pattern is a doublestar glob, cleaned and validated while decoding.
type Pattern string

// DecodeNode implements pipeline.NodeDecoder.
func (p *Pattern) DecodeNode(d pipeline.Decoder, n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return d.Errorf(n, "expected a glob pattern such as /var/log/*.log")
	}
	if n.Value == "" {
		return d.Errorf(n, "empty glob pattern")
	}
	clean := filepath.ToSlash(filepath.Clean(n.Value))
	if !doublestar.ValidatePattern(clean) {
		return d.Errorf(n, "invalid glob pattern %q", n.Value)
	}
	*p = Pattern(clean)
	return nil
}

// LabelSet is a set of static labels, validated while decoding.
type LabelSet map[string]string

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// DecodeNode implements pipeline.NodeDecoder.
func (ls *LabelSet) DecodeNode(d pipeline.Decoder, n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return d.Errorf(n, "expected a mapping of label names to values")
	}
	m := make(LabelSet, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		for vn.Kind == yaml.AliasNode && vn.Alias != nil {
			vn = vn.Alias
		}
		name := kn.Value
		switch {
		case kn.Kind != yaml.ScalarNode || !labelNameRE.MatchString(name):
			return d.Errorf(kn, "invalid label name %q: must match %s", name, labelNameRE)
		case strings.HasPrefix(name, "__"):
			return d.Errorf(kn, "label name %q: names starting with __ are reserved", name)
		case vn.Kind != yaml.ScalarNode:
			return d.Errorf(vn, "label %q: expected a single value", name)
		case !utf8.ValidString(vn.Value):
			return d.Errorf(vn, "label %q: value is not valid UTF-8", name)
		}
		if _, dup := m[name]; dup {
			return d.Errorf(kn, "duplicate label %q", name)
		}
		if vn.Tag == "!!null" {
			m[name] = ""
		} else {
			m[name] = vn.Value
		}
	}
	*ls = m
	return nil
}

// group is one compiled set of globs and the labels of its files.
type group struct {
	include []string
	exclude []string
	labels  map[string]string
}

// excluded reports whether path matches one of the group's exclude globs.
func (g *group) excluded(path string) bool {
	for _, e := range g.exclude {
		if doublestar.MatchUnvalidated(e, path) {
			return true
		}
	}
	return false
}

// settings are the resolved, defaulted values of a Config.
type settings struct {
	groups             []group
	syncPeriod         time.Duration
	maxLine            int
	partialLineTimeout time.Duration
	batchLines         int
	batchBytes         int
}

// resolve validates c and applies defaults; errors point into node.
func (c *Config) resolve(d pipeline.Decoder, node *yaml.Node) (settings, error) {
	s := settings{
		syncPeriod:         c.SyncPeriod,
		maxLine:            int(c.MaxLineSize),
		partialLineTimeout: c.PartialLineTimeout,
		batchLines:         c.BatchLines,
		batchBytes:         int(c.BatchBytes),
	}
	for _, chk := range []struct {
		key string
		bad bool
	}{
		{"sync_period", s.syncPeriod < 0},
		{"partial_line_timeout", s.partialLineTimeout < 0},
		{"batch_lines", s.batchLines < 0},
		{"max_line_size", int64(c.MaxLineSize) > 1<<30},
		{"batch_bytes", int64(c.BatchBytes) > 1<<30},
	} {
		if chk.bad {
			return s, d.Errorf(pipeline.NodeAt(node, chk.key), "%s is out of range", chk.key)
		}
	}
	if s.syncPeriod == 0 {
		s.syncPeriod = DefaultSyncPeriod
	}
	if s.maxLine == 0 {
		s.maxLine = DefaultMaxLineSize
	}
	if s.partialLineTimeout == 0 {
		s.partialLineTimeout = DefaultPartialLineTimeout
	}
	if s.batchLines == 0 {
		s.batchLines = DefaultBatchLines
	}
	if s.batchBytes == 0 {
		s.batchBytes = DefaultBatchBytes
	}

	patterns := func(ps []Pattern) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = string(p)
		}
		return out
	}
	if len(c.Include) > 0 {
		s.groups = append(s.groups, group{
			include: patterns(c.Include),
			exclude: patterns(c.Exclude),
			labels:  c.Labels,
		})
	}
	for _, t := range c.Targets {
		labels := make(map[string]string, len(c.Labels)+len(t.Labels))
		for k, v := range c.Labels {
			labels[k] = v
		}
		for k, v := range t.Labels {
			labels[k] = v
		}
		s.groups = append(s.groups, group{
			include: patterns(t.Include),
			exclude: append(patterns(c.Exclude), patterns(t.Exclude)...),
			labels:  labels,
		})
	}
	if len(s.groups) == 0 {
		return s, d.Errorf(node, "file source needs at least one include pattern (include, or targets with include)")
	}
	return s, nil
}

func (s settings) String() string {
	return fmt.Sprintf("groups=%d sync_period=%s max_line_size=%d partial_line_timeout=%s batch_lines=%d batch_bytes=%d",
		len(s.groups), s.syncPeriod, s.maxLine, s.partialLineTimeout, s.batchLines, s.batchBytes)
}
