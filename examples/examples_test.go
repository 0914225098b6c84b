package examples_test

import (
	"io"
	"io/fs"
	"log/slog"
	"testing"

	"github.com/vigilhq/vigil/components"
	"github.com/vigilhq/vigil/examples"
	"github.com/vigilhq/vigil/pipeline"
)

// Every example must load and build: a config in examples/ that does not
// is a broken promise to whoever copies it.
func TestEveryExampleBuilds(t *testing.T) {
	components.Link()
	t.Setenv("VIGIL_DATA_DIR", t.TempDir())
	files, err := fs.Glob(examples.FS, "*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			raw, err := fs.ReadFile(examples.FS, name)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := pipeline.Load(name, raw, pipeline.LoadOptions{ExpandEnv: true})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			cfg.Positions.Filename = "" // keep the test hermetic
			g, err := pipeline.Build(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), pipeline.NewTestMetrics())
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			if err := g.Discard(); err != nil {
				t.Fatal(err)
			}
			if len(cfg.Pipelines) == 0 {
				t.Fatal("example has no pipeline")
			}
		})
	}
}
