package processors

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/vigilhq/vigil/pipeline"
)

func TestTenant(t *testing.T) {
	tests := []struct {
		name      string
		config    string
		labels    pipeline.Labels
		extracted pipeline.Fields
		tenant    string // before
		want      string
		missing   float64
	}{
		{
			// Promtail docs: the tenant comes from the customer_id field.
			name:      "docs: source customer_id",
			config:    "source: customer_id",
			extracted: fieldsOf("customer_id", "1", "log", "log message\n", "stream", "stderr"),
			want:      "1",
		},
		{
			// Promtail docs: a match stage sets a fixed tenant for app=api.
			name:   "docs: fixed value",
			config: `value: "team-api"`,
			labels: labelsOf("app", "api"),
			want:   "team-api",
		},
		{
			// Promtail docs: the tenant is the namespace label.
			name:   "docs: label namespace",
			config: `label: "namespace"`,
			labels: labelsOf("namespace", "psra"),
			want:   "psra",
		},
		{
			name:      "missing source keeps the tenant",
			config:    "source: customer_id",
			extracted: fieldsOf("other", "x"),
			tenant:    "before",
			want:      "before",
			missing:   1,
		},
		{
			name:    "missing label keeps the tenant",
			config:  "label: namespace",
			labels:  labelsOf("app", "x"),
			want:    "",
			missing: 1,
		},
		{
			name:      "empty value keeps the tenant",
			config:    "source: customer_id",
			extracted: fieldsOf("customer_id", ""),
			tenant:    "before",
			want:      "before",
		},
		{
			name:   "source falls back to labels, as Promtail's extracted map holds them",
			config: "source: namespace",
			labels: labelsOf("namespace", "wpcs"),
			want:   "wpcs",
		},
		{
			name:      "label ignores extracted values",
			config:    "label: namespace",
			extracted: fieldsOf("namespace", "nope"),
			want:      "",
			missing:   1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newProcHarness(t, "tenant", tt.config)
			out := h.run(pipeline.Entry{Labels: tt.labels, Extracted: tt.extracted, Tenant: tt.tenant})
			if out[0].Tenant != tt.want {
				t.Errorf("tenant = %q, want %q", out[0].Tenant, tt.want)
			}
			if got := h.errors("missing_source"); got != tt.missing {
				t.Errorf("missing_source errors = %v, want %v", got, tt.missing)
			}
		})
	}
}

func TestTenantOwnsValuesTakenFromLines(t *testing.T) {
	h := newProcHarness(t, "tenant", "source: t")
	line := []byte(`t=rentguy`)
	out := h.run(pipeline.Entry{Line: line, Extracted: fieldsOf("t", unsafe.String(&line[2], 7))})
	copy(line[2:], "XXXXXXX")
	if out[0].Tenant != "rentguy" {
		t.Errorf("tenant changed with the line: %q", out[0].Tenant)
	}
}

func TestTenantConfigErrors(t *testing.T) {
	tests := []struct{ config, msg string }{
		{"{}", "one of label, source or value is required"},
		{"source: a\nvalue: b", "mutually exclusive"},
		{"label: a\nsource: b", "mutually exclusive"},
		{"label: a\nvalue: b", "mutually exclusive"},
		{"tenant: a", `unknown key "tenant"`},
	}
	for _, tt := range tests {
		ce := procConfigErr(t, "tenant", tt.config)
		if !strings.Contains(ce.Msg, tt.msg) {
			t.Errorf("%q: error = %v, want ...%s...", tt.config, ce, tt.msg)
		}
	}
}

func BenchmarkTenant(b *testing.B) {
	h := newProcHarness(b, "tenant", "source: tenant")
	const n = 256
	batch := pipeline.NewBatch(n, nil)
	tenants := []string{"rentguy", "psra", "wpcs"}
	for i := 0; i < n; i++ {
		batch.Entries = append(batch.Entries, pipeline.Entry{Extracted: fieldsOf("level", "info", "tenant", tenants[i%3])})
	}
	benchStageBatches(b, h.proc, batch)
}
