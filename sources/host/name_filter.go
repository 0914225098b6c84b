package host

import (
	"errors"
	"fmt"
	"regexp"
)

// nameFilter is node_exporter's device filter: a name is ignored when it
// matches the exclude pattern or, with an include pattern, does not match
// it. Results are memoised per name because device names are few and stable
// while scrapes are many; the memo is dropped when it grows past
// nameFilterMemoMax so that churning names (veth pairs of short-lived
// containers) cannot grow it without bound. A nameFilter belongs to one
// collector, whose Update is never concurrent with itself, so it needs no lock.
type nameFilter struct {
	exclude *regexp.Regexp
	include *regexp.Regexp
	memo    map[string]bool
}

const nameFilterMemoMax = 4096

// newNameFilter compiles the patterns; an empty pattern is unset. Setting
// both is an error, as in node_exporter.
func newNameFilter(exclude, include string) (*nameFilter, error) {
	if exclude != "" && include != "" {
		return nil, errors.New("device-exclude & device-include are mutually exclusive")
	}
	f := &nameFilter{memo: map[string]bool{}}
	var err error
	if exclude != "" {
		if f.exclude, err = regexp.Compile(exclude); err != nil {
			return nil, fmt.Errorf("bad exclude pattern %q: %w", exclude, err)
		}
	}
	if include != "" {
		if f.include, err = regexp.Compile(include); err != nil {
			return nil, fmt.Errorf("bad include pattern %q: %w", include, err)
		}
	}
	return f, nil
}

// ignored reports whether name is filtered out.
func (f *nameFilter) ignored(name string) bool {
	if f.exclude == nil && f.include == nil {
		return false
	}
	if v, ok := f.memo[name]; ok {
		return v
	}
	v := (f.exclude != nil && f.exclude.MatchString(name)) ||
		(f.include != nil && !f.include.MatchString(name))
	if len(f.memo) >= nameFilterMemoMax {
		clear(f.memo)
	}
	f.memo[name] = v
	return v
}
