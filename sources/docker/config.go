// Package docker is vigil's Docker log source: the source type "docker". It
// follows the Engine's event stream, streams every running container's log
// over the Engine API, and keeps a nanosecond checkpoint per container in
// the positions file, so restarts of vigil or of a container, and docker
// stop followed by docker start, resume without duplicates or gaps.
package docker

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/moby/moby/client"
	"go.yaml.in/yaml/v3"

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
	filters       client.Filters
	relabel       pipeline.RelabelConfigs
	labels        map[string]string
	tenantLabel   string
	defaultTenant string
	maxLine       int
	batchLines    int
	batchBytes    int
	batchWait     time.Duration
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
	}
	if s.host == "" {
		s.host = DefaultHost
	}
	u, err := client.ParseHostURL(s.host)
	if err == nil && u.Scheme != "unix" && u.Scheme != "tcp" && u.Scheme != "http" && u.Scheme != "https" {
		err = fmt.Errorf("scheme %q is not one of unix, tcp, http, https", u.Scheme)
	}
	if err != nil {
		return s, d.Errorf(pipeline.NodeAt(node, "host"), "invalid docker host %q: %v", s.host, err)
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
		s.filters = client.Filters{}
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
