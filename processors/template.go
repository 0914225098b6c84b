package processors

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/adler32"
	"math"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
	"unicode"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// template is Promtail's template stage: it sets an extracted value from a
// Go text/template.
//
//	template:
//	  source: <extracted name>   # created when missing
//	  template: <Go template>
//
// The template sees every extracted value (and, as in Promtail, the
// entry's labels) by name, the source's value as .Value and the line as
// .Entry. An empty result removes the value. A template that fails on an
// entry leaves it unchanged and counts an error.
//
// The functions are Promtail's (ToLower, ToUpper, Replace, Trim, TrimLeft,
// TrimRight, TrimPrefix, TrimSuffix, TrimSpace, Hash, Sha2Hash,
// regexReplaceAll, regexReplaceAllLiteral) plus vigil's own implementation
// of the Sprig functions listed in templateFuncs; Sprig's certificate,
// semver, URL, network and text-wrapping functions are not available, and
// a template using them is rejected when the config loads.

func init() {
	pipeline.RegisterProcessor("template", newTemplateStage)
}

type templateConfig struct {
	Source   string `yaml:"source"`
	Template string `yaml:"template"`
}

type templateStage struct {
	source string
	tmpl   *template.Template
	data   map[string]string
	buf    bytes.Buffer
	failed prometheus.Counter
}

func newTemplateStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	d := env.Decoder
	var cfg templateConfig
	if err := d.Decode(node, &cfg); err != nil {
		return nil, err
	}
	if cfg.Source == "" {
		return nil, d.Errorf(pipeline.NodeAt(node, "source"), "template stage: source is required")
	}
	rc := &tmplRegexCache{}
	t, err := template.New("pipeline_template").Funcs(templateFuncs(rc)).Parse(cfg.Template)
	if err != nil {
		return nil, d.Errorf(pipeline.NodeAt(node, "template"), "template stage: invalid template: %v", err)
	}
	// Regular expressions written into the template are checked now, so a
	// bad one is a config error rather than a failure on every entry.
	if err := checkTemplateRegexps(t.Tree.Root); err != nil {
		return nil, d.Errorf(pipeline.NodeAt(node, "template"), "template stage: %v", err)
	}
	return &templateStage{
		source: cfg.Source,
		tmpl:   t,
		data:   map[string]string{},
		failed: counters{env}.stageError("template"),
	}, nil
}

func (s *templateStage) Process(b *pipeline.Batch) {
	for i := range b.Entries {
		e := &b.Entries[i]
		clear(s.data)
		// Labels first so extracted values win, as in Promtail where the
		// extracted map starts as a copy of the labels.
		for _, l := range e.Labels {
			s.data[l.Name] = l.Value
		}
		for _, f := range e.Extracted {
			s.data[f.Name] = f.Value
		}
		if v, ok := extractedValue(e, s.source); ok {
			s.data["Value"] = v
		}
		// The line is only read while the template runs.
		s.data["Entry"] = unsafe.String(unsafe.SliceData(e.Line), len(e.Line))
		s.buf.Reset()
		if err := s.tmpl.Execute(&s.buf, s.data); err != nil {
			s.failed.Inc()
			continue
		}
		if s.buf.Len() == 0 {
			e.Extracted.Delete(s.source)
		} else {
			e.Extracted.Set(s.source, s.buf.String())
		}
	}
	clear(s.data) // do not keep the batch's lines alive
}

// tmplRegexFuncs are the template functions whose first argument is a regular
// expression.
var tmplRegexFuncs = map[string]bool{
	"regexReplaceAll": true, "regexReplaceAllLiteral": true, "mustRegexReplaceAll": true, "mustRegexReplaceAllLiteral": true,
	"regexMatch": true, "mustRegexMatch": true, "regexFind": true, "mustRegexFind": true,
	"regexFindAll": true, "mustRegexFindAll": true, "regexSplit": true, "mustRegexSplit": true,
}

