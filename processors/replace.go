package processors

import (
	"bytes"
	"regexp"
	"text/template"
	"text/template/parse"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// The replace stage: Promtail's `replace` stage. Every capture group of
// every match (named or not) is replaced by the `replace` template,
// executed with the extracted data plus .Value, the captured text; named
// groups of the first match are then set in the extracted data to their
// replaced text. The result replaces the line, or the `source` value.
//
// Promtail's exact rules are kept, quirks included: a group is only
// replaced when it does not start before the end of the last one replaced
// (so of nested groups only the outer one counts), and a named group's
// replaced value is looked up by the text it captured.
//
// Promtail parses the template again for every line and skips the stage
// on a parse error; vigil parses it once, so a bad template is a config
// error.

func init() {
	pipeline.RegisterProcessor("replace", newReplaceStage)
}

type replaceConfig struct {
	Expression string  `yaml:"expression"`
	Source     *string `yaml:"source"`
	Replace    string  `yaml:"replace"`
}

type replaceStage struct {
	re      *regexp.Regexp
	names   []string // SubexpNames
	source  *string
	tmpl    *template.Template
	literal bool   // the template is plain text: no need to run it
	text    string // its text, then

	data     map[string]string
	captured map[string]string
	out      []byte
	buf      bytes.Buffer
	arena    parserArena
	slab     parserFieldSlab
	nnamed   int

	errNoMatch  prometheus.Counter
	errSource   prometheus.Counter
	errTemplate prometheus.Counter
}

func newReplaceStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg replaceConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	if err := parserCheckSource(env, node, cfg.Source); err != nil {
		return nil, err
	}
	m, err := compileStageRegex(env, node, "replace", cfg.Expression)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New("pipeline_template").Funcs(templateFuncs(&tmplRegexCache{})).Parse(cfg.Replace)
	if err != nil {
		at := pipeline.KeyNode(node, "replace")
		if at == nil {
			at = node
		}
		return nil, env.Decoder.Errorf(at, "replace stage: invalid template: %v", err)
	}
	s := &replaceStage{
		re:       m.re,
		names:    m.re.SubexpNames(),
		source:   cfg.Source,
		tmpl:     tmpl,
		literal:  replaceTemplateIsText(tmpl),
		data:     map[string]string{},
		captured: map[string]string{},
	}
	if s.literal && tmpl.Tree != nil && tmpl.Tree.Root != nil {
		s.text = tmpl.Tree.Root.String()
	}
	for _, n := range s.names {
		if n != "" {
			s.nnamed++
		}
	}
	c := counters{env}
	s.errNoMatch = c.stageError("no_match")
	s.errSource = c.stageError("source_missing")
	s.errTemplate = c.stageError("template_error")
	return s, nil
}

// replaceTemplateIsText reports whether t is only text, which then is its
// own output.
func replaceTemplateIsText(t *template.Template) bool {
	if t.Tree == nil || t.Tree.Root == nil {
		return true
	}
	for _, n := range t.Tree.Root.Nodes {
		if n.Type() != parse.NodeText {
			return false
		}
	}
	return true
}

func (s *replaceStage) Process(b *pipeline.Batch) {
	for i := range b.Entries {
		s.entry(&b.Entries[i])
	}
}

func (s *replaceStage) entry(e *pipeline.Entry) {
	input := aliasString(e.Line)
	if s.source != nil {
		v, ok := extractedValue(e, *s.source)
		if !ok {
			s.errSource.Inc()
			return
		}
		input = v
	}
	all := s.re.FindAllStringSubmatchIndex(input, -1)
	if all == nil {
		s.errNoMatch.Inc()
		return
	}
	if !s.literal {
		// The template sees the extracted data as it was before this
		// stage, and Promtail's extracted data starts with the labels.
		clear(s.data)
		for _, l := range e.Labels {
			s.data[l.Name] = l.Value
		}
		for _, f := range e.Extracted {
			s.data[f.Name] = f.Value
		}
	}
	clear(s.captured)
	out := s.out[:0]
	prevEnd := 0
	for _, m := range all {
		for g := 2; g < len(m); g += 2 {
			if m[g] < 0 {
				continue
			}
			captured := input[m[g]:m[g+1]]
			st, err := s.execute(captured)
			if err != nil {
				s.errTemplate.Inc()
				s.out = out
				return
			}
			if prevEnd <= m[g] {
				out = append(out, input[prevEnd:m[g]]...)
				out = append(out, st...)
				prevEnd = m[g+1]
			}
			s.captured[captured] = st
		}
	}
	out = append(out, input[prevEnd:]...)
	s.out = out
	result := s.arena.alloc(len(out))
	copy(result, out)
	s.slab.reserve(e, s.nnamed+1)
	if s.source != nil {
		e.Extracted.Set(*s.source, aliasString(result))
	} else {
		e.Line = result
	}
	first := all[0]
	for g, name := range s.names {
		if g == 0 || name == "" {
			continue
		}
		text := ""
		if first[2*g] >= 0 {
			text = input[first[2*g]:first[2*g+1]]
		}
		if v, ok := s.captured[text]; ok {
			e.Extracted.Set(name, v)
		}
	}
}

// execute runs the template for one captured value. The result is only
// valid until the next call.
func (s *replaceStage) execute(value string) (string, error) {
	if s.literal {
		return s.text, nil
	}
	s.data["Value"] = value
	s.buf.Reset()
	if err := s.tmpl.Execute(&s.buf, s.data); err != nil {
		return "", err
	}
	return s.buf.String(), nil
}
