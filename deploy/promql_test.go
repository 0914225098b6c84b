package deploy

import (
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// promqlKeywords are identifiers of the language that are not metric names.
var promqlKeywords = setOf("and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
	"offset", "bool", "atan2", "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
	"bottomk", "topk", "quantile", "limitk", "limit_ratio", "inf", "nan")

// labelListKeywords are followed by a parenthesised list of label names.
var labelListKeywords = setOf("by", "without", "on", "ignoring", "group_left", "group_right")

// metricNames returns the metric names a PromQL expression selects. The
// expression must parse (promtool checks that separately); this is a lexer
// that skips strings, label matchers, label lists, ranges, numbers,
// functions and keywords, and keeps the other identifiers, plus the value of
// a __name__="..." matcher.
func metricNames(expr string) []string {
	names := map[string]bool{}
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	i, n := 0, len(expr)
	skipSpace := func(j int) int {
		for j < n && (expr[j] == ' ' || expr[j] == '\t' || expr[j] == '\n' || expr[j] == '\r') {
			j++
		}
		return j
	}
	skipString := func(j int) int { // j at the opening quote; returns past the closing one
		q := expr[j]
		j++
		for j < n && expr[j] != q {
			if expr[j] == '\\' && q != '`' {
				j++
			}
			j++
		}
		return j + 1
	}
	for i < n {
		c := expr[i]
		switch {
		case c == '#': // comment to the end of the line
			for i < n && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			i = skipString(i)
		case c == '{': // label matchers
			i++
			for i < n && expr[i] != '}' {
				if expr[i] == '"' || expr[i] == '\'' || expr[i] == '`' {
					i = skipString(i)
					continue
				}
				if strings.HasPrefix(expr[i:], "__name__") {
					j := skipSpace(i + len("__name__"))
					if j < n && expr[j] == '=' && (j+1 >= n || expr[j+1] != '~') {
						j = skipSpace(j + 1)
						if j < n && (expr[j] == '"' || expr[j] == '\'' || expr[j] == '`') {
							end := skipString(j)
							names[expr[j+1:end-1]] = true
							i = end
							continue
						}
					}
				}
				i++
			}
			i++
		case c == '[': // range or subquery
			for i < n && expr[i] != ']' {
				i++
			}
			i++
		case c >= '0' && c <= '9' || c == '.' && i+1 < n && expr[i+1] >= '0' && expr[i+1] <= '9':
			for i < n && (isIdent(expr[i]) || expr[i] == '.' || (expr[i] == '+' || expr[i] == '-') && (expr[i-1] == 'e' || expr[i-1] == 'E')) {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < n && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := skipSpace(j)
			switch {
			case labelListKeywords[strings.ToLower(word)]:
				if k < n && expr[k] == '(' {
					for k < n && expr[k] != ')' {
						k++
					}
					j = k + 1
				}
			case promqlKeywords[strings.ToLower(word)]:
			case k < n && expr[k] == '(': // a function call
			default:
				names[word] = true
			}
			i = j
		default:
			i++
		}
	}
	out := make([]string, 0, len(names))
	for k := range names {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up{job="vigil"} == 0`, []string{"up"}},
		{`sum by (instance, route) (rate(loki_request_duration_seconds_count{status_code=~"5.."}[5m])) / sum by (instance) (rate(x_total[5m]))`,
			[]string{"loki_request_duration_seconds_count", "x_total"}},
		{`node_load15 / on (instance) group_left count by (instance) (node_cpu_seconds_total{mode="idle"}) > 2`,
			[]string{"node_cpu_seconds_total", "node_load15"}},
		{`time() - (a_seconds > 0) > 3 * 3600 and b offset 5m`, []string{"a_seconds", "b"}},
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket{a="b{c}"}[5m:1m])))`, []string{"h_bucket"}},
		{`{__name__="via_matcher", job="x"} or topk(5, c) unless d @ start()`, []string{"c", "d", "via_matcher"}},
		{`1e-3 * foo + 0x1f - .5 + Inf`, []string{"foo"}},
		{`max_over_time(m{a="1"}[1h]) unless on (name) m2 # comment with words`, []string{"m", "m2"}},
	} {
		if got := metricNames(tc.expr); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("metricNames(%q) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

var grafanaVar = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z0-9_]+)|\[\[([A-Za-z0-9_]+)\]\]`)

// expandGrafana replaces Grafana's variables so the expression parses as
// PromQL: interval and range macros become a duration, other variables an
// identifier-safe placeholder (they sit inside label-matcher strings).
func expandGrafana(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		name := strings.Trim(m, "${}[]")
		if i := strings.Index(name, ":"); i >= 0 {
			name = name[:i]
		}
		switch {
		case strings.HasPrefix(name, "__") && (strings.Contains(name, "interval") || name == "__range" || name == "__auto"):
			return "5m"
		case strings.HasPrefix(name, "__"):
			return "300"
		}
		return "x"
	})
}

func TestExpandGrafana(t *testing.T) {
	got := expandGrafana(`rate(a{n=~"$name", t=~"${tenant}", u="[[u]]"}[$__rate_interval]) / $__range_s`)
	if want := `rate(a{n=~"x", t=~"x", u="x"}[5m]) / 300`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}