func checkTemplateRegexps(n parse.Node) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkTemplateRegexps(c); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return checkTemplateRegexps(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Cmds {
			if err := checkTemplateRegexps(c); err != nil {
				return err
			}
		}
	case *parse.CommandNode:
		if len(n.Args) >= 2 {
			if id, ok := n.Args[0].(*parse.IdentifierNode); ok && tmplRegexFuncs[id.Ident] {
				if str, ok := n.Args[1].(*parse.StringNode); ok {
					if _, err := regexp.Compile(str.Text); err != nil {
						return fmt.Errorf("invalid regular expression %q in %s: %v", str.Text, id.Ident, err)
					}
				}
			}
		}
		for _, a := range n.Args {
			if err := checkTemplateRegexps(a); err != nil {
				return err
			}
		}
	case *parse.IfNode:
		return checkBranchRegexps(&n.BranchNode)
	case *parse.RangeNode:
		return checkBranchRegexps(&n.BranchNode)
	case *parse.WithNode:
		return checkBranchRegexps(&n.BranchNode)
	case *parse.TemplateNode:
		return checkTemplateRegexps(n.Pipe)
	}
	return nil
}

func checkBranchRegexps(b *parse.BranchNode) error {
	if err := checkTemplateRegexps(b.Pipe); err != nil {
		return err
	}
	if err := checkTemplateRegexps(b.List); err != nil {
		return err
	}
	if b.ElseList != nil {
		return checkTemplateRegexps(b.ElseList)
	}
	return nil
}

// tmplRegexCache keeps the regular expressions a template compiled, since the
// template functions take them as strings on every call.
type tmplRegexCache struct {
	m map[string]*regexp.Regexp
}

const maxCachedRegexps = 64

