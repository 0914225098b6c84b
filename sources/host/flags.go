package host

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// Flags are node_exporter's command-line flags: --path.*, --collector.<name>,
// --no-collector.<name>, --collector.<name>.<option> and
// --collector.disable-defaults. They override the settings of every host
// source of the config, in the order given.
type Flags struct {
	set []flagSetting
}

type flagKind int

const (
	flagPath flagKind = iota
	flagEnable
	flagDisable
	flagOption
	flagDisableDefaults
)

type flagSetting struct {
	flag  string // as typed, for errors
	kind  flagKind
	key   string // config key, collector name or full option name
	value string
}

// AddFlags registers the host flags on fs for every registered collector.
func AddFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	def := DefaultPaths()
	for _, p := range []struct{ flag, key, def, help string }{
		{"path.procfs", "procfs", def.Proc, "procfs mountpoint."},
		{"path.sysfs", "sysfs", def.Sys, "sysfs mountpoint."},
		{"path.rootfs", "rootfs", def.Root, "rootfs mountpoint."},
		{"path.udev.data", "udev_data", def.UdevData, "udev data path."},
	} {
		fs.Var(&flagValue{f: f, flag: p.flag, kind: flagPath, key: p.key, shown: p.def}, p.flag, p.help+" Overrides the host sources of the config.")
	}
	fs.Var(&flagValue{f: f, flag: "collector.disable-defaults", kind: flagDisableDefaults, isBool: true, shown: "false"},
		"collector.disable-defaults", "Set all collectors to disabled by default.")
	for _, s := range Specs() {
		state := "disabled"
		if s.DefaultEnabled {
			state = "enabled"
		}
		fs.Var(&flagValue{f: f, flag: "collector." + s.Name, kind: flagEnable, key: s.Name, isBool: true, shown: strconv.FormatBool(s.DefaultEnabled)},
			"collector."+s.Name, fmt.Sprintf("Enable the %s collector (default: %s).", s.Name, state))
		fs.Var(&flagValue{f: f, flag: "no-collector." + s.Name, kind: flagDisable, key: s.Name, isBool: true, shown: "false"},
			"no-collector."+s.Name, fmt.Sprintf("Disable the %s collector.", s.Name))
		for _, o := range s.Options {
			full := s.Name + "." + o.Name
			fs.Var(&flagValue{f: f, flag: "collector." + full, kind: flagOption, key: full, isBool: o.Bool, opt: o, shown: o.Default},
				"collector."+full, o.Help)
			if o.Bool {
				fs.Var(&flagValue{f: f, flag: "no-collector." + full, kind: flagOption, key: full, isBool: true, negate: true, opt: o, shown: "false"},
					"no-collector."+full, "Negates --collector."+full+".")
			}
		}
	}
	return f
}

type flagValue struct {
	f      *Flags
	flag   string
	kind   flagKind
	key    string
	isBool bool
	negate bool
	opt    Option
	shown  string
	last   string
}

func (v *flagValue) String() string {
	if v == nil {
		return ""
	}
	if v.last != "" {
		return v.last
	}
	return v.shown
}

func (v *flagValue) IsBoolFlag() bool { return v.isBool }

func (v *flagValue) Set(s string) error {
	kind, value := v.kind, s
	if v.isBool {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean %q", s)
		}
		if v.negate {
			b = !b
		}
		value = strconv.FormatBool(b)
		switch {
		case kind == flagEnable && !b:
			kind = flagDisable
		case kind == flagDisable && !b:
			kind = flagEnable
		}
	}
	if v.kind == flagOption && !v.isBool {
		if err := checkOptionValue(v.opt, s); err != nil {
			return err
		}
	}
	v.last = s
	v.f.set = append(v.f.set, flagSetting{flag: v.flag, kind: kind, key: v.key, value: value})
	return nil
}

// Given says whether any host flag was set.
func (f *Flags) Given() bool { return f != nil && len(f.set) > 0 }

// Apply patches every host source of cfg with the flags given, as if the
// config said so. With flags given and no host source in cfg, it is an
// error: the flags would silently do nothing.
func (f *Flags) Apply(cfg *pipeline.Config) error {
	if !f.Given() {
		return nil
	}
	n := 0
	for _, c := range cfg.Sources {
		if c.Type != Type {
			continue
		}
		n++
		for _, s := range f.set {
			applySetting(c.Node, s)
		}
	}
	if n == 0 {
		var names []string
		for _, s := range f.set {
			names = append(names, "--"+s.flag)
		}
		return fmt.Errorf("%s: the flags %s configure host metrics, but the config has no source of type %s; add one under sources (for example `host: {type: host}`)",
			cfg.File, strings.Join(dedup(names), ", "), Type)
	}
	return nil
}

func dedup(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func applySetting(m *yaml.Node, s flagSetting) {
	switch s.kind {
	case flagPath:
		setKey(m, s.key, scalarNode(s.value))
	case flagDisableDefaults:
		setKey(m, "disable_defaults", scalarNode(s.value))
	case flagEnable:
		listRemove(m, "disable", s.key)
		listAdd(m, "enable", s.key)
	case flagDisable:
		listRemove(m, "enable", s.key)
		listAdd(m, "disable", s.key)
	case flagOption:
		opts := pipeline.KeyNode(m, "options")
		if opts == nil || opts.Kind != yaml.MappingNode {
			opts = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			setKey(m, "options", opts)
		}
		setKey(opts, s.key, scalarNode(s.value))
	}
}

// scalarNode has no tag, so the decoder resolves it as YAML would have
// ("true" a boolean, "/proc" a string).
func scalarNode(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: v}
}

// setKey replaces the value of key in mapping m, or appends the key.
func setKey(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, scalarNode(key), v)
}

func listAdd(m *yaml.Node, key, name string) {
	seq := pipeline.KeyNode(m, key)
	if seq == nil || seq.Kind != yaml.SequenceNode {
		seq = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		setKey(m, key, seq)
	}
	for _, c := range seq.Content {
		if c.Value == name {
			return
		}
	}
	seq.Content = append(seq.Content, scalarNode(name))
}

func listRemove(m *yaml.Node, key, name string) {
	seq := pipeline.KeyNode(m, key)
	if seq == nil || seq.Kind != yaml.SequenceNode {
		return
	}
	out := seq.Content[:0]
	for _, c := range seq.Content {
		if c.Value != name {
			out = append(out, c)
		}
	}
	seq.Content = out
}
