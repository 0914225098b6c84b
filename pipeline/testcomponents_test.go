package pipeline

import (
	"context"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Test components, registered under names no real component uses. They
// are real implementations of the interfaces, small enough to reason about.

// chanSource emits the batches it is handed on a channel.
type chanSource struct {
	in      chan *Batch
	emitErr chan error
}

func (s *chanSource) Run(ctx context.Context, out Output) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-s.in:
			s.emitErr <- out.Emit(ctx, b)
		}
	}
}

// holdSink keeps every batch it receives until the test settles it.
type holdSink struct {
	mu      sync.Mutex
	got     []*Batch
	lines   []string
	closed  bool
	onClose func()
}

func (s *holdSink) Consume(b *Batch) {
	b.Hold()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, b)
	for _, e := range b.Entries {
		s.lines = append(s.lines, string(e.Line))
	}
}

func (s *holdSink) settleAll() {
	s.mu.Lock()
	got := s.got
	s.got = nil
	s.mu.Unlock()
	for _, b := range got {
		b.Settle()
	}
}

// settleWhere settles the batches held that match.
func (s *holdSink) settleWhere(match func(*Batch) bool) {
	s.mu.Lock()
	var settle, keep []*Batch
	for _, b := range s.got {
		if match(b) {
			settle = append(settle, b)
		} else {
			keep = append(keep, b)
		}
	}
	s.got = keep
	s.mu.Unlock()
	for _, b := range settle {
		b.Settle()
	}
}

func (s *holdSink) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if s.onClose != nil {
		s.onClose()
	}
	return nil
}

func (s *holdSink) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// upperProcessor upper-cases lines in place and drops lines equal to "DROP".
type upperProcessor struct{}

func (upperProcessor) Process(b *Batch) {
	kept := b.Entries[:0]
	for _, e := range b.Entries {
		for i, c := range e.Line {
			if c >= 'a' && c <= 'z' {
				e.Line[i] = c - 32
			}
		}
		if string(e.Line) != "DROP" {
			kept = append(kept, e)
		}
	}
	b.Entries = kept
}

var (
	testMu      sync.Mutex
	testSources = map[string]*chanSource{}
	testSinks   = map[string]*holdSink{}
)

type testCfg struct {
	Option string `yaml:"option"`
}

func init() {
	RegisterSource("test_chan", func(env Env, n *yaml.Node) (Source, error) {
		var c testCfg
		if err := env.Decoder.Decode(n, &c); err != nil {
			return nil, err
		}
		s := &chanSource{in: make(chan *Batch), emitErr: make(chan error, 1)}
		testMu.Lock()
		testSources[env.Name] = s
		testMu.Unlock()
		return s, nil
	})
	RegisterSink("test_hold", func(env Env, n *yaml.Node) (Sink, error) {
		var c testCfg
		if err := env.Decoder.Decode(n, &c); err != nil {
			return nil, err
		}
		s := &holdSink{}
		testMu.Lock()
		testSinks[env.Name] = s
		testMu.Unlock()
		return s, nil
	})
	RegisterProcessor("test_upper", func(env Env, n *yaml.Node) (Processor, error) {
		return upperProcessor{}, nil
	})
}

func batchOf(onSettled func(), lines ...string) *Batch {
	b := NewBatch(len(lines), onSettled)
	for _, l := range lines {
		b.Entries = append(b.Entries, Entry{Line: []byte(l)})
	}
	return b
}

func mustLoad(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Load("test.yaml", []byte(strings.TrimLeft(src, "\n")), LoadOptions{})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return cfg
}