func (c *tmplRegexCache) get(expr string) (*regexp.Regexp, error) {
	if re, ok := c.m[expr]; ok {
		return re, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	if c.m == nil || len(c.m) >= maxCachedRegexps {
		c.m = map[string]*regexp.Regexp{}
	}
	c.m[expr] = re
	return re, nil
}

// templateFuncs returns Promtail's template functions and the Sprig ones
// vigil implements, with Sprig's argument order and behaviour.
func templateFuncs(rc *tmplRegexCache) template.FuncMap {
	hashHex := func(h interface {
		Write([]byte) (int, error)
		Sum([]byte) []byte
	}, a, b string) string {
		_, _ = h.Write([]byte(a))
		_, _ = h.Write([]byte(b))
		return hex.EncodeToString(h.Sum(nil))
	}
	fm := template.FuncMap{
		// Promtail's own.
		"ToLower":    strings.ToLower,
		"ToUpper":    strings.ToUpper,
		"Replace":    strings.Replace,
		"Trim":       strings.Trim,
		"TrimLeft":   strings.TrimLeft,
		"TrimRight":  strings.TrimRight,
		"TrimPrefix": strings.TrimPrefix,
		"TrimSuffix": strings.TrimSuffix,
		"TrimSpace":  strings.TrimSpace,
		// Hash and Sha2Hash hash their two arguments concatenated, in
		// order: `Hash .Value "salt"` hashes the value followed by the salt.
		"Hash":     func(a, b string) string { return hashHex(sha3.New256(), a, b) },
		"Sha2Hash": func(a, b string) string { return hashHex(sha256.New(), a, b) },
		"regexReplaceAll": func(expr, s, repl string) (string, error) {
			re, err := rc.get(expr)
			if err != nil {
				return "", err
			}
			return re.ReplaceAllString(s, repl), nil
		},
		"regexReplaceAllLiteral": func(expr, s, repl string) (string, error) {
			re, err := rc.get(expr)
			if err != nil {
				return "", err
			}
			return re.ReplaceAllLiteralString(s, repl), nil
		},

		// Sprig: strings.
		"trim":    strings.TrimSpace,
		"upper":   strings.ToUpper,
		"lower":   strings.ToLower,
		"title":   strings.Title, //nolint:staticcheck // Sprig's title is strings.Title
		"untitle": tmplUntitle,
		"substr":  tmplSubstr,
		"trunc":   tmplTrunc,
		"abbrev": func(width int, s string) string {
			if width < 4 || len(s) <= width {
				return s
			}
			return s[:width-3] + "..."
		},
		"repeat":     func(count int, s string) (string, error) { return tmplRepeat(s, count) },
		"trimall":    func(cut, s string) string { return strings.Trim(s, cut) },
		"trimAll":    func(cut, s string) string { return strings.Trim(s, cut) },
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
		"nospace": func(s string) string {
			return strings.Map(func(r rune) rune {
				if unicode.IsSpace(r) {
					return -1
				}
				return r
			}, s)
		},
		"initials":  tmplInitials,
		"swapcase":  tmplSwapCase,
		"contains":  func(sub, s string) bool { return strings.Contains(s, sub) },
		"hasPrefix": func(prefix, s string) bool { return strings.HasPrefix(s, prefix) },
		"hasSuffix": func(suffix, s string) bool { return strings.HasSuffix(s, suffix) },
		"quote": func(vs ...any) string {
			out := make([]string, 0, len(vs))
			for _, v := range vs {
				if v != nil {
					out = append(out, strconv.Quote(tmplString(v)))
				}
			}
			return strings.Join(out, " ")
		},
		"squote": func(vs ...any) string {
			out := make([]string, 0, len(vs))
			for _, v := range vs {
				if v != nil {
					out = append(out, fmt.Sprintf("'%v'", v))
				}
			}
			return strings.Join(out, " ")
		},
		"cat": func(vs ...any) string {
			out := make([]string, 0, len(vs))
			for _, v := range vs {
				if v != nil {
					out = append(out, fmt.Sprintf("%v", v))
				}
			}
			return strings.Join(out, " ")
		},
		"indent":  tmplIndent,
		"nindent": func(n int, s string) string { return "\n" + tmplIndent(n, s) },
		"replace": func(old, repl, s string) string { return strings.ReplaceAll(s, old, repl) },
		"plural": func(one, many string, count int) string {
			if count == 1 {
				return one
			}
			return many
		},
		"sha1sum":    func(s string) string { h := sha1.Sum([]byte(s)); return hex.EncodeToString(h[:]) },
		"sha256sum":  func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) },
		"adler32sum": func(s string) string { return strconv.FormatUint(uint64(adler32.Checksum([]byte(s))), 10) },
		"toString":   tmplString,
		"b64enc":     func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"b64dec": func(s string) string {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return err.Error()
			}
			return string(b)
		},
		"b32enc": func(s string) string { return base32.StdEncoding.EncodeToString([]byte(s)) },
		"b32dec": func(s string) string {
			b, err := base32.StdEncoding.DecodeString(s)
			if err != nil {
				return err.Error()
			}
			return string(b)
		},
		"randAlphaNum": func(n int) (string, error) {
			return tmplRandom(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
		},
		"randAlpha": func(n int) (string, error) {
			return tmplRandom(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
		},
		"randNumeric": func(n int) (string, error) { return tmplRandom(n, "0123456789") },
		"randAscii":   func(n int) (string, error) { return tmplRandom(n, tmplPrintableASCII) },
		"uuidv4":      tmplUUIDv4,

		// Sprig: conversions.
		"atoi":      func(s string) int { i, _ := strconv.Atoi(s); return i },
		"int":       func(v any) int { return int(tmplInt64(v)) },
		"int64":     tmplInt64,
		"float64":   tmplFloat64,
		"toDecimal": func(v any) int64 { i, _ := strconv.ParseInt(fmt.Sprint(v), 8, 64); return i },
		"toStrings": tmplStrings,

		// Sprig: lists of strings.
		"split":     func(sep, s string) map[string]string { return tmplIndexed(strings.Split(s, sep)) },
		"splitn":    func(sep string, n int, s string) map[string]string { return tmplIndexed(strings.SplitN(s, sep, n)) },
		"splitList": func(sep, s string) []string { return strings.Split(s, sep) },
		"join":      func(sep string, v any) string { return strings.Join(tmplStrings(v), sep) },
		"sortAlpha": func(v any) []string { s := tmplStrings(v); sort.Strings(s); return s },
		"until": func(n int) []int {
			step := 1
			if n < 0 {
				step = -1
			}
			return tmplUntilStep(0, n, step)
		},
		"untilStep": tmplUntilStep,

		// Sprig: integer and float arithmetic.
		"add1": func(v any) int64 { return tmplInt64(v) + 1 },
		"add": func(vs ...any) int64 {
			var sum int64
			for _, v := range vs {
				sum += tmplInt64(v)
			}
			return sum
		},
		"sub": func(a, b any) int64 { return tmplInt64(a) - tmplInt64(b) },
		"mul": func(a any, vs ...any) int64 {
			p := tmplInt64(a)
			for _, v := range vs {
				p *= tmplInt64(v)
			}
			return p
		},
		"div": func(a, b any) (int64, error) {
			d := tmplInt64(b)
			if d == 0 {
				return 0, errors.New("integer divide by zero")
			}
			return tmplInt64(a) / d, nil
		},
		"mod": func(a, b any) (int64, error) {
			d := tmplInt64(b)
			if d == 0 {
				return 0, errors.New("integer divide by zero")
			}
			return tmplInt64(a) % d, nil
		},
		"max":     tmplMax,
		"biggest": tmplMax,
		"min": func(a any, vs ...any) int64 {
			m := tmplInt64(a)
			for _, v := range vs {
				m = min(m, tmplInt64(v))
			}
			return m
		},
		"maxf": func(a any, vs ...any) float64 {
			m := tmplFloat64(a)
			for _, v := range vs {
				m = math.Max(m, tmplFloat64(v))
			}
			return m
		},
		"minf": func(a any, vs ...any) float64 {
			m := tmplFloat64(a)
			for _, v := range vs {
				m = math.Min(m, tmplFloat64(v))
			}
			return m
		},
		"floor": func(v any) float64 { return math.Floor(tmplFloat64(v)) },
		"ceil":  func(v any) float64 { return math.Ceil(tmplFloat64(v)) },
		"round": tmplRound,

		// Sprig: defaults and flow.
		"default": func(d any, given ...any) any {
			if len(given) == 0 || tmplEmpty(given[0]) {
				return d
			}
			return given[0]
		},
		"empty": tmplEmpty,
		"coalesce": func(vs ...any) any {
			for _, v := range vs {
				if !tmplEmpty(v) {
					return v
				}
			}
			return nil
		},
		"all": func(vs ...any) bool {
			for _, v := range vs {
				if tmplEmpty(v) {
					return false
				}
			}
			return true
		},
		"any": func(vs ...any) bool {
			for _, v := range vs {
				if !tmplEmpty(v) {
					return true
				}
			}
			return false
		},
		"ternary": func(vt, vf any, cond bool) any {
			if cond {
				return vt
			}
			return vf
		},
		"fail":          func(msg string) (string, error) { return "", errors.New(msg) },
		"toJson":        func(v any) string { b, _ := json.Marshal(v); return string(b) },
		"mustToJson":    func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
		"toPrettyJson":  func(v any) string { b, _ := json.MarshalIndent(v, "", "  "); return string(b) },
		"toRawJson":     func(v any) string { s, _ := tmplRawJSON(v); return s },
		"mustToRawJson": tmplRawJSON,
		"fromJson":      func(s string) any { var v any; _ = json.Unmarshal([]byte(s), &v); return v },
		"mustFromJson":  func(s string) (any, error) { var v any; err := json.Unmarshal([]byte(s), &v); return v, err },
		"typeOf":        func(v any) string { return fmt.Sprintf("%T", v) },
		"typeIs":        func(target string, v any) bool { return target == fmt.Sprintf("%T", v) },
		"kindOf":        func(v any) string { return reflect.ValueOf(v).Kind().String() },
		"kindIs":        func(target string, v any) bool { return target == reflect.ValueOf(v).Kind().String() },
		"deepEqual":     reflect.DeepEqual,

		// Sprig: lists and dicts.
		"list":    func(vs ...any) []any { return vs },
		"tuple":   func(vs ...any) []any { return vs },
		"first":   func(l any) (any, error) { return tmplListPick(l, func(n int) int { return 0 }) },
		"last":    func(l any) (any, error) { return tmplListPick(l, func(n int) int { return n - 1 }) },
		"rest":    func(l any) ([]any, error) { return tmplListSlice(l, 1, 0) },
		"initial": func(l any) ([]any, error) { return tmplListSlice(l, 0, 1) },
		"has": func(needle, l any) (bool, error) {
			items, err := tmplList(l)
			for _, it := range items {
				if reflect.DeepEqual(it, needle) {
					return true, nil
				}
			}
			return false, err
		},
		"reverse": func(l any) ([]any, error) {
			items, err := tmplList(l)
			for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
				items[i], items[j] = items[j], items[i]
			}
			return items, err
		},
		"uniq": func(l any) ([]any, error) {
			items, err := tmplList(l)
			var out []any
			for _, it := range items {
				dup := false
				for _, o := range out {
					if reflect.DeepEqual(o, it) {
						dup = true
						break
					}
				}
				if !dup {
					out = append(out, it)
				}
			}
			return out, err
		},
		"dict": func(kvs ...any) map[string]any {
			m := map[string]any{}
			for i := 0; i < len(kvs); i += 2 {
				var v any
				if i+1 < len(kvs) {
					v = kvs[i+1]
				}
				m[tmplString(kvs[i])] = v
			}
			return m
		},
		"get": func(m map[string]any, k string) any {
			if v, ok := m[k]; ok {
				return v
			}
			return ""
		},
		"set":    func(m map[string]any, k string, v any) map[string]any { m[k] = v; return m },
		"unset":  func(m map[string]any, k string) map[string]any { delete(m, k); return m },
		"hasKey": func(m map[string]any, k string) bool { _, ok := m[k]; return ok },
		"keys": func(ms ...map[string]any) []string {
			var out []string
			for _, m := range ms {
				for k := range m {
					out = append(out, k)
				}
			}
			return out
		},

		// Sprig: regular expressions. The non-must forms of the finders
		// fail the template on a bad expression, as Sprig's panics do.
		"regexMatch": func(expr, s string) bool {
			re, err := rc.get(expr)
			return err == nil && re.MatchString(s)
		},
		"mustRegexMatch": func(expr, s string) (bool, error) {
			re, err := rc.get(expr)
			if err != nil {
				return false, err
			}
			return re.MatchString(s), nil
		},
		"regexFind":     func(expr, s string) (string, error) { return tmplRegexFind(rc, expr, s) },
		"mustRegexFind": func(expr, s string) (string, error) { return tmplRegexFind(rc, expr, s) },
		"regexFindAll":  func(expr, s string, n int) ([]string, error) { return tmplRegexFindAll(rc, expr, s, n) },
		"mustRegexFindAll": func(expr, s string, n int) ([]string, error) {
			return tmplRegexFindAll(rc, expr, s, n)
		},
		"regexSplit":     func(expr, s string, n int) ([]string, error) { return tmplRegexSplit(rc, expr, s, n) },
		"mustRegexSplit": func(expr, s string, n int) ([]string, error) { return tmplRegexSplit(rc, expr, s, n) },
		"regexQuoteMeta": regexp.QuoteMeta,

		// Sprig: dates.
		"now":              time.Now,
		"date":             func(layout string, d any) string { return tmplDateInZone(layout, d, "Local") },
		"dateInZone":       tmplDateInZone,
		"date_in_zone":     tmplDateInZone,
		"htmlDate":         func(d any) string { return tmplDateInZone("2006-01-02", d, "Local") },
		"htmlDateInZone":   func(d any, zone string) string { return tmplDateInZone("2006-01-02", d, zone) },
		"toDate":           func(layout, s string) time.Time { t, _ := time.ParseInLocation(layout, s, time.Local); return t },
		"mustToDate":       func(layout, s string) (time.Time, error) { return time.ParseInLocation(layout, s, time.Local) },
		"unixEpoch":        func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) },
		"dateModify":       tmplDateModify,
		"date_modify":      tmplDateModify,
		"mustDateModify":   tmplMustDateModify,
		"must_date_modify": tmplMustDateModify,
		"duration": func(v any) string {
			return (time.Duration(tmplInt64(v)) * time.Second).String()
		},
		"durationRound": tmplDurationRound,
		"ago": func(d any) string {
			return time.Since(tmplTime(d)).Round(time.Second).String()
		},

		// Sprig: paths and environment.
		"base":      path.Base,
		"dir":       path.Dir,
		"clean":     path.Clean,
		"ext":       path.Ext,
		"isAbs":     path.IsAbs,
		"osBase":    filepath.Base,
		"osDir":     filepath.Dir,
		"osClean":   filepath.Clean,
		"osExt":     filepath.Ext,
		"osIsAbs":   filepath.IsAbs,
		"env":       os.Getenv,
		"expandenv": os.ExpandEnv,
	}
	return fm
}

