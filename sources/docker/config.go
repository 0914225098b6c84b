// Package docker is vigil's Docker log source: the source type "docker". It
// follows the Engine's event stream, reads every running container's log
// (its json-file log from disk when the Engine is local, else over the
// Engine API), and keeps a nanosecond checkpoint per container in the
// positions file, so restarts of vigil or of a container, and docker stop
// followed by docker start, resume without duplicates or gaps.
package docker

import (
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/engineapi"
	"github.com/vigilhq/vigil/internal/httpclient"
	"github.com/vigilhq/vigil/pipeline"
)

// Defaults.
const (
	DefaultHost            = "unix:///var/run/docker.sock"
	DefaultRefreshInterval = 5 * time.Second
	DefaultMaxLineSize     = 256 << 10
	DefaultBatchLines      = 1024
	DefaultBatchBytes      = 256 << 10
	DefaultBatchWait       = 100 * time.Millisecond
)

// Config is the docker source's native config.
type Config struct {
	Host string `yaml:"host"`
	// RefreshInterval is how often the container list is read again, as a
	// safety net behind the event stream.
	RefreshInterval time.Duration           `yaml:"refresh_interval"`
	Filters         []Filter                `yaml:"filters"`
	RelabelConfigs  pipeline.RelabelConfigs `yaml:"relabel_configs"`
	Labels          map[string]string       `yaml:"labels"`
	// TenantLabel names the container label whose value is the tenant.
	TenantLabel   string `yaml:"tenant_label"`
	DefaultTenant string `yaml:"default_tenant"`
	// DefaultLabels are the labels vigil adds before relabeling: container
	// (the name without its slash) and stream (stdout or stderr). The
	// Promtail translation sets none, as Promtail adds none.
	DefaultLabels *[]string `yaml:"default_labels"`
	// MaxLineSize truncates longer lines (after joining Docker's 16 KiB
	// pieces); the rest of such a line is skipped and counted.
	MaxLineSize pipeline.ByteSize `yaml:"max_line_size"`

	// Port and HostNetworkingHost make __address__ as Prometheus's Docker
	// discovery does, for relabel rules that use it.
	Port               int    `yaml:"port"`
	HostNetworkingHost string `yaml:"host_networking_host"`
	// MatchFirstNetwork is accepted for Promtail configs; vigil always
	// takes a container's first network by name, as Promtail ends up doing.
	MatchFirstNetwork *bool `yaml:"match_first_network"`

	// ReadLogFiles reads the json-file logs of a local Engine's containers
	// from disk (default true), which costs far less than streaming them
	// through the API; the API is used when the file cannot be opened.
	ReadLogFiles *bool `yaml:"read_log_files"`
	// ContainersPath is where the Engine's containers directory
	// (/var/lib/docker/containers) is mounted when vigil sees it at
	// another path, as in a container; it also enables reading log files
	// of an Engine reached over TCP that runs on this machine.
	ContainersPath string `yaml:"containers_path"`

	// HTTP is the client block for tcp://, http:// and https:// hosts:
	// tls_config, basic_auth, authorization, bearer_token(_file),
	// proxy_url. A tcp:// host with a tls_config is spoken to over TLS.
	HTTP httpclient.Config `yaml:",inline"`
}

// Filter is one Engine API container list filter, as in docker_sd_configs.
type Filter struct {
	Name   string   `yaml:"name"`
	Values []string `yaml:"values"`
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

type settings struct {
	host          string
	refresh       time.Duration
	filters       engineapi.Filters
	relabel       pipeline.RelabelConfigs
	labels        map[string]string
	tenantLabel   string
	defaultTenant string
	maxLine       int
	batchLines    int
	batchBytes    int
	batchWait     time.Duration

	containerLabel, streamLabel bool
	port                        int
	hostNetworkingHost          string
	http                        httpclient.Config
	logFiles                    bool
	localEngine                 bool // the host is a unix socket
	containersPath              string
}

func (c *Config) resolve(d pipeline.Decoder, node *yaml.Node) (settings, error) {
	s := settings{
		host:          c.Host,
		refresh:       c.RefreshInterval,
		relabel:       c.RelabelConfigs,
		labels:        c.Labels,
		tenantLabel:   c.TenantLabel,
		defaultTenant: c.DefaultTenant,
		maxLine:       DefaultMaxLineSize,
		batchLines:    DefaultBatchLines,
		batchBytes:    DefaultBatchBytes,
		batchWait:     DefaultBatchWait,

		containerLabel:     true,
		streamLabel:        true,
		port:               80,
		hostNetworkingHost: "localhost",
		http:               c.HTTP,
		logFiles:           c.ReadLogFiles == nil || *c.ReadLogFiles,
		containersPath:     c.ContainersPath,
	}
	if c.DefaultLabels != nil {
		s.containerLabel, s.streamLabel = false, false
		for i, l := range *c.DefaultLabels {
			switch l {
			case "container":
				s.containerLabel = true
			case "stream":
				s.streamLabel = true
			default:
				return s, d.Errorf(pipeline.NodeAt(node, "default_labels").Content[i], "unknown default label %q: the default labels are container and stream", l)
			}
		}
	}
	if c.MaxLineSize != 0 {
		if c.MaxLineSize < 0 || int64(c.MaxLineSize) > 1<<30 {
			return s, d.Errorf(pipeline.NodeAt(node, "max_line_size"), "max_line_size is out of range")
		}
		s.maxLine = int(c.MaxLineSize)
	}
	if c.Port != 0 {
		if c.Port < 0 || c.Port > 65535 {
			return s, d.Errorf(pipeline.NodeAt(node, "port"), "port %d is out of range", c.Port)
		}
		s.port = c.Port
	}
	if c.HostNetworkingHost != "" {
		s.hostNetworkingHost = c.HostNetworkingHost
	}
	if err := c.HTTP.Validate(d, node); err != nil {
		return s, err
	}
	if s.host == "" {
		s.host = DefaultHost
	}
	u, err := engineapi.ParseHost(s.host)
	if err != nil {
		return s, d.Errorf(pipeline.NodeAt(node, "host"), "%v", err)
	}
	s.localEngine = u.Scheme == "unix"
	if s.containersPath != "" && !filepath.IsAbs(s.containersPath) {
		return s, d.Errorf(pipeline.NodeAt(node, "containers_path"), "containers_path %q is not an absolute path", s.containersPath)
	}
	if u.Scheme == "unix" && (c.HTTP != httpclient.Config{}) {
		return s, d.Errorf(pipeline.NodeAt(node, "host"), "TLS, auth and proxy settings apply to tcp://, http:// and https:// hosts, not to a unix socket")
	}
	if s.refresh < 0 {
		return s, d.Errorf(pipeline.NodeAt(node, "refresh_interval"), "refresh_interval must not be negative")
	}
	if s.refresh == 0 {
		s.refresh = DefaultRefreshInterval
	}
	for name := range s.labels {
		if !labelNameRE.MatchString(name) || strings.HasPrefix(name, "__") {
			return s, d.Errorf(pipeline.NodeAt(node, "labels"), "invalid label name %q", name)
		}
	}
	if len(c.Filters) > 0 {
		s.filters = engineapi.Filters{}
		fn := pipeline.NodeAt(node, "filters")
		for i, f := range c.Filters {
			at := fn
			if fn != nil && fn.Kind == yaml.SequenceNode && i < len(fn.Content) {
				at = fn.Content[i]
			}
			if f.Name == "" || len(f.Values) == 0 {
				return s, d.Errorf(at, "a filter needs a name and at least one value")
			}
			s.filters.Add(f.Name, f.Values...)
		}
	}
	return s, nil
}
