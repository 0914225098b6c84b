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
// both is an error, as in node_exporter's device-include/-exclude flags.
func newNameFilter(exclude, include string) (*nameFilter, error) {
	if exclude != "" && include != "" {
		return nil, errors.New("device-exclude & device-include are mutually exclusive")
	}
	return newDeviceFilter(exclude, include)
}

// newDeviceFilter is newNameFilter allowing both patterns, for the
// collectors whose flags node_exporter does not make exclusive (hwmon):
// a name is then kept when it matches include and not exclude.
func newDeviceFilter(exclude, include string) (*nameFilter, error) {
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

// optionFilter builds a filter from a collector's exclude and include
// options (short names) as node_exporter does: a deprecated exclude option,
// when set, stands for the exclude one, which must then be at its default;
// an include pattern alone drops the default exclude pattern; setting both
// is an error.
func optionFilter(env *Env, excludeOpt, includeOpt, deprecatedOpt, defaultExclude string) (*nameFilter, error) {
	flag := func(opt string) string { return "--collector." + env.name + "." + opt }
	exclude, include := env.Option(excludeOpt), env.Option(includeOpt)
	if old := env.Option(deprecatedOpt); old != "" {
		if exclude != defaultExclude {
			return nil, fmt.Errorf("%s and %s are mutually exclusive", flag(deprecatedOpt), flag(excludeOpt))
		}
		env.Logger.Warn(flag(deprecatedOpt) + " is DEPRECATED and will be removed in 2.0.0, use " + flag(excludeOpt))
		exclude = old
	}
	if include != "" && exclude == defaultExclude {
		exclude = ""
	}
	if exclude != "" && include != "" {
		return nil, fmt.Errorf("%s and %s are mutually exclusive", flag(excludeOpt), flag(includeOpt))
	}
	return newDeviceFilter(exclude, include)
}