func tmplSubstr(start, end int, s string) (string, error) {
	// Sprig slices bytes and panics out of range; a template error is the
	// same outcome without the panic.
	switch {
	case start < 0:
		if end < 0 || end > len(s) {
			return "", fmt.Errorf("substr: end %d out of range for length %d", end, len(s))
		}
		return s[:end], nil
	case start > len(s):
		return "", fmt.Errorf("substr: start %d out of range for length %d", start, len(s))
	case end < 0 || end > len(s):
		return s[start:], nil
	case start > end:
		return "", fmt.Errorf("substr: start %d after end %d", start, end)
	}
	return s[start:end], nil
}

func tmplTrunc(c int, s string) string {
	if c < 0 && len(s)+c > 0 {
		return s[len(s)+c:]
	}
	if c >= 0 && len(s) > c {
		return s[:c]
	}
	return s
}

// tmplRepeat bounds the result so a template cannot exhaust memory.
func tmplRepeat(s string, count int) (string, error) {
	if count < 0 {
		return "", errors.New("repeat: negative count")
	}
	if count > 0 && len(s) > (1<<20)/count {
		return "", errors.New("repeat: result longer than 1 MiB")
	}
	return strings.Repeat(s, count), nil
}

func tmplUntitle(s string) string {
	var b strings.Builder
	start := true
	for _, r := range s {
		if unicode.IsSpace(r) {
			start = true
		} else if start {
			r = unicode.ToLower(r)
			start = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

func tmplInitials(s string) string {
	var b strings.Builder
	start := true
	for _, r := range s {
		if unicode.IsSpace(r) {
			start = true
			continue
		}
		if start {
			b.WriteRune(r)
			start = false
		}
	}
	return b.String()
}

func tmplSwapCase(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case unicode.IsUpper(r), unicode.IsTitle(r):
			return unicode.ToLower(r)
		case unicode.IsLower(r):
			return unicode.ToUpper(r)
		}
		return r
	}, s)
}

