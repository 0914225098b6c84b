package processors

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// tenant is Promtail's tenant stage: it sets the tenant an entry is sent
// as (Loki's X-Scope-OrgID) from an extracted value, a label or a fixed
// value. An empty or missing value leaves the tenant as it was, so the
// sink's tenant_id applies.
//
//	tenant:
//	  source: <extracted name>   # exactly one of source, label and value
//	  label: <label name>
//	  value: <tenant>

func init() {
	pipeline.RegisterProcessor("tenant", newTenantStage)
}

type tenantConfig struct {
	Source string `yaml:"source"`
	Label  string `yaml:"label"`
	Value  string `yaml:"value"`
}

type tenantStage struct {
	cfg     tenantConfig
	interns map[string]string
	missing prometheus.Counter
}

// maxTenantInterns bounds the owned copies of tenant names kept. Tenants
// taken from log content could be unbounded.
const maxTenantInterns = 1024

func newTenantStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	var cfg tenantConfig
	if err := env.Decoder.Decode(node, &cfg); err != nil {
		return nil, err
	}
	set := 0
	for _, v := range []string{cfg.Source, cfg.Label, cfg.Value} {
		if v != "" {
			set++
		}
	}
	if set == 0 {
		return nil, env.Decoder.Errorf(node, "tenant stage: one of label, source or value is required")
	}
	if set > 1 {
		return nil, env.Decoder.Errorf(node, "tenant stage: label, source and value are mutually exclusive: set only one of them")
	}
	return &tenantStage{cfg: cfg, interns: map[string]string{}, missing: counters{env}.stageError("missing_source")}, nil
}

func (s *tenantStage) Process(b *pipeline.Batch) {
	for i := range b.Entries {
		e := &b.Entries[i]
		var (
			t  string
			ok bool
		)
		switch {
		case s.cfg.Source != "":
			t, ok = extractedValue(e, s.cfg.Source)
		case s.cfg.Label != "":
			for _, l := range e.Labels {
				if l.Name == s.cfg.Label {
					t, ok = l.Value, true
					break
				}
			}
		default:
			t, ok = s.cfg.Value, true
		}
		if !ok {
			s.missing.Inc()
		}
		if t == "" {
			continue
		}
		e.Tenant = s.intern(t)
	}
}

// intern returns an owned copy of t. The value may point into a line, and
// sinks keep tenant names beyond the batch (as keys of their queues).
func (s *tenantStage) intern(t string) string {
	if s.cfg.Value != "" {
		return t
	}
	if own, ok := s.interns[t]; ok {
		return own
	}
	if len(s.interns) >= maxTenantInterns {
		clear(s.interns)
	}
	own := strings.Clone(t)
	s.interns[own] = own
	return own
}
