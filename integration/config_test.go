package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// cfgOpts renders a native config with one file source, one loki sink and
// one pipeline: the shape most tests need.
type cfgOpts struct {
	Positions       string
	SyncPeriod      string // positions.sync_period; default 1s
	BufferBytes     string // buffer.max_bytes; default vigil's
	ShutdownTimeout string // server.graceful_shutdown_timeout; default vigil's
	Include         []string
	Labels          map[string]string
	SourceExtra     []string // more keys of the source, one "key: value" each
	URL             string
	BatchWait       string // default 100ms
	SinkExtra       []string
}

func (o cfgOpts) render() string {
	var b strings.Builder
	if o.ShutdownTimeout != "" {
		fmt.Fprintf(&b, "server:\n  graceful_shutdown_timeout: %s\n", o.ShutdownTimeout)
	}
	sync := o.SyncPeriod
	if sync == "" {
		sync = "1s"
	}
	fmt.Fprintf(&b, "positions:\n  filename: %s\n  sync_period: %s\n", yq(o.Positions), sync)
	if o.BufferBytes != "" {
		fmt.Fprintf(&b, "buffer:\n  max_bytes: %s\n", o.BufferBytes)
	}
	b.WriteString("sources:\n  logs:\n    type: file\n    include:\n")
	for _, p := range o.Include {
		fmt.Fprintf(&b, "      - %s\n", yq(p))
	}
	if len(o.Labels) > 0 {
		b.WriteString("    labels:\n")
		for _, k := range sortedKeys(o.Labels) {
			fmt.Fprintf(&b, "      %s: %s\n", k, yq(o.Labels[k]))
		}
	}
	for _, l := range o.SourceExtra {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	bw := o.BatchWait
	if bw == "" {
		bw = "100ms"
	}
	fmt.Fprintf(&b, "sinks:\n  loki:\n    type: loki\n    url: %s\n    batchwait: %s\n", yq(o.URL), bw)
	for _, l := range o.SinkExtra {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	b.WriteString("pipelines:\n  main:\n    sources: [logs]\n    sinks: [loki]\n")
	return b.String()
}

// write renders the config into dir/vigil.yaml and returns its path.
func (o cfgOpts) write(t *testing.T, dir string) string {
	t.Helper()
	return writeFile(t, dir, "vigil.yaml", o.render())
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// appendLines appends each line plus a newline to path, creating it.
func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// numbered returns n unique lines: prefix-000000 ... plus a little text so
// lines have a realistic length.
func numbered(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%06d level=info msg=\"request served\" status=200 bytes=%d", prefix, from+i, (from+i)*7%5000)
	}
	return out
}

// logDir makes a directory for log files and returns it with its *.log glob.
func logDir(t *testing.T) (dir, glob string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, "*.log")
}