func tmplIndent(n int, s string) string {
	pad := strings.Repeat(" ", max(n, 0))
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

const tmplPrintableASCII = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"

func tmplRandom(n int, alphabet string) (string, error) {
	if n < 0 || n > 1<<16 {
		return "", fmt.Errorf("random string length %d out of range", n)
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		// The bias of the modulo is irrelevant for these uses.
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

func tmplUUIDv4() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", err
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// tmplString converts a value to a string the way Sprig's toString does.
func tmplString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case error:
		return v.Error()
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprintf("%v", v)
}

// tmplInt64 converts like Sprig (through spf13/cast): numbers truncate,
// booleans are 0 or 1, strings parse as integers in any Go base (a ".0"
// tail is ignored), and anything else is 0.
func tmplInt64(v any) int64 {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int64:
		return x
	case uint:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		return int64(x)
	case float32:
		return int64(x)
	case float64:
		return int64(x)
	case bool:
		if x {
			return 1
		}
		return 0
	case string:
		i, err := strconv.ParseInt(tmplTrimZeroDecimal(x), 0, 64)
		if err != nil {
			return 0
		}
		return i
	}
	return 0
}

func tmplTrimZeroDecimal(s string) string {
	zero := false
	for i := len(s); i > 0; i-- {
		switch s[i-1] {
		case '.':
			if zero {
				return s[:i-1]
			}
		case '0':
			zero = true
		default:
			return s
		}
	}
	return s
}

func tmplFloat64(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case float32:
		return float64(x)
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0
		}
		return f
	case bool:
		if x {
			return 1
		}
		return 0
	case nil:
		return 0
	}
	return float64(tmplInt64(v))
}

