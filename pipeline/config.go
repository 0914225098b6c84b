package pipeline

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is a loaded configuration: the native graph of named sources,
// processors and sinks wired into named pipelines. A Promtail config is
// translated into this same shape.
type Config struct {
	Server     ServerConfig    `yaml:"server"`
	Positions  PositionsConfig `yaml:"positions"`
	Buffer     BufferConfig    `yaml:"buffer"`
	Sources    Components      `yaml:"sources"`
	Processors Components      `yaml:"processors"`
	Sinks      Components      `yaml:"sinks"`
	Pipelines  Pipelines       `yaml:"pipelines"`

	File   string `yaml:"-"` // where it was loaded from, for error positions
	DryRun bool   `yaml:"-"` // entries go to stdout; positions are never written
	// Inspect, when set, receives what each processor changed in each
	// entry (-inspect).
	Inspect io.Writer `yaml:"-"`
	Format  string    `yaml:"-"` // "native" or "promtail"
	// Notes are things worth telling the operator at start, such as
	// accepted Promtail keys that have no effect in vigil.
	Notes []string `yaml:"-"`
}

// ServerConfig uses the keys of Promtail's server block, so both formats
// share it.
type ServerConfig struct {
	HTTPListenAddress       string        `yaml:"http_listen_address"`
	HTTPListenPort          *int          `yaml:"http_listen_port"`
	GRPCListenAddress       string        `yaml:"grpc_listen_address"`
	GRPCListenPort          *int          `yaml:"grpc_listen_port"`
	LogLevel                string        `yaml:"log_level"`
	LogFormat               string        `yaml:"log_format"`
	GracefulShutdownTimeout time.Duration `yaml:"graceful_shutdown_timeout"`
	HTTPServerReadTimeout   time.Duration `yaml:"http_server_read_timeout"`
	HTTPServerWriteTimeout  time.Duration `yaml:"http_server_write_timeout"`
	HTTPServerIdleTimeout   time.Duration `yaml:"http_server_idle_timeout"`
	RegisterInstrumentation *bool         `yaml:"register_instrumentation"`
	Disable                 bool          `yaml:"disable"`
	EnableRuntimeReload     *bool         `yaml:"enable_runtime_reload"`
}

// ListenAddress is host:port from the block, or "" when it sets neither.
func (s ServerConfig) ListenAddress() string {
	if s.HTTPListenPort == nil && s.HTTPListenAddress == "" {
		return ""
	}
	port := 9100
	if s.HTTPListenPort != nil {
		port = *s.HTTPListenPort
	}
	return s.HTTPListenAddress + ":" + strconv.Itoa(port)
}

// PositionsConfig is Promtail's positions block.
type PositionsConfig struct {
	Filename          string        `yaml:"filename"`
	SyncPeriod        time.Duration `yaml:"sync_period"`
	IgnoreInvalidYAML bool          `yaml:"ignore_invalid_yaml"`
}

// BufferConfig bounds the memory held by unsettled entries.
type BufferConfig struct {
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// Defaults.
const (
	DefaultSyncPeriod        = 10 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultBufferBytes       = 4 << 20
	MinBufferBytes           = 1 << 20
	DefaultPositionsPromtail = "/var/log/positions.yaml"
)

// ByteSize is a size in bytes, written as an integer or with a unit: 16MiB, 512KB.
type ByteSize int64

var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1000, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1000 * 1000, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1000 * 1000 * 1000, "gib": 1 << 30,
}

var byteSizeRE = regexp.MustCompile(`^\s*(\d+)\s*([A-Za-z]*)\s*$`)

// DecodeNode implements NodeDecoder.
func (b *ByteSize) DecodeNode(d Decoder, n *yaml.Node) error {
	m := byteSizeRE.FindStringSubmatch(n.Value)
	if n.Kind != yaml.ScalarNode || m == nil {
		return d.Errorf(n, "invalid size %q: want bytes, or a number with a unit such as 16MiB", n.Value)
	}
	unit, ok := byteUnits[strings.ToLower(m[2])]
	if !ok {
		return d.Errorf(n, "invalid size unit %q in %q (use KiB, MiB, GiB, KB, MB or GB)", m[2], n.Value)
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return d.Errorf(n, "invalid size %q: %v", n.Value, err)
	}
	*b = ByteSize(v * unit)
	return nil
}

