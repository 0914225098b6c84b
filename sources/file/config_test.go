package file

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pipeline"
)

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // file:line:col and message fragment
	}{
		{"bad include glob", "include: ['/var/log/*.log', '/var/log/[a.log']\n", "x.yaml:1:29: invalid glob pattern \"/var/log/[a.log\""},
		{"bad exclude glob", "include: [/a/*]\nexclude:\n  - '{a,b'\n", "x.yaml:3:5: invalid glob pattern \"{a,b\""},
		{"bad target glob", "targets:\n  - include: ['/x/**/[']\n", "x.yaml:2:15: invalid glob pattern \"/x/**/[\""},
		{"bad label name", "include: [/a/*]\nlabels:\n  job: x\n  bad-name: y\n", "x.yaml:4:3: invalid label name \"bad-name\""},
		{"reserved label", "include: [/a/*]\nlabels:\n  __path__: y\n", "x.yaml:3:3: label name \"__path__\": names starting with __ are reserved"},
		{"label value not scalar", "include: [/a/*]\nlabels:\n  job: [a]\n", "x.yaml:3:8: label \"job\": expected a single value"},
		{"no include", "labels: {job: x}\n", "x.yaml:1:1: file source needs at least one include pattern"},
		{"target without include", "targets:\n  - labels: {job: x}\n", "x.yaml:2:5: target has no include pattern"},
		{"unknown key", "include: [/a/*]\nsync_perod: 1s\n", "x.yaml:2:1: unknown key \"sync_perod\""},
		{"bad duration", "include: [/a/*]\npartial_line_timeout: soon\n", "x.yaml:2:23: invalid duration \"soon\""},
		{"negative batch_lines", "include: [/a/*]\nbatch_lines: -1\n", "x.yaml:2:14: batch_lines is out of range"},
		{"negative sync_period", "include: [/a/*]\nsync_period: -1s\n", "x.yaml:2:14: sync_period is out of range"},
		{"bad size", "include: [/a/*]\nmax_line_size: lots\n", "x.yaml:2:16: invalid size \"lots\""},
		{"include not a list", "include: {a: b}\n", "x.yaml:1:10: expected a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := pipeline.Env{Name: "f", Decoder: pipeline.Decoder{File: "x.yaml"}}
			_, err := New(env, parseNode(t, tt.src))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			var ce *pipeline.ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("error %v is not a *pipeline.ConfigError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestConfigResolve(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want settings
	}{
		{
			name: "defaults",
			src:  "include: ['/var/log/*log', '/var/log/**/*.log']\nexclude: ['**/*.gz']\nlabels: {job: varlogs}\n",
			want: settings{
				groups: []group{{
					include: []string{"/var/log/*log", "/var/log/**/*.log"},
					exclude: []string{"**/*.gz"},
					labels:  map[string]string{"job": "varlogs"},
				}},
				syncPeriod: DefaultSyncPeriod, maxLine: DefaultMaxLineSize, partialLineTimeout: DefaultPartialLineTimeout,
				batchLines: DefaultBatchLines, batchBytes: DefaultBatchBytes,
			},
		},
		{
			name: "targets inherit top-level labels and exclude; values set",
			src: `exclude: ['**/*.gz']
labels: {env: prod, job: base}
targets:
  - include: [/a/*.log/]
    labels: {job: a}
  - include: [/b/../c/*.log]
    exclude: [/c/skip.log]
sync_period: 2s
max_line_size: 1KiB
partial_line_timeout: 1m
batch_lines: 10
batch_bytes: 4096
`,
			want: settings{
				groups: []group{
					{include: []string{"/a/*.log"}, exclude: []string{"**/*.gz"}, labels: map[string]string{"env": "prod", "job": "a"}},
					{include: []string{"/c/*.log"}, exclude: []string{"**/*.gz", "/c/skip.log"}, labels: map[string]string{"env": "prod", "job": "base"}},
				},
				syncPeriod: 2 * time.Second, maxLine: 1024, partialLineTimeout: time.Minute,
				batchLines: 10, batchBytes: 4096,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := pipeline.Env{Name: "f", Decoder: pipeline.Decoder{File: "x.yaml"}}
			s, err := New(env, parseNode(t, tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.cfg, tt.want) {
				t.Errorf("settings\n got %+v\nwant %+v", s.cfg, tt.want)
			}
		})
	}
}

// The registry builds the source from a node, as the config loader does.
func TestRegistered(t *testing.T) {
	found := false
	for _, typ := range pipeline.SourceTypes() {
		found = found || typ == "file"
	}
	if !found {
		t.Fatalf("source type file is not registered: %v", pipeline.SourceTypes())
	}
}

func TestExcluded(t *testing.T) {
	g := group{exclude: []string{"**/*.gz", "/var/log/private/**"}}
	for path, want := range map[string]bool{
		"/var/log/syslog":         false,
		"/var/log/syslog.2.gz":    true,
		"/var/log/nginx/a.log.gz": true,
		"/var/log/private/x.log":  true,
		"/var/log/privately.log":  false,
	} {
		if got := g.excluded(path); got != want {
			t.Errorf("excluded(%q) = %v, want %v", path, got, want)
		}
	}
}
