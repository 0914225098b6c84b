package host

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pipeline"
)

func loadWithFlags(t *testing.T, src string, args ...string) (*pipeline.Config, Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	cfg, err := pipeline.Load("test.yaml", []byte(src), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(cfg); err != nil {
		return cfg, Config{}, err
	}
	c, _ := cfg.Sources.Get("h")
	var hc Config
	if err := (pipeline.Decoder{File: "test.yaml"}).Decode(c.Node, &hc); err != nil {
		t.Fatalf("patched config does not decode: %v", err)
	}
	return cfg, hc, nil
}

func TestFlagsOverrideHostSources(t *testing.T) {
	src := "sources:\n  h:\n    type: host\n    procfs: /host/proc\n    disable: [loadavg]\n    enable: [uname]\n    options: {stat.softirq: false}\n"
	_, hc, err := loadWithFlags(t, src,
		"--path.procfs=/p", "-path.sysfs", "/s", "--path.rootfs=/r", "--path.udev.data=/u",
		"--collector.loadavg", "--no-collector.uname", "--collector.stat.softirq",
		"--collector.vmstat.fields=^pg", "--no-collector.cpu.guest", "--collector.disable-defaults")
	if err != nil {
		t.Fatal(err)
	}
	p := hc.Paths()
	if p.Proc != "/p" || p.Sys != "/s" || p.Root != "/r" || p.UdevData != "/u" {
		t.Errorf("paths %+v", p)
	}
	if !hc.DisableDefaults {
		t.Error("disable_defaults not set")
	}
	on, err := hc.Enabled()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(on, ",") != "loadavg" {
		t.Errorf("enabled %v, want loadavg only", on)
	}
	want := Options{"stat.softirq": "true", "vmstat.fields": "^pg", "cpu.guest": "false"}
	for k, v := range want {
		if hc.Options[k] != v {
			t.Errorf("option %s = %q, want %q", k, hc.Options[k], v)
		}
	}
}

func TestFlagsNeedAHostSource(t *testing.T) {
	src := "sources: {f: {type: test_nothing}}\n"
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f := AddFlags(fs)
	if err := fs.Parse([]string{"--collector.stat.softirq"}); err != nil {
		t.Fatal(err)
	}
	cfg := &pipeline.Config{File: "x.yaml"}
	_ = src
	err := f.Apply(cfg)
	if err == nil || !strings.Contains(err.Error(), "--collector.stat.softirq") || !strings.Contains(err.Error(), "no source of type host") {
		t.Fatalf("got %v", err)
	}
	// No host flags: nothing to say.
	if err := AddFlags(flag.NewFlagSet("x", flag.ContinueOnError)).Apply(cfg); err != nil {
		t.Fatal(err)
	}
}

func TestBadFlagValues(t *testing.T) {
	for _, args := range [][]string{{"--collector.stat.softirq=maybe"}, {"--collector.nosuch"}} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		AddFlags(fs)
		if err := fs.Parse(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestHostSourceInPipelineConfig(t *testing.T) {
	// A config with only a host source is valid: it serves /metrics.
	cfg, err := pipeline.Load("only.yaml", []byte("sources:\n  host: {type: host, disable_defaults: true, enable: [loadavg]}\n"), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reg := newRegistryForTest()
	g, err := pipeline.BuildWith(cfg, quietLogger(), pipeline.NewTestMetrics(), reg)
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "node_load1"
	}
	if !found {
		t.Error("host metrics not served once the graph started")
	}
	if err := g.Stop(0); err != nil {
		t.Fatal(err)
	}
	if mfs, _ = reg.Gather(); len(mfs) != 0 {
		t.Errorf("%d families still served after stop", len(mfs))
	}

	// Its errors carry positions.
	cfg, err = pipeline.Load("bad.yaml", []byte("sources:\n  host:\n    type: host\n    enable: [cpuu]\n"), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err = pipeline.Build(cfg, quietLogger(), pipeline.NewTestMetrics()); err == nil || !strings.Contains(err.Error(), `bad.yaml:4:14: unknown collector "cpuu" (did you mean "cpu"?)`) {
		t.Fatalf("got %v", err)
	}
}