// Component is one named source, processor or sink.
type Component struct {
	Name string
	Type string
	// Node is the component's mapping without its type key.
	Node *yaml.Node
	// At is the node errors about the component as a whole point to.
	At *yaml.Node
	// NameAt is where the component is named.
	NameAt *yaml.Node
}

// Components keeps the order components were written in.
type Components []Component

// Get finds a component by name.
func (cs Components) Get(name string) (Component, bool) {
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return Component{}, false
}

// DecodeNode implements NodeDecoder.
func (cs *Components) DecodeNode(d Decoder, n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return d.Errorf(n, "expected a mapping of component names to their settings")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], resolve(n.Content[i+1])
		if _, dup := cs.Get(kn.Value); dup {
			return d.Errorf(kn, "duplicate component name %q", kn.Value)
		}
		if vn == nil || vn.Kind != yaml.MappingNode {
			return d.Errorf(kn, "component %q: expected a mapping with a type key", kn.Value)
		}
		c := Component{Name: kn.Value, At: kn, NameAt: kn, Node: &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: vn.Line, Column: vn.Column}}
		for j := 0; j+1 < len(vn.Content); j += 2 {
			if vn.Content[j].Value == "type" {
				c.Type = vn.Content[j+1].Value
				c.At = vn.Content[j+1]
				continue
			}
			c.Node.Content = append(c.Node.Content, vn.Content[j], vn.Content[j+1])
		}
		if c.Type == "" {
			return d.Errorf(kn, "component %q has no type", kn.Value)
		}
		*cs = append(*cs, c)
	}
	return nil
}

// Ref names a component from a pipeline, remembering where, for errors.
type Ref struct {
	Name string
	At   *yaml.Node
}

// DecodeNode implements NodeDecoder.
func (r *Ref) DecodeNode(d Decoder, n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return d.Errorf(n, "expected a component name")
	}
	r.Name, r.At = n.Value, n
	return nil
}

// PipelineConfig wires sources through processors to sinks.
type PipelineConfig struct {
	Name       string     `yaml:"-"`
	Sources    []Ref      `yaml:"sources"`
	Processors []Ref      `yaml:"processors"`
	Sinks      []Ref      `yaml:"sinks"`
	At         *yaml.Node `yaml:"-"`
}

// Pipelines keeps the order pipelines were written in.
type Pipelines []PipelineConfig

// DecodeNode implements NodeDecoder.
func (ps *Pipelines) DecodeNode(d Decoder, n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return d.Errorf(n, "expected a mapping of pipeline names to their settings")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn := n.Content[i]
		for _, p := range *ps {
			if p.Name == kn.Value {
				return d.Errorf(kn, "duplicate pipeline name %q", kn.Value)
			}
		}
		p := PipelineConfig{Name: kn.Value, At: kn}
		if err := d.decode(n.Content[i+1], reflectValue(&p), "pipelines."+kn.Value); err != nil {
			return err
		}
		p.Name, p.At = kn.Value, kn
		*ps = append(*ps, p)
	}
	return nil
}

// LoadOptions says how to read a config file.
type LoadOptions struct {
	// ExpandEnv expands ${VAR} in a Promtail-format file, as Promtail's
	// -config.expand-env does. Native files are always expanded.
	ExpandEnv bool
	// Format forces "native" or "promtail"; "" detects it.
	Format string
}

// LoadFile reads and checks the structure of a config file. It does not
// build components; Build does that, and reports their errors.
func LoadFile(file string, opts LoadOptions) (*Config, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Load(file, raw, opts)
}

