// Package stdout is the `stdout` sink: it prints entries the way
// Promtail's -dry-run does, or as JSON lines, for debugging a pipeline.
package stdout

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

func init() {
	pipeline.RegisterSink("stdout", func(env pipeline.Env, cfg *yaml.Node) (pipeline.Sink, error) {
		return New(env, cfg, os.Stdout)
	})
}

// Config is the sink's config.
type Config struct {
	// Format is "text" (default), Promtail's dry-run layout
	// `<time>\t<labels>\t<line>`, or "json", one object per line with
	// ts, labels, line, tenant (and metadata when present).
	Format Format `yaml:"format"`
}

// Format is the output layout.
type Format string

// DecodeNode implements pipeline.NodeDecoder so that a bad value is
// reported at its position.
func (f *Format) DecodeNode(d pipeline.Decoder, n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || (n.Value != "text" && n.Value != "json") {
		return d.Errorf(n, "format must be text or json, got %q", n.Value)
	}
	*f = Format(n.Value)
	return nil
}

// promtailTime is the timestamp layout of Promtail's dry-run output.
const promtailTime = "2006-01-02T15:04:05.999999999-0700"

// tenantLabel is how Promtail carried a tenant, and how its dry-run
// showed one: as a label.
const tenantLabel = "__tenant_id__"

// Sink writes entries to a writer.
type Sink struct {
	json    bool
	loc     *time.Location
	metrics *pipeline.Metrics
	name    string
	errs    *pipeline.RateLimitedLogger

	mu  sync.Mutex // one batch's lines stay together
	dst io.Writer
	w   *bufio.Writer
	buf []byte
}

// New builds the sink writing to w (os.Stdout when registered).
func New(env pipeline.Env, node *yaml.Node, w io.Writer) (*Sink, error) {
	cfg := Config{Format: "text"}
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	logger := env.Logger
	if logger == nil {
		logger = slog.Default()
	}
	metrics := env.Metrics
	if metrics == nil {
		metrics = pipeline.NewTestMetrics()
	}
	return &Sink{
		json:    cfg.Format == "json",
		loc:     time.Local,
		metrics: metrics,
		name:    env.Name,
		errs:    pipeline.NewRateLimitedLogger(logger.With("sink", env.Name), 10*time.Second),
		dst:     w,
		w:       bufio.NewWriterSize(w, 64<<10),
	}, nil
}

// Consume writes the batch and flushes it before returning, so there is
// nothing left to hold: the runner's settlement of b is the ack.
func (s *Sink) Consume(b *pipeline.Batch) {
	if len(b.Entries) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range b.Entries {
		e := &b.Entries[i]
		if s.json {
			s.buf = s.appendJSON(s.buf[:0], e)
		} else {
			s.buf = s.appendText(s.buf[:0], e)
		}
		_, _ = s.w.Write(s.buf) // a bufio.Writer keeps its first error; Flush reports it
	}
	if err := s.w.Flush(); err != nil {
		// The writer is gone (a closed pipe); the entries are dropped, and
		// a fresh buffer lets a later batch try again.
		s.metrics.Dropped.WithLabelValues(s.name, "write_error").Add(float64(len(b.Entries)))
		s.errs.Warn("write", "cannot write entries", "error", err, "entries", len(b.Entries))
		s.w.Reset(s.dst)
	}
}

// Close flushes; Consume already did.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Flush()
}

func (s *Sink) appendText(b []byte, e *pipeline.Entry) []byte {
	b = time.Unix(0, e.Time).In(s.loc).AppendFormat(b, promtailTime)
	b = append(b, '\t', '{')
	first := true
	label := func(name, value string) {
		if !first {
			b = append(b, ", "...)
		}
		first = false
		b = append(b, name...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, value)
	}
	tenantDone := e.Tenant == ""
	for _, l := range e.Labels {
		if !tenantDone && l.Name > tenantLabel {
			label(tenantLabel, e.Tenant)
			tenantDone = true
		}
		label(l.Name, l.Value)
	}
	if !tenantDone {
		label(tenantLabel, e.Tenant)
	}
	b = append(b, '}', '\t')
	b = append(b, e.Line...)
	return append(b, '\n')
}

func (s *Sink) appendJSON(b []byte, e *pipeline.Entry) []byte {
	b = append(b, `{"ts":"`...)
	b = time.Unix(0, e.Time).In(s.loc).AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","labels":`...)
	b = appendJSONLabels(b, e.Labels)
	b = append(b, `,"line":`...)
	b = appendJSONString(b, unsafe.String(unsafe.SliceData(e.Line), len(e.Line)))
	b = append(b, `,"tenant":`...)
	b = appendJSONString(b, e.Tenant)
	if len(e.Metadata) > 0 {
		b = append(b, `,"metadata":`...)
		b = appendJSONLabels(b, e.Metadata)
	}
	return append(b, '}', '\n')
}

func appendJSONLabels(b []byte, ls pipeline.Labels) []byte {
	b = append(b, '{')
	for i, l := range ls {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, l.Name)
		b = append(b, ':')
		b = appendJSONString(b, l.Value)
	}
	return append(b, '}')
}

const hex = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does, invalid UTF-8 becoming
// U+FFFD, without an allocation per line.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 break JavaScript parsers; encoding/json escapes them.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
