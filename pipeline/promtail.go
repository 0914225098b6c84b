package pipeline

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Promtail's config format, translated into the native graph:
//
//   - each scrape_config becomes a file source named after its job, with one
//     target per static_config. relabel_configs run once per static_config
//     on its labels (with __path__, __path_exclude__ and __address__), as
//     Promtail runs them on discovered targets; labels starting with __ are
//     then removed and every entry gets filename=<path>.
//   - each docker_sd_config becomes a docker source, taking the block
//     unchanged plus the job's relabel_configs, with no default labels:
//     Promtail adds none, and its relabel rules see the same __meta_docker_*
//     labels, including __meta_docker_container_log_stream.
//   - each client becomes a loki sink, taking the client block unchanged.
//   - a host source and a containers source serve node_exporter's and
//     cAdvisor's metrics, as the embedded default config does.
//   - one pipeline sends every source to every sink, as Promtail sends
//     every entry to every client.
//
// Keys Promtail has and vigil does not support yet are errors that name the
// key and its position, never silently ignored.

type promtailConfig struct {
	Server        ServerConfig     `yaml:"server"`
	Client        *yaml.Node       `yaml:"client"`
	Clients       []yaml.Node      `yaml:"clients"`
	Positions     PositionsConfig  `yaml:"positions"`
	ScrapeConfigs []promtailScrape `yaml:"scrape_configs"`
	TargetConfig  struct {
		SyncPeriod time.Duration `yaml:"sync_period"`
		Stdin      bool          `yaml:"stdin"`
	} `yaml:"target_config"`
	LimitsConfig promtailLimits `yaml:"limits_config"`
}

type promtailScrape struct {
	JobName        string           `yaml:"job_name"`
	StaticConfigs  []promtailStatic `yaml:"static_configs"`
	DockerSD       []yaml.Node      `yaml:"docker_sd_configs"`
	RelabelConfigs RelabelConfigs   `yaml:"relabel_configs"`
	PipelineStages yaml.Node        `yaml:"pipeline_stages"`
}

type promtailStatic struct {
	Targets []string             `yaml:"targets"`
	Labels  map[string]yaml.Node `yaml:"labels"`
}

type promtailLimits struct {
	ReadlineRate        float64  `yaml:"readline_rate"`
	ReadlineBurst       int      `yaml:"readline_burst"`
	ReadlineRateEnabled bool     `yaml:"readline_rate_enabled"`
	ReadlineRateDrop    *bool    `yaml:"readline_rate_drop"`
	MaxStreams          int      `yaml:"max_streams"`
	MaxLineSize         ByteSize `yaml:"max_line_size"`
	MaxLineSizeTruncate bool     `yaml:"max_line_size_truncate"`
}

// Keys of Promtail's format that vigil knows but does not support yet.
var promtailUnsupported = map[string][]string{
	"": {"options", "tracing", "global", "wal"},
	"scrape_configs": {"journal", "syslog", "gcplog", "gelf", "windows_events", "kafka", "azure_event_hubs",
		"loki_push_api", "heroku_drain", "cloudflare", "kubernetes_sd_configs",
		"consul_sd_configs", "consulagent_sd_configs", "file_sd_configs", "dns_sd_configs", "ec2_sd_configs",
		"decompression", "encoding", "push"},
	"server": {"http_path_prefix", "http_tls_config", "grpc_tls_config", "health_check_target", "profiling_enabled"},
}

func checkUnsupported(d Decoder, n *yaml.Node, section string) error {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i < len(n.Content); i += 2 {
		k := n.Content[i]
		if contains(promtailUnsupported[section], k.Value) {
			where := ""
			if section != "" {
				where = " in " + section
			}
			return d.Errorf(k, "Promtail key %q%s is not supported by vigil yet", k.Value, where)
		}
	}
	return nil
}