// Load parses raw, the contents of file.
func Load(file string, raw []byte, opts LoadOptions) (*Config, error) {
	d := Decoder{File: file}
	root, err := parseYAML(file, raw)
	if err != nil {
		return nil, err
	}
	format := opts.Format
	if format == "" {
		format = detectFormat(root)
	}
	if format == "native" || opts.ExpandEnv {
		if root, err = parseYAML(file, ExpandEnv(raw)); err != nil {
			return nil, err
		}
	}
	var cfg *Config
	switch format {
	case "native":
		cfg = &Config{}
		if root != nil {
			if err := d.Decode(root, cfg); err != nil {
				return nil, err
			}
		}
	case "promtail":
		if cfg, err = translatePromtail(d, root); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s: unknown config format %q (want native or promtail)", file, format)
	}
	cfg.File, cfg.Format = file, format
	if err := cfg.check(d); err != nil {
		return nil, err
	}
	return cfg, nil
}

func parseYAML(file string, raw []byte) (*yaml.Node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		if err.Error() == "EOF" {
			return nil, nil
		}
		return nil, yamlSyntaxError(file, err)
	}
	return resolve(&doc), nil
}

var yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlSyntaxError(file string, err error) error {
	if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ConfigError{File: file, Line: line, Column: 1, Msg: "invalid YAML: " + m[2]}
	}
	return &ConfigError{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

// detectFormat says "promtail" when the file has a key only Promtail
// configs have.
func detectFormat(root *yaml.Node) string {
	if root == nil || root.Kind != yaml.MappingNode {
		return "native"
	}
	for i := 0; i < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "scrape_configs", "clients", "client", "target_config", "limits_config":
			return "promtail"
		}
	}
	return "native"
}

