package loki

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grafana/loki/pkg/push"
	"github.com/klauspost/compress/snappy"

	"github.com/vigilhq/vigil/pipeline"
)

func decodeBody(t testing.TB, body []byte) push.PushRequest {
	t.Helper()
	raw, err := snappy.DecodeStrict(nil, body) // standard Snappy, no s2 extensions
	if err != nil {
		t.Fatalf("snappy: %v", err)
	}
	var req push.PushRequest
	if err := req.Unmarshal(raw); err != nil {
		t.Fatalf("protobuf: %v", err)
	}
	return req
}

func TestEncode(t *testing.T) {
	a := ls("job", "a")
	aCopy := ls("job", "a") // equal set, different memory
	b := ls("env", "own", "job", "b")
	empty := ls("gone", "", "job", "c")
	bad := ls("job", "x\xffy")
	md := ls("trace_id", "t1")

	tests := []struct {
		name     string
		external map[string]string
		entries  []pipeline.Entry
		want     map[string][]string // stream labels -> "ts line" in order
		wantMD   map[string]string   // line -> trace_id
	}{
		{
			name: "streams in arrival order",
			entries: []pipeline.Entry{
				{Time: 1, Line: []byte("a1"), Labels: a},
				{Time: 1, Line: []byte("b1"), Labels: b},
				{Time: 2, Line: []byte("a2"), Labels: aCopy},
				{Time: 3, Line: []byte("a3"), Labels: a, Metadata: md},
			},
			want: map[string][]string{
				`{job="a"}`:            {"1 a1", "2 a2", "3 a3"},
				`{env="own", job="b"}`: {"1 b1"},
			},
			wantMD: map[string]string{"a3": "t1"},
		},
		{
			name: "out of order entries are sorted stably",
			entries: []pipeline.Entry{
				{Time: 5, Line: []byte("five"), Labels: a},
				{Time: 3, Line: []byte("three"), Labels: a},
				{Time: 5, Line: []byte("five again"), Labels: a},
				{Time: 1, Line: []byte("one"), Labels: a},
			},
			want: map[string][]string{`{job="a"}`: {"1 one", "3 three", "5 five", "5 five again"}},
		},
		{
			name:     "external labels merged, the entry's own win",
			external: map[string]string{"env": "prod", "host": "h1", "zone": "z"},
			entries: []pipeline.Entry{
				{Time: 1, Line: []byte("a"), Labels: a},
				{Time: 1, Line: []byte("b"), Labels: b},
			},
			want: map[string][]string{
				`{env="prod", host="h1", job="a", zone="z"}`: {"1 a"},
				`{env="own", host="h1", job="b", zone="z"}`:  {"1 b"},
			},
		},
		{
			name: "empty label values are left out, invalid UTF-8 repaired",
			entries: []pipeline.Entry{
				{Time: 1, Line: []byte("c"), Labels: empty},
				{Time: 1, Line: []byte("bad\xff\xfeline"), Labels: bad},
			},
			want: map[string][]string{
				`{job="c"}`:          {"1 c"},
				"{job=\"x\ufffdy\"}": {"1 bad\ufffdline"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := getEncoder()
			defer enc.put()
			body, lineBytes, err := enc.encode(entryPtrs(tt.entries), newLabelCache(pipeline.LabelsFromMap(tt.external)))
			if err != nil {
				t.Fatal(err)
			}
			wantBytes := 0
			for _, e := range tt.entries {
				wantBytes += len(e.Line)
			}
			if lineBytes != wantBytes {
				t.Errorf("line bytes = %d, want %d", lineBytes, wantBytes)
			}
			req := decodeBody(t, body)
			got := map[string][]string{}
			for _, s := range req.Streams {
				if _, dup := got[s.Labels]; dup {
					t.Errorf("stream %s appears twice", s.Labels)
				}
				got[s.Labels] = nil
				for _, e := range s.Entries {
					got[s.Labels] = append(got[s.Labels], fmt.Sprintf("%d %s", e.Timestamp.UnixNano(), e.Line))
					if want, ok := tt.wantMD[e.Line]; ok {
						if len(e.StructuredMetadata) != 1 || e.StructuredMetadata[0].Value != want {
							t.Errorf("metadata of %q = %v, want trace_id=%s", e.Line, e.StructuredMetadata, want)
						}
					} else if len(e.StructuredMetadata) != 0 {
						t.Errorf("unexpected metadata on %q: %v", e.Line, e.StructuredMetadata)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("streams:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

// TestEncoderReuse checks that a recycled encoder carries nothing over.
func TestEncoderReuse(t *testing.T) {
	enc := &encoder{index: map[uint64]int32{}}
	lc := newLabelCache(nil)
	first := []pipeline.Entry{
		{Time: 1, Line: []byte("x"), Labels: ls("job", "x")},
		{Time: 1, Line: []byte("y"), Labels: ls("job", "y")},
	}
	if _, _, err := enc.encode(entryPtrs(first), lc); err != nil {
		t.Fatal(err)
	}
	second := []pipeline.Entry{{Time: 2, Line: []byte("z"), Labels: ls("job", "z")}}
	body, _, err := enc.encode(entryPtrs(second), lc)
	if err != nil {
		t.Fatal(err)
	}
	req := decodeBody(t, body)
	if len(req.Streams) != 1 || req.Streams[0].Labels != `{job="z"}` || len(req.Streams[0].Entries) != 1 ||
		req.Streams[0].Entries[0].Line != "z" {
		t.Fatalf("second encode = %+v", req.Streams)
	}
}

// benchEntries is a 1 MiB push of 130-byte lines over a few streams, the
// shape of a busy host's batch.
func benchEntries() []pipeline.Entry {
	const lineLen, total, streams = 130, 1 << 20, 8
	labels := make([]pipeline.Labels, streams)
	for i := range labels {
		labels[i] = ls("filename", fmt.Sprintf("/var/log/app%d.log", i), "job", "varlogs")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/api/v1/users", "/api/v1/orders", "/healthz", "/login", "/static/app.js"}
	var entries []pipeline.Entry
	now := time.Now().UnixNano()
	for i := 0; len(entries)*lineLen < total; i++ {
		l := fmt.Appendf(nil, "ts=%d level=info method=GET path=%s/%d status=200 dur=%dus trace=%016x%016x",
			now+int64(i), paths[rng.IntN(len(paths))], rng.IntN(100000), rng.IntN(50000), rng.Uint64(), rng.Uint64())
		l = append(l, bytes.Repeat([]byte(" "), lineLen)...)[:lineLen]
		// Runs of 64 entries per stream, like batches from several files.
		entries = append(entries, pipeline.Entry{Time: now + int64(i), Line: l, Labels: labels[(i/64)%streams]})
	}
	return entries
}

func BenchmarkEncode(b *testing.B) {
	entries := benchEntries()
	lc := newLabelCache(ls("host", "h1"))
	b.SetBytes(int64(len(entries) * len(entries[0].Line)))
	b.ReportAllocs()
	var compressed int
	for b.Loop() {
		enc := getEncoder()
		body, _, err := enc.encode(entryPtrs(entries), lc)
		if err != nil {
			b.Fatal(err)
		}
		compressed = len(body)
		enc.put()
	}
	b.ReportMetric(float64(compressed), "body-bytes")
	b.ReportMetric(float64(len(entries)), "entries")
}

// ls builds a label set from name, value pairs given in sorted order.
func ls(kv ...string) pipeline.Labels {
	out := make(pipeline.Labels, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, pipeline.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// snappyDecodeStrict decodes standard Snappy only, as Loki's decoder does.
func snappyDecodeStrict(b []byte) ([]byte, error) { return snappy.DecodeStrict(nil, b) }

// BenchmarkPush is the whole path for 1 MiB of 130-byte lines: Consume,
// batching, encoding, the HTTP request to a loopback server that reads and
// discards the body, and settlement.
func BenchmarkPush(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s, err := buildSink("url: " + srv.URL + "\nbatchwait: 0s\nbatchsize: 2097152\n")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close(context.Background()) }()
	entries := benchEntries()
	done := make(chan struct{}, 1)
	b.SetBytes(int64(len(entries) * len(entries[0].Line)))
	b.ReportAllocs()
	for b.Loop() {
		batch := pipeline.NewBatch(len(entries), func() { done <- struct{}{} })
		batch.Entries = append(batch.Entries, entries...)
		s.Consume(batch)
		batch.Settle()
		<-done
	}
}

// entryPtrs points at each entry, as the sink's batches do.
func entryPtrs(es []pipeline.Entry) []*pipeline.Entry {
	out := make([]*pipeline.Entry, len(es))
	for i := range es {
		out[i] = &es[i]
	}
	return out
}

// The hand-written protobuf must decode, with Loki's own types, to exactly
// what was encoded: timestamps before 1970 and on whole seconds, empty
// lines, structured metadata (with invalid UTF-8 repaired), many streams.
func TestEncodeDecodesWithLokiTypes(t *testing.T) {
	var entries []pipeline.Entry
	times := []int64{0, 1, -1, -1_500_000_000, 1e9, 1_764_000_000_123_456_789, -62135596800 * 1e9 / 1e9}
	for i := 0; i < 300; i++ {
		e := pipeline.Entry{
			Time:   times[i%len(times)] + int64(i),
			Line:   []byte(strings.Repeat("x", i%7)),
			Labels: pipeline.Labels{{Name: "job", Value: fmt.Sprint("j", i%5)}},
		}
		if i%3 == 0 {
			e.Metadata = pipeline.Labels{{Name: "trace", Value: fmt.Sprint("t", i)}, {Name: "bad", Value: "a\xffb"}}
		}
		entries = append(entries, e)
	}
	enc := getEncoder()
	defer enc.put()
	body, _, err := enc.encode(entryPtrs(entries), newLabelCache(nil))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	var req push.PushRequest
	if err := req.Unmarshal(raw); err != nil {
		t.Fatalf("Loki's types cannot decode the request: %v", err)
	}
	got := 0
	for _, st := range req.Streams {
		for _, pe := range st.Entries {
			var i int
			if _, err := fmt.Sscan(st.Labels[len(`{job="j`):len(`{job="j`)+1], &i); err != nil {
				t.Fatalf("stream %q", st.Labels)
			}
			got++
			found := false
			for k := range entries {
				e := entries[k]
				if e.Time == pe.Timestamp.UnixNano() && string(e.Line) == pe.Line && e.Labels[0].Value == fmt.Sprint("j", i) {
					found = true
					if len(e.Metadata) != len(pe.StructuredMetadata) {
						t.Fatalf("metadata %v, want %v", pe.StructuredMetadata, e.Metadata)
					}
					if len(e.Metadata) > 0 && (pe.StructuredMetadata[1].Value != "a\uFFFDb" || pe.StructuredMetadata[0].Value != e.Metadata[0].Value) {
						t.Fatalf("metadata %v", pe.StructuredMetadata)
					}
					break
				}
			}
			if !found {
				t.Fatalf("decoded entry %v %q in %s was never encoded", pe.Timestamp, pe.Line, st.Labels)
			}
		}
	}
	if got != len(entries) {
		t.Fatalf("decoded %d entries, want %d", got, len(entries))
	}
}