func tmplMax(a any, vs ...any) int64 {
	m := tmplInt64(a)
	for _, v := range vs {
		m = max(m, tmplInt64(v))
	}
	return m
}

func tmplRound(v any, places int, roundOn ...float64) float64 {
	on := .5
	if len(roundOn) > 0 {
		on = roundOn[0]
	}
	pow := math.Pow(10, float64(places))
	digit := pow * tmplFloat64(v)
	var r float64
	if _, frac := math.Modf(digit); frac >= on {
		r = math.Ceil(digit)
	} else {
		r = math.Floor(digit)
	}
	return r / pow
}

func tmplEmpty(v any) bool {
	g := reflect.ValueOf(v)
	if !g.IsValid() {
		return true
	}
	switch g.Kind() {
	case reflect.Array, reflect.Slice, reflect.Map, reflect.String:
		return g.Len() == 0
	case reflect.Bool:
		return !g.Bool()
	case reflect.Complex64, reflect.Complex128:
		return g.Complex() == 0
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return g.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return g.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return g.Float() == 0
	case reflect.Struct:
		return false
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Pointer, reflect.UnsafePointer:
		return g.IsNil()
	}
	return false
}

func tmplRawJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func tmplStrings(v any) []string {
	switch v := v.(type) {
	case nil:
		return []string{}
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if x != nil {
				out = append(out, tmplString(x))
			}
		}
		return out
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
		out := make([]string, 0, rv.Len())
		for i := 0; i < rv.Len(); i++ {
			if x := rv.Index(i).Interface(); x != nil {
				out = append(out, tmplString(x))
			}
		}
		return out
	}
	return []string{tmplString(v)}
}