func translatePromtail(d Decoder, root *yaml.Node) (*Config, error) {
	if err := checkUnsupported(d, root, ""); err != nil {
		return nil, err
	}
	if err := checkUnsupported(d, KeyNode(root, "server"), "server"); err != nil {
		return nil, err
	}
	if sc := resolve(KeyNode(root, "scrape_configs")); sc != nil && sc.Kind == yaml.SequenceNode {
		for _, s := range sc.Content {
			if err := checkUnsupported(d, s, "scrape_configs"); err != nil {
				return nil, err
			}
		}
	}
	var pc promtailConfig
	if root != nil {
		if err := d.Decode(root, &pc); err != nil {
			return nil, err
		}
	}
	cfg := &Config{Server: pc.Server, Positions: pc.Positions}
	if cfg.Positions.Filename == "" {
		cfg.Positions.Filename = DefaultPositionsPromtail
	}
	if pc.Server.GRPCListenPort != nil || pc.Server.GRPCListenAddress != "" {
		cfg.Notes = append(cfg.Notes, "server.grpc_listen_port/grpc_listen_address: vigil serves no gRPC; the keys are accepted and have no effect")
	}
	if pc.TargetConfig.Stdin {
		return nil, d.Errorf(KeyNode(KeyNode(root, "target_config"), "stdin"), "target_config.stdin is not supported by vigil yet")
	}
	if err := pc.LimitsConfig.check(d, KeyNode(root, "limits_config")); err != nil {
		return nil, err
	}

	// Clients become loki sinks.
	clients := pc.Clients
	if pc.Client != nil {
		clients = append([]yaml.Node{*pc.Client}, clients...)
	}
	var sinks []Ref
	for i := range clients {
		n := &clients[i]
		name := fmt.Sprintf("client%d", i)
		if len(clients) == 1 {
			name = "loki"
		}
		cfg.Sinks = append(cfg.Sinks, Component{Name: name, Type: "loki", Node: n, At: n, NameAt: n})
		sinks = append(sinks, Ref{Name: name, At: n})
	}

	// Scrape configs become file sources.
	var sources []Ref
	var staged Pipelines
	scrapeNodes := resolve(KeyNode(root, "scrape_configs"))
	for i, sc := range pc.ScrapeConfigs {
		at := scrapeNodes.Content[i]
		if sc.JobName == "" {
			return nil, d.Errorf(at, "scrape_configs[%d] has no job_name", i)
		}
		name := sc.JobName
		if _, dup := Components(cfg.Sources).Get(name); dup {
			return nil, d.Errorf(KeyNode(at, "job_name"), "duplicate job_name %q", name)
		}
		jobSources, err := scrapeSources(d, sc, at, pc)
		if err != nil {
			return nil, err
		}
		var refs []Ref
		for _, c := range jobSources {
			if _, dup := Components(cfg.Sources).Get(c.Name); dup {
				return nil, d.Errorf(KeyNode(at, "job_name"), "job_name %q collides with the source %q of another job", name, c.Name)
			}
			cfg.Sources = append(cfg.Sources, c)
			refs = append(refs, Ref{Name: c.Name, At: at})
		}
		sources = append(sources, refs...)
		// A scrape config's pipeline_stages become its own pipeline's
		// processors, under the same names and keys.
		stages, err := StageList(d, &sc.PipelineStages)
		if err != nil {
			return nil, err
		}
		var procs []Ref
		for j, st := range stages {
			pname := fmt.Sprintf("%s/%d/%s", name, j, st.Type)
			cfg.Processors = append(cfg.Processors, Component{Name: pname, Type: st.Type, Node: st.Node, At: st.At, NameAt: st.At})
			procs = append(procs, Ref{Name: pname, At: st.At})
		}
		if len(procs) > 0 {
			staged = append(staged, PipelineConfig{Name: name, Sources: refs, Processors: procs, At: at})
			sources = sources[:len(sources)-len(refs)]
		}
	}
	if (len(sources) > 0 || len(staged) > 0) && len(sinks) == 0 {
		return nil, d.Errorf(root, "no clients: add a clients block with the Loki push URL")
	}
	if len(pc.ScrapeConfigs) == 0 {
		cfg.Notes = append(cfg.Notes, "no scrape_configs: there is nothing to read")
	}
	// vigil replaces node_exporter and cAdvisor too: a Promtail config
	// gets the host and container metrics on its HTTP port, with their
	// defaults (and flags), as the embedded default config does.
	for _, typ := range []string{"host", "containers"} {
		if !IsMetricsSource(typ) {
			continue
		}
		name := typ
		for i := 0; ; i++ {
			if _, taken := Components(cfg.Sources).Get(name); !taken {
				break
			}
			name = fmt.Sprintf("%s_metrics%d", typ, i)
		}
		cfg.Sources = append(cfg.Sources, Component{Name: name, Type: typ, Node: mapNode(), At: root, NameAt: root})
	}
	if len(sources) > 0 {
		cfg.Pipelines = Pipelines{{Name: "promtail", Sources: sources, Sinks: sinks, At: root}}
	}
	for _, p := range staged {
		p.Sinks = sinks
		cfg.Pipelines = append(cfg.Pipelines, p)
	}
	return cfg, nil
}

