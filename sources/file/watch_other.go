//go:build !linux

package file

import "errors"

// dirWatcher is only implemented with inotify; elsewhere discovery polls
// the globs every second.
type dirWatcher struct{}

func newDirWatcher() (*dirWatcher, error) {
	return nil, errors.New("directory watching is only implemented on Linux")
}

func (w *dirWatcher) events() <-chan struct{} { return nil }
func (w *dirWatcher) ok() bool                { return false }
func (w *dirWatcher) add(string) error        { return errors.New("not supported") }
func (w *dirWatcher) remove(string)           {}
func (w *dirWatcher) dirs() []string          { return nil }
func (w *dirWatcher) close()                  {}
