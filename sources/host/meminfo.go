package host

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	Register(Spec{Name: "meminfo", DefaultEnabled: true, New: newMeminfoCollector})
}

// meminfoCollector exposes every field of /proc/meminfo as
// node_memory_<field>[_bytes], the names node_exporter derives: "(" becomes
// "_", ")" is dropped, and fields in kB are converted to bytes and get the
// _bytes suffix. node_exporter 1.9+ keeps a fixed list of fields; deriving
// the names keeps the same names for those and also exposes newer kernel
// fields (Zswap, Zswapped) that dashboard 1860 graphs.
type meminfoCollector struct {
	path string

	mu    sync.Mutex
	descs map[string]meminfoField // by raw field name
	buf   []byte
}

type meminfoField struct {
	desc  typedDesc
	scale float64
}

func newMeminfoCollector(env *Env) (Collector, error) {
	return &meminfoCollector{path: env.Paths.ProcPath("meminfo"), descs: map[string]meminfoField{}}, nil
}

func (c *meminfoCollector) Update(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	if c.buf, err = readFileInto(c.path, c.buf); err != nil {
		return fmt.Errorf("couldn't get meminfo: %w", err)
	}
	for rest := c.buf; len(rest) > 0; {
		var line []byte
		line, rest = cutLine(rest)
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return fmt.Errorf("%s: invalid line %q", c.path, line)
		}
		fields := bytes.Fields(line[colon+1:])
		if len(fields) == 0 || len(fields) > 2 {
			return fmt.Errorf("%s: invalid line %q", c.path, line)
		}
		field, ok := c.descs[string(line[:colon])]
		if !ok {
			field = newMeminfoField(string(line[:colon]), len(fields) == 2 && string(fields[1]) == "kB")
			c.descs[string(line[:colon])] = field
		}
		if len(fields) == 2 && field.scale == 1 {
			return fmt.Errorf("%s: invalid unit in line %q", c.path, line)
		}
		v, err := strconv.ParseFloat(string(fields[0]), 64)
		if err != nil {
			return fmt.Errorf("%s: invalid value in line %q: %w", c.path, line, err)
		}
		ch <- field.desc.mustNewConstMetric(v * field.scale)
	}
	return nil
}

func newMeminfoField(key string, kB bool) meminfoField {
	name := strings.NewReplacer("(", "_", ")", "").Replace(key)
	scale := 1.0
	if kB {
		name += "_bytes"
		scale = 1024
	}
	t := prometheus.GaugeValue
	if strings.HasSuffix(name, "_total") {
		t = prometheus.CounterValue
	}
	return meminfoField{
		desc: typedDesc{prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "memory", name),
			"Memory information field "+name+".", nil, nil), t},
		scale: scale,
	}
}