func (l promtailLimits) check(d Decoder, n *yaml.Node) error {
	if l.ReadlineRateEnabled {
		return d.Errorf(KeyNode(n, "readline_rate_enabled"), "limits_config.readline_rate_enabled is not supported by vigil yet; vigil applies backpressure instead of a read rate limit")
	}
	if l.MaxStreams > 0 {
		return d.Errorf(KeyNode(n, "max_streams"), "limits_config.max_streams is not supported by vigil yet")
	}
	if l.MaxLineSize > 0 && !l.MaxLineSizeTruncate {
		return d.Errorf(KeyNode(n, "max_line_size"), "limits_config.max_line_size without max_line_size_truncate (dropping long lines) is not supported by vigil yet; set max_line_size_truncate: true")
	}
	return nil
}

// scrapeSources builds the sources of one scrape config: a file source
// for its static_configs, or a docker source per docker_sd_config.
func scrapeSources(d Decoder, sc promtailScrape, at *yaml.Node, pc promtailConfig) ([]Component, error) {
	if len(sc.DockerSD) == 0 {
		src, err := fileSourceNode(d, sc, at, pc)
		if err != nil {
			return nil, err
		}
		return []Component{{Name: sc.JobName, Type: "file", Node: src, At: at, NameAt: at}}, nil
	}
	if len(sc.StaticConfigs) > 0 {
		return nil, d.Errorf(KeyNode(at, "static_configs"), "job %q has both static_configs and docker_sd_configs: split it into two jobs", sc.JobName)
	}
	var out []Component
	for i := range sc.DockerSD {
		n := resolve(&sc.DockerSD[i])
		if n.Kind != yaml.MappingNode {
			return nil, d.Errorf(n, "expected a docker_sd_config mapping")
		}
		if isNull(KeyNode(n, "host")) {
			return nil, d.Errorf(n, "docker_sd_configs[%d] of job %q has no host", i, sc.JobName)
		}
		src := mapNode()
		src.Line, src.Column = n.Line, n.Column
		src.Content = append(src.Content, n.Content...)
		addKV(src, "default_labels", seqNode())
		if rc := KeyNode(at, "relabel_configs"); rc != nil {
			addKV(src, "relabel_configs", rc)
		}
		if pc.LimitsConfig.MaxLineSize > 0 {
			addKV(src, "max_line_size", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(int64(pc.LimitsConfig.MaxLineSize), 10)})
		}
		name := sc.JobName
		if len(sc.DockerSD) > 1 {
			name = fmt.Sprintf("%s/%d", sc.JobName, i)
		}
		out = append(out, Component{Name: name, Type: "docker", Node: src, At: n, NameAt: at})
	}
	return out, nil
}

