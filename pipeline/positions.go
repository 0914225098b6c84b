package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Positions is the checkpoint store, kept in Promtail's positions.yaml
// format so an existing Promtail positions file is picked up as it is:
//
//	positions:
//	  /var/log/syslog: "1234"
//	  cursor-<container id>: "<docker timestamp>"
//
// Files are keyed by path with a byte offset; other sources use prefixed
// keys. Sources only Put a value once the entries before it are settled.
type Positions struct {
	file     string
	readOnly bool

	mu    sync.Mutex
	m     map[string]string
	dirty bool
}

type positionsFile struct {
	Positions map[string]string `yaml:"positions"`
}

// OpenPositions loads file if it exists. An unreadable or corrupt file is an
// error unless ignoreInvalid is set, in which case it starts empty (as
// Promtail's ignore_invalid_yaml does). An empty file name keeps positions
// in memory only.
func OpenPositions(file string, ignoreInvalid bool) (*Positions, error) {
	p := &Positions{file: file, m: map[string]string{}}
	if file == "" {
		return p, nil
	}
	buf, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading positions file: %w", err)
	}
	var pf positionsFile
	if err := yaml.Unmarshal(buf, &pf); err != nil {
		if ignoreInvalid {
			return p, nil
		}
		return nil, fmt.Errorf("invalid positions file %s (set positions.ignore_invalid_yaml to start afresh): %w", file, err)
	}
	if pf.Positions != nil {
		p.m = pf.Positions
	}
	return p, nil
}

// Reload re-reads the file, dropping what is in memory. A graph calls it as
// it starts, so after a config reload it sees what the old graph saved.
func (p *Positions) Reload(ignoreInvalid bool) error {
	fresh, err := OpenPositions(p.file, ignoreInvalid)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.m, p.dirty = fresh.m, false
	p.mu.Unlock()
	return nil
}

// SetReadOnly makes Save a no-op, for dry runs: positions are read, used and
// advanced in memory, never written.
func (p *Positions) SetReadOnly() { p.readOnly = true }

// File is the path positions are saved to.
func (p *Positions) File() string { return p.file }

// Get returns the stored value for key.
func (p *Positions) Get(key string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[key]
	return v, ok
}

// GetOffset returns a file's saved byte offset.
func (p *Positions) GetOffset(path string) (int64, bool) {
	v, ok := p.Get(path)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// Put stores value for key.
func (p *Positions) Put(key, value string) {
	p.mu.Lock()
	if p.m[key] != value {
		p.m[key] = value
		p.dirty = true
	}
	p.mu.Unlock()
}

// PutOffset stores a file's byte offset.
func (p *Positions) PutOffset(path string, offset int64) {
	p.Put(path, strconv.FormatInt(offset, 10))
}

// Remove forgets key.
func (p *Positions) Remove(key string) {
	p.mu.Lock()
	if _, ok := p.m[key]; ok {
		delete(p.m, key)
		p.dirty = true
	}
	p.mu.Unlock()
}

// Keys lists the stored keys, sorted.
func (p *Positions) Keys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := make([]string, 0, len(p.m))
	for k := range p.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Save writes the positions atomically: a temporary file in the same
// directory, fsynced, renamed over the old one, then the directory fsynced.
// A crash leaves either the old file or the new one, never a torn one.
func (p *Positions) Save() error {
	if p.file == "" || p.readOnly {
		return nil
	}
	p.mu.Lock()
	if !p.dirty {
		p.mu.Unlock()
		return nil
	}
	snapshot := make(map[string]string, len(p.m))
	for k, v := range p.m {
		snapshot[k] = v
	}
	p.dirty = false
	p.mu.Unlock()

	buf, err := yaml.Marshal(positionsFile{Positions: snapshot})
	if err == nil {
		err = writeFileAtomic(p.file, buf)
	}
	if err != nil {
		p.mu.Lock()
		p.dirty = true
		p.mu.Unlock()
		return fmt.Errorf("saving positions: %w", err)
	}
	return nil
}

// Run saves the positions every period until ctx ends, then once more.
func (p *Positions) Run(ctx context.Context, period time.Duration, onError func(error)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.Save(); err != nil && onError != nil {
				onError(err)
			}
		}
	}
}

func writeFileAtomic(name string, data []byte) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