func tmplIndexed(parts []string) map[string]string {
	m := make(map[string]string, len(parts))
	for i, p := range parts {
		m["_"+strconv.Itoa(i)] = p
	}
	return m
}

func tmplUntilStep(start, stop, step int) []int {
	var out []int
	if (stop < start && step >= 0) || (stop >= start && step <= 0) {
		return out
	}
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		if len(out) >= 1<<16 {
			break
		}
		out = append(out, i)
	}
	return out
}

func tmplList(l any) ([]any, error) {
	rv := reflect.ValueOf(l)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, fmt.Errorf("cannot use %T as a list", l)
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, nil
}

func tmplListPick(l any, idx func(n int) int) (any, error) {
	items, err := tmplList(l)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	return items[idx(len(items))], nil
}

func tmplListSlice(l any, head, tail int) ([]any, error) {
	items, err := tmplList(l)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	return items[head : len(items)-tail], nil
}

func tmplRegexFind(rc *tmplRegexCache, expr, s string) (string, error) {
	re, err := rc.get(expr)
	if err != nil {
		return "", err
	}
	return re.FindString(s), nil
}

func tmplRegexFindAll(rc *tmplRegexCache, expr, s string, n int) ([]string, error) {
	re, err := rc.get(expr)
	if err != nil {
		return nil, err
	}
	return re.FindAllString(s, n), nil
}

func tmplRegexSplit(rc *tmplRegexCache, expr, s string, n int) ([]string, error) {
	re, err := rc.get(expr)
	if err != nil {
		return nil, err
	}
	return re.Split(s, n), nil
}

func tmplTime(d any) time.Time {
	switch d := d.(type) {
	case time.Time:
		return d
	case *time.Time:
		if d != nil {
			return *d
		}
	case int64:
		return time.Unix(d, 0)
	case int:
		return time.Unix(int64(d), 0)
	case int32:
		return time.Unix(int64(d), 0)
	}
	return time.Now()
}

func tmplDateInZone(layout string, d any, zone string) string {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		loc = time.UTC
	}
	return tmplTime(d).In(loc).Format(layout)
}

func tmplDateModify(dur string, t time.Time) time.Time {
	d, err := time.ParseDuration(dur)
	if err != nil {
		return t
	}
	return t.Add(d)
}

func tmplMustDateModify(dur string, t time.Time) (time.Time, error) {
	d, err := time.ParseDuration(dur)
	if err != nil {
		return time.Time{}, err
	}
	return t.Add(d), nil
}

func tmplDurationRound(v any) string {
	var d time.Duration
	switch v := v.(type) {
	case string:
		d, _ = time.ParseDuration(v)
	case int64:
		d = time.Duration(v)
	case time.Time:
		d = time.Since(v)
	}
	u := uint64(d)
	if d < 0 {
		u = -u
	}
	const (
		second = uint64(time.Second)
		minute = uint64(time.Minute)
		hour   = uint64(time.Hour)
		day    = 24 * hour
		month  = 30 * day
		year   = 365 * day
	)
	switch {
	case u > year:
		return strconv.FormatUint(u/year, 10) + "y"
	case u > month:
		return strconv.FormatUint(u/month, 10) + "m"
	case u > day:
		return strconv.FormatUint(u/day, 10) + "d"
	case u > hour:
		return strconv.FormatUint(u/hour, 10) + "h"
	case u > minute:
		return strconv.FormatUint(u/minute, 10) + "m"
	case u > second:
		return strconv.FormatUint(u/second, 10) + "s"
	}
	return "0s"
}