// fileSourceNode builds the file source config for one scrape config.
func fileSourceNode(d Decoder, sc promtailScrape, at *yaml.Node, pc promtailConfig) (*yaml.Node, error) {
	var targets []*yaml.Node
	seen := map[string]bool{}
	scNodes := resolve(KeyNode(at, "static_configs"))
	for i, st := range sc.StaticConfigs {
		stAt := scNodes.Content[i]
		addrs := st.Targets
		if len(addrs) == 0 {
			addrs = []string{"localhost"}
		}
		for _, addr := range addrs {
			ls := Labels{{"__address__", addr}}
			for k, v := range st.Labels {
				ls = append(ls, Label{k, v.Value})
			}
			sort.Slice(ls, func(a, b int) bool { return ls[a].Name < ls[b].Name })
			out, keep := sc.RelabelConfigs.Apply(ls)
			if !keep {
				continue
			}
			path := out.Get("__path__")
			if path == "" {
				return nil, d.Errorf(stAt, "static_configs[%d] of job %q has no __path__ label", i, sc.JobName)
			}
			// Point errors about the glob at the __path__ the user wrote,
			// when relabeling left it as written.
			pathAt := stAt
			if v, ok := st.Labels["__path__"]; ok && v.Value == path {
				pathAt = &v
			}
			t := mapNode()
			addKV(t, "include", seqNode(scalarAt(path, pathAt)))
			if ex := out.Get("__path_exclude__"); ex != "" {
				exAt := stAt
				if v, ok := st.Labels["__path_exclude__"]; ok && v.Value == ex {
					exAt = &v
				}
				addKV(t, "exclude", seqNode(scalarAt(ex, exAt)))
			}
			lm := mapNode()
			var key strings.Builder
			key.WriteString(path + "\x00" + out.Get("__path_exclude__"))
			for _, l := range out {
				if strings.HasPrefix(l.Name, "__") {
					continue
				}
				lAt := stAt
				if v, ok := st.Labels[l.Name]; ok {
					lAt = &v
				}
				addKV(lm, l.Name, scalarAt(l.Value, lAt))
				key.WriteString("\x00" + l.Name + "=" + l.Value)
			}
			if seen[key.String()] {
				continue
			}
			seen[key.String()] = true
			addKV(t, "labels", lm)
			targets = append(targets, t)
		}
	}
	src := mapNode()
	src.Line, src.Column = at.Line, at.Column
	addKV(src, "targets", seqNode(targets...))
	if pc.TargetConfig.SyncPeriod > 0 {
		addKV(src, "sync_period", scalar(pc.TargetConfig.SyncPeriod.String()))
	}
	if pc.LimitsConfig.MaxLineSize > 0 {
		addKV(src, "max_line_size", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(int64(pc.LimitsConfig.MaxLineSize), 10)})
	}
	return src, nil
}

func mapNode() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

func seqNode(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: items}
}

func scalar(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}

func scalarAt(v string, at *yaml.Node) *yaml.Node {
	n := scalar(v)
	if at != nil {
		n.Line, n.Column = at.Line, at.Column
	}
	return n
}

func addKV(m *yaml.Node, k string, v *yaml.Node) {
	m.Content = append(m.Content, scalarAt(k, v), v)
}

// Stage is one entry of a Promtail-style stage list: `- json: {...}`.
type Stage struct {
	Type string
	At   *yaml.Node // the stage's name, for errors
	Node *yaml.Node // its settings, an empty mapping when none were given
}

// StageList reads a Promtail-style list of stages, as pipeline_stages and
// the match stage's stages are written.
func StageList(d Decoder, n *yaml.Node) ([]Stage, error) {
	n = resolve(n)
	if isNull(n) || (n.Kind == 0) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, d.Errorf(n, "expected a list of stages")
	}
	var out []Stage
	for _, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.MappingNode || len(item.Content) != 2 {
			return nil, d.Errorf(item, "each stage is a mapping with one key, the stage's name, such as `- json: {expressions: {...}}`")
		}
		body := resolve(item.Content[1])
		if isNull(body) {
			body = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: item.Content[0].Line, Column: item.Content[0].Column}
		}
		out = append(out, Stage{Type: item.Content[0].Value, At: item.Content[0], Node: body})
	}
	return out, nil
}