var envRE = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}`)

// ExpandEnv replaces ${VAR}, ${VAR:-default} (default when unset or empty)
// and ${VAR-default} (default when unset). $${ is a literal ${. A bare $ is
// left alone so regex replacements such as $1 survive.
func ExpandEnv(raw []byte) []byte {
	return envRE.ReplaceAllFunc(raw, func(m []byte) []byte {
		if string(m) == "$${" {
			return []byte("${")
		}
		sub := envRE.FindSubmatch(m)
		v, set := os.LookupEnv(string(sub[1]))
		switch string(sub[2]) {
		case ":-":
			if v == "" {
				return sub[3]
			}
		case "-":
			if !set {
				return sub[3]
			}
		}
		return []byte(v)
	})
}

// check validates the wiring: every pipeline names existing components, and
// every component is used.
func (c *Config) check(d Decoder) error {
	if c.Positions.SyncPeriod == 0 {
		c.Positions.SyncPeriod = DefaultSyncPeriod
	}
	if c.Positions.SyncPeriod < 0 {
		return d.Errorf(nil, "positions.sync_period must be positive")
	}
	if c.Server.GracefulShutdownTimeout == 0 {
		c.Server.GracefulShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Buffer.MaxBytes == 0 {
		c.Buffer.MaxBytes = DefaultBufferBytes
	}
	// The bound holds only if the budget fits a source's largest batch
	// (the file source's default is 256KiB of lines plus their overhead);
	// a single batch larger than the whole budget is let through alone
	// rather than deadlock.
	if c.Buffer.MaxBytes < MinBufferBytes {
		return d.Errorf(nil, "buffer.max_bytes %d is too small: it must hold a few batches (at least 1MiB)", c.Buffer.MaxBytes)
	}
	logSources := 0
	for _, s := range c.Sources {
		if !IsMetricsSource(s.Type) {
			logSources++
		}
	}
	if len(c.Pipelines) == 0 && c.Format == "native" && (logSources > 0 || len(c.Sinks) > 0) {
		return d.Errorf(nil, "no pipelines: add a pipelines block that wires sources to sinks")
	}
	used := map[string]bool{}
	for _, p := range c.Pipelines {
		if len(p.Sources) == 0 {
			return d.Errorf(p.At, "pipeline %q has no sources", p.Name)
		}
		if len(p.Sinks) == 0 {
			return d.Errorf(p.At, "pipeline %q has no sinks", p.Name)
		}
		for _, kind := range []struct {
			name string
			refs []Ref
			all  Components
		}{{"source", p.Sources, c.Sources}, {"processor", p.Processors, c.Processors}, {"sink", p.Sinks, c.Sinks}} {
			for _, r := range kind.refs {
				if _, ok := kind.all.Get(r.Name); !ok {
					known := make([]string, len(kind.all))
					for i, k := range kind.all {
						known[i] = k.Name
					}
					return d.Errorf(r.At, "pipeline %q uses unknown %s %q%s", p.Name, kind.name, r.Name, suggest(r.Name, known))
				}
				if comp, _ := kind.all.Get(r.Name); kind.name == "source" && IsMetricsSource(comp.Type) {
					return d.Errorf(r.At, "pipeline %q uses source %q, a metrics source (type %s): it is served on /metrics and takes no part in pipelines; remove it from the pipeline", p.Name, r.Name, comp.Type)
				}
				used[kind.name+"/"+r.Name] = true
			}
		}
	}
	for _, kind := range []struct {
		name string
		all  Components
	}{{"source", c.Sources}, {"processor", c.Processors}, {"sink", c.Sinks}} {
		for _, comp := range kind.all {
			// A Promtail config may list clients and no scrape configs.
			if kind.name == "source" && IsMetricsSource(comp.Type) {
				continue
			}
			if !used[kind.name+"/"+comp.Name] && c.Format == "native" {
				return d.Errorf(comp.NameAt, "%s %q is not used by any pipeline", kind.name, comp.Name)
			}
		}
	}
	return nil
}

// ToDryRun sends every pipeline to one stdout sink instead of its sinks and
// keeps positions read-only, as Promtail's -dry-run does.
func (c *Config) ToDryRun() {
	c.DryRun = true
	at := &yaml.Node{Kind: yaml.ScalarNode, Value: "stdout"}
	c.Sinks = Components{{Name: "dry-run", Type: "stdout", Node: mapNode(), At: at, NameAt: at}}
	for i := range c.Pipelines {
		c.Pipelines[i].Sinks = []Ref{{Name: "dry-run", At: at}}
	}
}

// YAML renders the effective config in the native format, for
// -print-config-stderr and for checking a translated Promtail config.
func (c *Config) YAML() ([]byte, error) {
	root := mapNode()
	for _, part := range []struct {
		key string
		v   any
	}{{"server", c.Server}, {"positions", c.Positions}, {"buffer", c.Buffer}} {
		var n yaml.Node
		if err := n.Encode(part.v); err != nil {
			return nil, err
		}
		addKV(root, part.key, &n)
	}
	for _, kind := range []struct {
		key string
		cs  Components
	}{{"sources", c.Sources}, {"processors", c.Processors}, {"sinks", c.Sinks}} {
		if len(kind.cs) == 0 {
			continue
		}
		m := mapNode()
		for _, comp := range kind.cs {
			body := mapNode()
			addKV(body, "type", scalar(comp.Type))
			if comp.Node != nil {
				body.Content = append(body.Content, resolve(comp.Node).Content...)
			}
			addKV(m, comp.Name, body)
		}
		addKV(root, kind.key, m)
	}
	ps := mapNode()
	for _, p := range c.Pipelines {
		pm := mapNode()
		for _, part := range []struct {
			key  string
			refs []Ref
		}{{"sources", p.Sources}, {"processors", p.Processors}, {"sinks", p.Sinks}} {
			if len(part.refs) == 0 {
				continue
			}
			seq := seqNode()
			for _, r := range part.refs {
				seq.Content = append(seq.Content, scalar(r.Name))
			}
			addKV(pm, part.key, seq)
		}
		addKV(ps, p.Name, pm)
	}
	if len(c.Pipelines) > 0 {
		addKV(root, "pipelines", ps)
	}
	return yaml.Marshal(root)
}

func (b ByteSize) MarshalYAML() (any, error) { return int64(b), nil }
