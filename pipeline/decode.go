package pipeline

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// ConfigError is a configuration problem at a position in a file.
type ConfigError struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *ConfigError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Decoder decodes YAML nodes into Go values strictly: unknown keys,
// duplicate keys and values of the wrong type are errors that carry the
// file, line and column. Struct fields are named by their yaml tags;
// ",inline" flattens an embedded struct.
type Decoder struct {
	File string
}

// Errorf builds a ConfigError at node n.
func (d Decoder) Errorf(n *yaml.Node, format string, args ...any) error {
	e := &ConfigError{File: d.File, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

// NodeDecoder is implemented by config types that decode themselves and
// want positions in their errors.
type NodeDecoder interface {
	DecodeNode(d Decoder, n *yaml.Node) error
}

var (
	durationType    = reflect.TypeOf(time.Duration(0))
	modelDurType    = reflect.TypeOf(model.Duration(0))
	nodeType        = reflect.TypeOf(yaml.Node{})
	nodeDecoderType = reflect.TypeOf((*NodeDecoder)(nil)).Elem()
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// Decode decodes n into v, which must be a pointer.
func (d Decoder) Decode(n *yaml.Node, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("pipeline: Decode needs a non-nil pointer, got %T", v)
	}
	return d.decode(n, rv.Elem(), "")
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && (n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode) {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		} else if len(n.Content) > 0 {
			n = n.Content[0]
		} else {
			return nil
		}
	}
	return n
}

// KeyNode returns the value node of key in the mapping n (documents and
// aliases resolved), or nil when there is none.
func KeyNode(n *yaml.Node, key string) *yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// NodeAt returns the value at path inside the mapping n, or the deepest
// node found on the way, so an error about a value always has a position
// as close to its cause as there is.
func NodeAt(n *yaml.Node, path ...string) *yaml.Node {
	for _, key := range path {
		v := KeyNode(n, key)
		if v == nil {
			return n
		}
		n = v
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func where(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}

func (d Decoder) decode(n *yaml.Node, v reflect.Value, path string) error {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if v.CanAddr() {
		p := v.Addr()
		if p.Type().Implements(nodeDecoderType) {
			return p.Interface().(NodeDecoder).DecodeNode(d, n)
		}
		if p.Type().Implements(unmarshalerType) {
			if err := p.Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
				var ce *ConfigError
				if errors.As(err, &ce) {
					return err
				}
				return d.Errorf(n, "%s%s", err, where(path))
			}
			return nil
		}
	}
	switch v.Type() {
	case nodeType:
		v.Set(reflect.ValueOf(*n))
		return nil
	case durationType, modelDurType:
		if n.Kind != yaml.ScalarNode {
			return d.Errorf(n, "expected a duration such as 5s%s", where(path))
		}
		dur, err := ParseDuration(n.Value)
		if err != nil {
			return d.Errorf(n, "invalid duration %q%s: %v", n.Value, where(path), err)
		}
		v.SetInt(int64(dur))
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return d.decode(n, v.Elem(), path)
	case reflect.Struct:
		return d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return d.Errorf(n, "expected a list%s", where(path))
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			if err := d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return d.Errorf(n, "expected a mapping%s", where(path))
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if seen[kn.Value] {
				return d.Errorf(kn, "duplicate key %q%s", kn.Value, where(path))
			}
			seen[kn.Value] = true
			key := reflect.New(v.Type().Key()).Elem()
			if err := d.decode(kn, key, path); err != nil {
				return err
			}
			val := reflect.New(v.Type().Elem()).Elem()
			if err := d.decode(vn, val, joinPath(path, kn.Value)); err != nil {
				return err
			}
			v.SetMapIndex(key, val)
		}
		return nil
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			return d.Errorf(n, "%v%s", cleanYAMLError(err), where(path))
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
		return nil
	default:
		if n.Kind != yaml.ScalarNode {
			return d.Errorf(n, "expected a single %s value%s", kindName(v.Kind()), where(path))
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			return d.Errorf(n, "invalid %s value %q%s", kindName(v.Kind()), n.Value, where(path))
		}
		return nil
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return k.String()
}

var yamlLinePrefix = regexp.MustCompile(`^yaml: (unmarshal errors:\n\s*)?line \d+: `)

func cleanYAMLError(err error) string {
	return yamlLinePrefix.ReplaceAllString(err.Error(), "")
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

type structField struct {
	index []int
	name  string
}

func structFields(t reflect.Type) []structField {
	var out []structField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			for _, sub := range structFields(f.Type) {
				sub.index = append([]int{i}, sub.index...)
				out = append(out, sub)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, structField{index: []int{i}, name: name})
	}
	return out
}

func (d Decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind != yaml.MappingNode {
		return d.Errorf(n, "expected a mapping%s", where(path))
	}
	fields := structFields(v.Type())
	byName := make(map[string]structField, len(fields))
	for _, f := range fields {
		byName[f.name] = f
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		f, ok := byName[kn.Value]
		if !ok {
			names := make([]string, 0, len(fields))
			for _, f := range fields {
				names = append(names, f.name)
			}
			return d.Errorf(kn, "unknown key %q%s%s", kn.Value, where(path), suggest(kn.Value, names))
		}
		if seen[kn.Value] {
			return d.Errorf(kn, "duplicate key %q%s", kn.Value, where(path))
		}
		seen[kn.Value] = true
		if err := d.decode(vn, v.FieldByIndex(f.index), joinPath(path, kn.Value)); err != nil {
			return err
		}
	}
	return nil
}

// Suggest is suggest for components that validate names of their own
// (collector names, option names): " (did you mean "x"?)", a list of the
// valid names when there are few, or "".
func Suggest(got string, valid []string) string { return suggest(got, valid) }

// suggest names the closest valid key, when one is close enough to be a
// likely typo, or lists the valid keys when there are few.
func suggest(got string, valid []string) string {
	best, bestD := "", 1<<30
	for _, v := range valid {
		if dd := editDistance(got, v); dd < bestD {
			best, bestD = v, dd
		}
	}
	if best != "" && bestD <= max(2, len(got)/3) {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	if len(valid) > 0 && len(valid) <= 12 {
		s := append([]string(nil), valid...)
		sort.Strings(s)
		return " (valid keys: " + strings.Join(s, ", ") + ")"
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ParseDuration accepts Go durations (1m30s, 250ms) and Prometheus ones
// (1d, 1w), as Promtail does.
func ParseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	d, err := model.ParseDuration(s)
	return time.Duration(d), err
}

// ReadSecret returns value, or the trimmed contents of file when value is
// empty and file is set. Setting both is an error so a forgotten inline
// secret never silently wins over the file.
func ReadSecret(value, file string) (string, error) {
	if value != "" && file != "" {
		return "", fmt.Errorf("both a value and a file are set; use one")
	}
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }
