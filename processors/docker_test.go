package processors

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigilhq/vigil/pipeline"
)

func parserTimeForTest(t testing.TB, s string) int64 {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts.UnixNano()
}

func TestDocker(t *testing.T) {
	job := pipeline.Labels{{Name: "job", Value: "docker"}}
	tests := []struct {
		name       string
		line       string
		wantLine   string
		wantTime   string // RFC3339Nano; "" keeps the entry's own
		wantLabels pipeline.Labels
		wantFields map[string]string
		wantErrors map[string]float64
	}{
		{
			name:       "documented example",
			line:       `{"log":"log message\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}`,
			wantLine:   "log message\n",
			wantTime:   "2019-04-30T02:12:41.8443515Z",
			wantLabels: pipeline.Labels{{Name: "job", Value: "docker"}, {Name: "stream", Value: "stderr"}},
			wantFields: map[string]string{"output": "log message\n", "stream": "stderr", "timestamp": "2019-04-30T02:12:41.8443515Z"},
		},
		{
			name:       "escaped quotes in the log, as in Promtail's test",
			line:       `{"log":"level=info ts=2019-04-30T02:12:41.844179Z caller=filetargetmanager.go:180 msg=\"Adding target\" key=\"{com_docker_deploy_namespace=\\\"docker\\\", container_name=\\\"compose\\\"}\"\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}`,
			wantLine:   "level=info ts=2019-04-30T02:12:41.844179Z caller=filetargetmanager.go:180 msg=\"Adding target\" key=\"{com_docker_deploy_namespace=\\\"docker\\\", container_name=\\\"compose\\\"}\"\n",
			wantTime:   "2019-04-30T02:12:41.8443515Z",
			wantLabels: pipeline.Labels{{Name: "job", Value: "docker"}, {Name: "stream", Value: "stderr"}},
		},
		{
			name:       "numeric offset",
			line:       `{"log":"x","stream":"stdout","time":"2019-04-30T04:12:41.8443515+02:00"}`,
			wantLine:   "x",
			wantTime:   "2019-04-30T02:12:41.8443515Z",
			wantLabels: pipeline.Labels{{Name: "job", Value: "docker"}, {Name: "stream", Value: "stdout"}},
		},
		{
			name:       "invalid timestamp keeps the entry's time",
			line:       `{"log":"log message\n","stream":"stderr","time":"hi!"}`,
			wantLine:   "log message\n",
			wantLabels: pipeline.Labels{{Name: "job", Value: "docker"}, {Name: "stream", Value: "stderr"}},
			wantErrors: map[string]float64{"invalid_timestamp": 1},
		},
		{
			name:       "not JSON",
			line:       "i'm not json!",
			wantLine:   "i'm not json!",
			wantLabels: job,
			wantFields: map[string]string{},
			wantErrors: map[string]float64{"malformed_json": 1},
		},
		{
			name:       "no log key keeps the line",
			line:       `{"stream":"stdout","time":"2019-04-30T02:12:41Z"}`,
			wantLine:   `{"stream":"stdout","time":"2019-04-30T02:12:41Z"}`,
			wantTime:   "2019-04-30T02:12:41Z",
			wantLabels: pipeline.Labels{{Name: "job", Value: "docker"}, {Name: "stream", Value: "stdout"}},
			wantFields: map[string]string{"stream": "stdout", "timestamp": "2019-04-30T02:12:41Z"},
		},
		{
			name:       "a stream that is not UTF-8 is not a label",
			line:       "{\"log\":\"x\",\"stream\":\"\xff\",\"time\":\"2019-04-30T02:12:41Z\"}",
			wantLine:   "x",
			wantTime:   "2019-04-30T02:12:41Z",
			wantLabels: job,
			wantErrors: map[string]float64{"invalid_label_value": 1},
		},
		{
			name:       "non-string log",
			line:       `{"log":true,"stream":"stdout","time":"2019-04-30T02:12:41Z"}`,
			wantLine:   "true",
			wantTime:   "2019-04-30T02:12:41Z",
			wantLabels: pipeline.Labels{{Name: "job", Value: "docker"}, {Name: "stream", Value: "stdout"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newParserStageForTest(t, "docker", "")
			out := parserRunForTest(job, []string{tt.line}, s)
			e := out[0]
			if string(e.Line) != tt.wantLine {
				t.Errorf("line = %q, want %q", e.Line, tt.wantLine)
			}
			wantTime := int64(1000)
			if tt.wantTime != "" {
				wantTime = parserTimeForTest(t, tt.wantTime)
			}
			if e.Time != wantTime {
				t.Errorf("time = %v, want %v", time.Unix(0, e.Time).UTC(), time.Unix(0, wantTime).UTC())
			}
			if !reflect.DeepEqual(e.Labels, tt.wantLabels) {
				t.Errorf("labels = %v, want %v", e.Labels, tt.wantLabels)
			}
			if tt.wantFields != nil {
				parserWantFieldsForTest(t, e.Extracted, tt.wantFields)
			}
			var total float64
			for reason, n := range tt.wantErrors {
				if got := s.errors(reason); got != n {
					t.Errorf("%s errors = %v, want %v", reason, got, n)
				}
				total += n
			}
			if got := s.totalErrors(); got != total {
				t.Errorf("errors = %v, want %v", got, total)
			}
			if !reflect.DeepEqual(job, pipeline.Labels{{Name: "job", Value: "docker"}}) {
				t.Errorf("input label set was modified: %v", job)
			}
		})
	}
}

func TestDockerFudgesFailedTimestamps(t *testing.T) {
	s := newParserStageForTest(t, "docker", "{}")
	labels := pipeline.Labels{{Name: "job", Value: "docker"}}
	out := parserRunForTest(labels, []string{
		`{"log":"a","stream":"stdout","time":"2019-04-30T02:12:41Z"}`,
		`{"log":"b","stream":"stdout","time":"bad"}`,
		`{"log":"c","stream":"stdout"}`,
		`{"log":"d","stream":"stderr","time":"bad"}`,
	}, s)
	base := parserTimeForTest(t, "2019-04-30T02:12:41Z")
	want := []int64{base, base + 1, base + 2, 1003}
	for i, e := range out {
		if e.Time != want[i] {
			t.Errorf("entry %d (%s): time %d, want %d", i, e.Line, e.Time, want[i])
		}
	}
}

func TestDockerSharesLabelSets(t *testing.T) {
	s := newParserStageForTest(t, "docker", "")
	labels := pipeline.Labels{{Name: "job", Value: "docker"}}
	line := `{"log":"a","stream":"stdout","time":"2019-04-30T02:12:41Z"}`
	out := parserRunForTest(labels, []string{line, line}, s)
	if &out[0].Labels[0] != &out[1].Labels[0] {
		t.Error("entries of one stream got separate label sets")
	}
	out2 := parserRunForTest(labels, []string{line}, s)
	if &out2[0].Labels[0] != &out[0].Labels[0] {
		t.Error("label set not reused across batches")
	}
}

func TestDockerConfigErrors(t *testing.T) {
	parserConfigErrorForTest(t, "docker", "\nfoo: 1", "2:1", "foo")
}

func TestDockerTimeParsing(t *testing.T) {
	for _, s := range []string{
		"2019-04-30T02:12:41.8443515Z", "2019-04-30T02:12:41Z", "2019-04-30T02:12:41.1+23:59", "2016-02-29T00:00:00.000000001-07:30",
		"2015-02-29T00:00:00Z", "2019-04-30T24:00:00Z", "2019-04-30T02:12:60Z", "2019-04-30t02:12:41Z", "2019-04-30T02:12:41.Z",
		"2019-04-30T02:12:41.1234567891Z", "2019-04-30T02:12:41+0200", "2019-04-30T02:12:41+24:00", "2019-4-30T02:12:41Z",
		"2019-04-30 02:12:41Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2019-04-30T02:12:41,5Z", "",
	} {
		dockerCheckTimeForTest(t, s)
	}
}

func dockerCheckTimeForTest(t *testing.T, s string) {
	t.Helper()
	got, ok := runtimeParseTime(s)
	want, err := time.Parse(time.RFC3339Nano, s)
	if ok != (err == nil) || ok && got != want.UnixNano() {
		t.Errorf("runtimeParseTime(%q) = %d, %v; time.Parse gives %v, %v", s, got, ok, want.UnixNano(), err)
	}
}

// promtailDockerForTest is what Promtail's docker stage makes of a line:
// json (log, stream, time), labels, timestamp, output. Objects and arrays
// become JSON text in Promtail's json stage; they are returned decoded
// (logObj, streamObj) because vigil keeps their original key order.
func promtailDockerForTest(data []byte, e pipeline.Entry) (out pipeline.Entry, logObj, streamObj any) {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return e, nil, nil
	}
	str := func(v any) (string, bool) {
		switch v := v.(type) {
		case string:
			return v, true
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64), true
		case bool:
			return strconv.FormatBool(v), true
		case map[string]any, []any:
			b, _ := json.Marshal(v)
			return string(b), true
		}
		return "", false
	}
	if s, ok := str(m["stream"]); ok && utf8.ValidString(s) {
		e.Labels = e.Labels.Set("stream", s)
		switch v := m["stream"].(type) {
		case map[string]any, []any:
			streamObj = v
		}
	}
	if s, ok := str(m["time"]); ok {
		if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
			e.Time = ts.UnixNano()
		}
	}
	switch v := m["log"].(type) {
	case map[string]any, []any:
		return e, v, streamObj
	default:
		if s, ok := str(v); ok {
			e.Line = []byte(s)
		}
	}
	return e, nil, streamObj
}

// dockerSameJSONForTest reports whether text decodes to v.
func dockerSameJSONForTest(text []byte, v any) bool {
	var g any
	return json.Unmarshal(text, &g) == nil && reflect.DeepEqual(g, v)
}

func FuzzDocker(f *testing.F) {
	for _, s := range []string{
		`{"log":"log message\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}`,
		`{"log":"a\"b\\c\u00e9","stream":"stdout","time":"2019-04-30T02:12:41+02:00"}`,
		`{"time":"2019-04-30T02:12:41.123Z","stream":"stdout","log":{"a":[1, 2]}}`,
		`{"log":12.50,"stream":true,"time":null}`, `null`, `{}`, `not json`, `2019-04-30T02:12:41.8443515Z`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dockerCheckTimeForTest(t, string(data))
		s := newParserStageForTest(t, "docker", "")
		in := pipeline.Entry{Time: 1000, Line: data, Labels: pipeline.Labels{{Name: "job", Value: "x"}}}
		b := pipeline.NewBatch(1, nil)
		b.Entries = append(b.Entries, in)
		s.Process(b)
		if len(b.Entries) != 1 {
			t.Fatal("entry lost")
		}
		got := b.Entries[0]
		if !utf8.Valid(data) {
			return
		}
		want, logObj, streamObj := promtailDockerForTest(data, in)
		if streamObj != nil {
			if !dockerSameJSONForTest([]byte(got.Labels.Get("stream")), streamObj) {
				t.Fatalf("stream label %q, want %v, for %q", got.Labels.Get("stream"), streamObj, data)
			}
			got.Labels = want.Labels
		}
		if got.Time != want.Time || !reflect.DeepEqual(got.Labels, want.Labels) {
			t.Fatalf("got time %d labels %v, want %d %v, for %q", got.Time, got.Labels, want.Time, want.Labels, data)
		}
		if logObj != nil {
			if !dockerSameJSONForTest(got.Line, logObj) {
				t.Fatalf("line %q, want %v, for %q", got.Line, logObj, data)
			}
			return
		}
		if string(got.Line) != string(want.Line) {
			t.Fatalf("line %q, want %q, for %q", got.Line, want.Line, data)
		}
	})
}

func BenchmarkDocker(b *testing.B) {
	s := newParserStageForTest(b, "docker", "")
	parserBenchForTest(b, s,
		`{"log":"192.168.1.10 - - [10/Oct/2025:13:55:36 +0000] \"GET /api/v1/users?id=42 HTTP/1.1\" 200 1534 \"-\" \"curl/8.5.0\"\n","stream":"stdout","time":"2025-10-10T13:55:36.123456789Z"}`,
		`{"log":"level=info msg=\"request served\" path=/api/v1/items duration=12ms\n","stream":"stderr","time":"2025-10-10T13:55:36.223456789Z"}`)
}
