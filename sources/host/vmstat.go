package host

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	Register(Spec{
		Name:           "vmstat",
		DefaultEnabled: true,
		Options: []Option{
			{Name: "fields", Default: `^(oom_kill|pgpg|pswp|pg.*fault).*`, Help: "Regexp of fields to return for vmstat collector."},
		},
		New: newVmstatCollector,
	})
}

type vmstatCollector struct {
	path   string
	fields *regexp.Regexp

	mu sync.Mutex
	// descs caches, per field name, its descriptor, or nil when the
	// fields regexp rejects it: the regexp runs once per field, not once
	// per scrape.
	descs map[string]*prometheus.Desc
	buf   []byte
}

func newVmstatCollector(env *Env) (Collector, error) {
	re, err := regexp.Compile(env.Option("fields"))
	if err != nil {
		return nil, fmt.Errorf("option vmstat.fields: invalid regular expression: %w", err)
	}
	return &vmstatCollector{path: env.Paths.ProcPath("vmstat"), fields: re, descs: map[string]*prometheus.Desc{}}, nil
}

func (c *vmstatCollector) Update(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	if c.buf, err = readFileInto(c.path, c.buf); err != nil {
		return err
	}
	for rest := c.buf; len(rest) > 0; {
		var line []byte
		line, rest = cutLine(rest)
		sp := bytes.IndexByte(line, ' ')
		if sp <= 0 {
			continue
		}
		desc, ok := c.descs[string(line[:sp])]
		if !ok {
			name := string(line[:sp])
			if c.fields.MatchString(name) {
				desc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "vmstat", name),
					fmt.Sprintf("/proc/vmstat information field %s.", name), nil, nil)
			}
			c.descs[name] = desc
		}
		if desc == nil {
			continue
		}
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(line[sp+1:])), 64)
		if err != nil {
			return fmt.Errorf("%s: invalid line %q: %w", c.path, line, err)
		}
		ch <- newMetric(desc, prometheus.UntypedValue, v)
	}
	return nil
}
