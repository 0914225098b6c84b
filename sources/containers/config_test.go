package containers

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pipeline"
)

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "    cgroup_root: /x\n", "vigil.yaml:4:5"},
		{"bad host scheme", "    host: ssh://docker\n", `vigil.yaml:4:11: invalid docker host "ssh://docker"`},
		{"relative path", "    procfs: host/proc\n", `vigil.yaml:4:13: procfs must be an absolute path`},
		{"empty allowlist key", "    label_allowlist: [a, \"\"]\n", "vigil.yaml:4:26: empty label key"},
		{"allowlist not a list", "    label_allowlist: a\n", "vigil.yaml:4:22"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := "sources:\n  c:\n    type: containers\n" + tc.yaml
			cfg, err := pipeline.Load("vigil.yaml", []byte(raw), pipeline.LoadOptions{})
			if err == nil {
				var g *pipeline.Graph
				g, err = pipeline.Build(cfg, slog.New(slog.DiscardHandler), pipeline.NewTestMetrics())
				if err == nil {
					g.Discard()
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestConfigBuilds builds the source from YAML over the v2 fixture, and
// checks that two containers sources in one config are refused.
func TestConfigBuilds(t *testing.T) {
	raw := `sources:
  c:
    type: containers
    host: unix:///nonexistent/docker.sock
    cgroupfs: ` + abs(t, "testdata/v2/cgroup") + `
    procfs: ` + abs(t, "testdata/v2/proc") + `
    tenant_label: tenant
    default_tenant: shared
    label_allowlist: []
`
	cfg, err := pipeline.Load("vigil.yaml", []byte(raw), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := pipeline.Build(cfg, slog.New(slog.DiscardHandler), pipeline.NewTestMetrics())
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Discard(); err != nil {
		t.Fatal(err)
	}
	two := raw + "  d:\n    type: containers\n    host: unix:///nonexistent/docker.sock\n    cgroupfs: " + abs(t, "testdata/v2/cgroup") + "\n"
	cfg, err = pipeline.Load("vigil.yaml", []byte(two), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.Build(cfg, slog.New(slog.DiscardHandler), pipeline.NewTestMetrics()); err == nil || !strings.Contains(err.Error(), "same series") {
		t.Fatalf("two containers sources: error %v, want a refusal", err)
	}
}
