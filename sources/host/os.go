package host

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	Register(Spec{Name: "os", DefaultEnabled: true, New: newOSCollector})
}

// osCollector reports os-release from the root filesystem (the host's
// when rootfs is the host mounted in a container). The file is parsed again
// only when its modification time changes.
type osCollector struct {
	files                     []string
	info, version, supportEnd *prometheus.Desc

	mu      sync.Mutex
	file    string
	mtime   time.Time
	release map[string]string
	ver     float64
	end     time.Time
}

func newOSCollector(env *Env) (Collector, error) {
	return &osCollector{
		// node_exporter joins the paths by concatenation; RootPath cleans.
		files: []string{env.Paths.RootPath("etc", "os-release"), env.Paths.RootPath("usr", "lib", "os-release")},
		info: prometheus.NewDesc(prometheus.BuildFQName(namespace, "os", "info"),
			"A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
			[]string{"build_id", "id", "id_like", "image_id", "image_version", "name", "pretty_name", "variant", "variant_id", "version", "version_codename", "version_id"}, nil),
		version: prometheus.NewDesc(prometheus.BuildFQName(namespace, "os", "version"),
			"Metric containing the major.minor part of the OS version.",
			[]string{"id", "id_like", "name"}, nil),
		supportEnd: prometheus.NewDesc(prometheus.BuildFQName(namespace, "os", "support_end_timestamp_seconds"),
			"Metric containing the end-of-life date timestamp of the OS.", nil, nil),
	}, nil
}

func (c *osCollector) Update(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	found := false
	for _, f := range c.files {
		err := c.load(f)
		if err == nil {
			found = true
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if !found {
		return ErrNoData
	}
	r := c.release
	ch <- newMetric(c.info, prometheus.GaugeValue, 1,
		r["BUILD_ID"], r["ID"], r["ID_LIKE"], r["IMAGE_ID"], r["IMAGE_VERSION"], r["NAME"], r["PRETTY_NAME"],
		r["VARIANT"], r["VARIANT_ID"], r["VERSION"], r["VERSION_CODENAME"], r["VERSION_ID"])
	if c.ver > 0 {
		ch <- newMetric(c.version, prometheus.GaugeValue, c.ver, r["ID"], r["ID_LIKE"], r["NAME"])
	}
	if r["SUPPORT_END"] != "" {
		ch <- newMetric(c.supportEnd, prometheus.GaugeValue, float64(c.end.Unix()))
	}
	return nil
}

func (c *osCollector) load(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if path == c.file && fi.ModTime().Equal(c.mtime) {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	r, err := parseOSRelease(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var end time.Time
	if s := r["SUPPORT_END"]; s != "" {
		if end, err = time.Parse(time.DateOnly, s); err != nil {
			return fmt.Errorf("%s: SUPPORT_END: %w", path, err)
		}
	}
	c.file, c.mtime, c.release, c.ver, c.end = path, fi.ModTime(), r, majorMinor(r["VERSION_ID"]), end
	return nil
}

// majorMinor is the leading number of a version ("20.04" of "20.04.2"),
// or 0.
func majorMinor(v string) float64 {
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0
	}
	if i < len(v) && v[i] == '.' {
		i++
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(v[:i], "."), 64)
	if err != nil {
		return 0
	}
	return f
}

// parseOSRelease reads os-release(5): shell-style KEY=value lines, values
// optionally quoted, # comments.
func parseOSRelease(b []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("line %d: expected KEY=value", n)
		}
		v, err := unquoteShell(val)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out[strings.TrimSpace(key)] = v
	}
	return out, sc.Err()
}

func unquoteShell(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	switch q := s[0]; q {
	case '\'':
		end := strings.IndexByte(s[1:], '\'')
		if end < 0 {
			return "", fmt.Errorf("unterminated quote")
		}
		return s[1 : 1+end], nil
	case '"':
		var sb strings.Builder
		for i := 1; i < len(s); i++ {
			switch ch := s[i]; ch {
			case '\\':
				if i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
					sb.WriteByte(s[i])
				} else {
					sb.WriteByte(ch)
				}
			case '"':
				return sb.String(), nil
			default:
				sb.WriteByte(ch)
			}
		}
		return "", fmt.Errorf("unterminated quote")
	}
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s), nil
}
