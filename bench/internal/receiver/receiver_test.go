package receiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafana/loki/pkg/push"
	"github.com/klauspost/compress/snappy"

	"github.com/vigilhq/vigil/bench/internal/loggen"
)

type seen struct {
	labels, line string
	ts           int64
}

func collect(dst *[]seen) Visitor {
	return func(labels, line []byte, ts int64) {
		*dst = append(*dst, seen{string(labels), string(line), ts})
	}
}

func randomRequest(r *rand.Rand) push.PushRequest {
	var req push.PushRequest
	for s := range 1 + r.IntN(5) {
		st := push.Stream{Labels: fmt.Sprintf(`{job="varlogs", filename="/var/log/app%d.log"}`, s), Hash: r.Uint64()}
		for range r.IntN(50) {
			e := push.Entry{
				Timestamp: time.Unix(r.Int64N(4e9), r.Int64N(1e9)),
				Line:      fmt.Sprintf("line %d t=%d", r.Int(), r.Int64()),
			}
			if r.IntN(3) == 0 {
				e.StructuredMetadata = push.LabelsAdapter{{Name: "trace_id", Value: strconv.Itoa(r.Int())}}
			}
			st.Entries = append(st.Entries, e)
		}
		req.Streams = append(req.Streams, st)
	}
	if r.IntN(2) == 0 {
		req.Format = "loki"
	}
	return req
}

// TestWalkPushMatchesLokiDecoder checks the allocation-free walker against
// the Loki push package's own encoder and decoder on random requests.
func TestWalkPushMatchesLokiDecoder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for i := range 200 {
		req := randomRequest(r)
		buf, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var want []seen
		var back push.PushRequest
		if err := back.Unmarshal(buf); err != nil {
			t.Fatal(err)
		}
		for _, s := range back.Streams {
			for _, e := range s.Entries {
				want = append(want, seen{s.Labels, e.Line, e.Timestamp.UnixNano()})
			}
		}
		var got []seen
		streams, err := WalkPush(buf, collect(&got))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if streams != len(req.Streams) {
			t.Fatalf("request %d: %d streams, want %d", i, streams, len(req.Streams))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("request %d: walker saw\n%v\nLoki's decoder saw\n%v", i, got, want)
		}
	}
}

func appendField(b []byte, num int, payload []byte) []byte {
	b = binary.AppendUvarint(b, uint64(num)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(payload)))
	return append(b, payload...)
}

func TestWalkPushLabelsAfterEntries(t *testing.T) {
	var ts []byte
	ts = binary.AppendUvarint(ts, 1<<3|0)
	ts = binary.AppendUvarint(ts, 1700000000)
	ts = binary.AppendUvarint(ts, 2<<3|0)
	ts = binary.AppendUvarint(ts, 5)
	entry := appendField(appendField(nil, 1, ts), 2, []byte("hello"))
	stream := appendField(nil, 2, entry)
	stream = appendField(stream, 1, []byte(`{a="b"}`))
	req := appendField(nil, 1, stream)
	var got []seen
	if _, err := WalkPush(req, collect(&got)); err != nil {
		t.Fatal(err)
	}
	want := []seen{{`{a="b"}`, "hello", 1700000000*1e9 + 5}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestWalkPushRejectsMalformed(t *testing.T) {
	good, err := (&push.PushRequest{Streams: []push.Stream{{Labels: `{a="b"}`, Entries: []push.Entry{{Timestamp: time.Unix(1, 0), Line: "x"}}}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string][]byte{
		"truncated":         good[:len(good)-1],
		"length overflow":   {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"field zero":        {0x00, 0x01},
		"streams as varint": {0x08, 0x01},
		"bad wire type":     {0x0f},
	}
	for name, buf := range tests {
		if _, err := WalkPush(buf, func(_, _ []byte, _ int64) {}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestWalkJSON(t *testing.T) {
	body := `{"streams":[
		{"stream":{"job":"varlogs","filename":"/var/log/a.log"},"values":[["1700000000000000001","first"],["1700000000000000002","second",{"trace_id":"abc"}]]},
		{"stream":{},"values":[["3","\u00e9t\u00e9 \"quoted\""]]}]}`
	var got []seen
	streams, err := WalkJSON([]byte(body), collect(&got))
	if err != nil {
		t.Fatal(err)
	}
	want := []seen{
		{`{filename="/var/log/a.log", job="varlogs"}`, "first", 1700000000000000001},
		{`{filename="/var/log/a.log", job="varlogs"}`, "second", 1700000000000000002},
		{`{}`, `été "quoted"`, 3},
	}
	if streams != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %d streams %v, want 2 %v", streams, got, want)
	}
	for name, bad := range map[string]string{
		"not json":       `{"streams":`,
		"number ts":      `{"streams":[{"stream":{},"values":[[1,"x"]]}]}`,
		"bad ts":         `{"streams":[{"stream":{},"values":[["x1","x"]]}]}`,
		"one element":    `{"streams":[{"stream":{},"values":[["1"]]}]}`,
		"bad metadata":   `{"streams":[{"stream":{},"values":[["1","x",[1]]]}]}`,
		"four elements":  `{"streams":[{"stream":{},"values":[["1","x",{},{}]]}]}`,
		"line as number": `{"streams":[{"stream":{},"values":[["1",2]]}]}`,
	} {
		if _, err := WalkJSON([]byte(bad), func(_, _ []byte, _ int64) {}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// fixedClock makes latencies exact: every ack happens at the same instant.
var ackTime = time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return ackTime }

func protoBody(t *testing.T, req *push.PushRequest) []byte {
	t.Helper()
	buf, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, buf)
}

func post(t *testing.T, url, tenant, contentType, encoding string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+PushPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// genLine is a generator line written `ago` before the ack.
func genLine(g *loggen.Generator, ago time.Duration) string {
	return string(g.AppendLine(nil, ackTime.Add(-ago)))
}

func TestReceiverCountsProtobufAndJSON(t *testing.T) {
	var trace bytes.Buffer
	rcv := New(Options{Now: fixedClock, Trace: &trace})
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	g := loggen.NewGenerator(1)

	// Tenant rentguy: two streams, 3 lines, 100 ms old.
	var wantBytes int64
	req := push.PushRequest{Streams: []push.Stream{
		{Labels: `{job="a"}`, Entries: []push.Entry{{Timestamp: ackTime, Line: genLine(g, 100*time.Millisecond)}, {Timestamp: ackTime, Line: genLine(g, 100*time.Millisecond)}}},
		{Labels: `{job="b"}`, Entries: []push.Entry{{Timestamp: ackTime, Line: genLine(g, 100*time.Millisecond)}}},
	}}
	for _, s := range req.Streams {
		for _, e := range s.Entries {
			wantBytes += int64(len(e.Line))
		}
	}
	if resp := post(t, srv.URL, "rentguy", "application/x-protobuf", "", protoBody(t, &req)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("protobuf push: status %d", resp.StatusCode)
	}
	// The same streams again: no new streams.
	if resp := post(t, srv.URL, "rentguy", "application/x-protobuf", "", protoBody(t, &req)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("protobuf push: status %d", resp.StatusCode)
	}

	// No tenant, JSON, gzipped: one stream with 2 lines, 1 s old, and one
	// line without a timestamp token.
	l1, l2 := genLine(g, time.Second), genLine(g, time.Second)
	jsonBody, _ := json.Marshal(map[string]any{"streams": []any{
		map[string]any{"stream": map[string]string{"job": "a"}, "values": [][]string{
			{"1", l1}, {"2", l2}, {"3", "no token here"},
		}},
	}})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(jsonBody)
	zw.Close()
	if resp := post(t, srv.URL, "", "application/json; charset=utf-8", "gzip", gz.Bytes()); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("json push: status %d", resp.StatusCode)
	}

	st := rcv.Stats()
	jsonBytes := int64(len(l1) + len(l2) + len("no token here"))
	if st.Requests != 3 || st.Lines != 9 || st.Bytes != 2*wantBytes+jsonBytes {
		t.Errorf("requests/lines/bytes = %d/%d/%d, want 3/9/%d", st.Requests, st.Lines, st.Bytes, 2*wantBytes+jsonBytes)
	}
	// {job="a"} under two tenants is two streams.
	if st.Streams != 3 {
		t.Errorf("streams = %d, want 3", st.Streams)
	}
	wantTenants := map[string]TenantStats{
		"rentguy": {Requests: 2, Lines: 6, Bytes: 2 * wantBytes, Streams: 2},
		NoTenant:  {Requests: 1, Lines: 3, Bytes: jsonBytes, Streams: 1},
	}
	if fmt.Sprint(st.Tenants) != fmt.Sprint(wantTenants) {
		t.Errorf("tenants = %v, want %v", st.Tenants, wantTenants)
	}
	if rcv.Lines() != 9 {
		t.Errorf("Lines() = %d, want 9", rcv.Lines())
	}
	lat := st.Latency
	if lat.Count != 8 || lat.Unparsed != 1 {
		t.Errorf("latency count/unparsed = %d/%d, want 8/1", lat.Count, lat.Unparsed)
	}
	if lat.MinMs != 100 || lat.MaxMs != 1000 {
		t.Errorf("latency min/max = %v/%v ms, want 100/1000", lat.MinMs, lat.MaxMs)
	}
	// 6 of 8 samples are 100 ms: the median is 100 ms within the
	// histogram's 1.6%, the p99 is the 1 s pair.
	if lat.P50Ms < 100 || lat.P50Ms > 101.6 || lat.P99Ms != 1000 {
		t.Errorf("latency p50/p99 = %v/%v ms, want ~100/1000", lat.P50Ms, lat.P99Ms)
	}

	traceLines := strings.Split(strings.TrimSpace(trace.String()), "\n")
	if len(traceLines) != 3 {
		t.Fatalf("trace has %d lines, want one per accepted push:\n%s", len(traceLines), trace.String())
	}
	wantPrefix := fmt.Sprintf("%d,rentguy,2,3,%d,", ackTime.UnixMilli(), wantBytes)
	if !strings.HasPrefix(traceLines[0], wantPrefix) || !strings.HasSuffix(traceLines[0], ",100.000,100.000") {
		t.Errorf("trace line %q, want %s...,100.000,100.000", traceLines[0], wantPrefix)
	}
	if !strings.HasSuffix(traceLines[2], ",1000.000,1000.000") || !strings.Contains(traceLines[2], ","+NoTenant+",1,3,") {
		t.Errorf("trace line %q, want the JSON push without tenant", traceLines[2])
	}

	// GET /stats serves the same snapshot as JSON.
	resp, err := http.Get(srv.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var fromHTTP Stats
	if err := json.NewDecoder(resp.Body).Decode(&fromHTTP); err != nil {
		t.Fatal(err)
	}
	if fromHTTP.Lines != 9 || fromHTTP.Tenants["rentguy"].Lines != 6 || fromHTTP.Latency.P99Ms != 1000 {
		t.Errorf("/stats = %+v", fromHTTP)
	}

	resp, err = http.Post(srv.URL+"/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st := rcv.Stats(); st.Lines != 0 || st.Streams != 0 || st.Latency.Count != 0 || len(st.Tenants) != 0 {
		t.Errorf("after reset: %+v", st)
	}
}

func TestReceiverRejectsBadBodies(t *testing.T) {
	rcv := New(Options{})
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	good, _ := (&push.PushRequest{Streams: []push.Stream{{Labels: `{a="b"}`, Entries: []push.Entry{{Line: "x"}}}}}).Marshal()
	tests := []struct {
		name, ct, enc string
		body          []byte
	}{
		{"not snappy", "application/x-protobuf", "", []byte("plain text")},
		{"uncompressed protobuf", "application/x-protobuf", "", good},
		{"bad protobuf", "application/x-protobuf", "", snappy.Encode(nil, []byte{0x0a, 0x10, 0x01})},
		{"bad json", "application/json", "", []byte(`{"streams":[`)},
		{"bad gzip", "application/json", "gzip", []byte("not gzip")},
		{"unknown encoding", "application/json", "br", []byte(`{}`)},
	}
	for _, tt := range tests {
		if resp := post(t, srv.URL, "", tt.ct, tt.enc, tt.body); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", tt.name, resp.StatusCode)
		}
	}
	st := rcv.Stats()
	if st.Lines != 0 || st.Requests != 0 || st.Rejected["400"] != int64(len(tests)) {
		t.Errorf("stats after bad requests: lines %d requests %d rejected %v", st.Lines, st.Requests, st.Rejected)
	}
}

func TestReceiverBodyLimit(t *testing.T) {
	rcv := New(Options{MaxBodyBytes: 1000})
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	line := strings.Repeat("x", 600)
	small := protoBody(t, &push.PushRequest{Streams: []push.Stream{{Labels: `{a="b"}`, Entries: []push.Entry{{Line: line}}}}})
	// Compresses to a small body but decodes to more than the limit.
	big := protoBody(t, &push.PushRequest{Streams: []push.Stream{{Labels: `{a="b"}`, Entries: []push.Entry{{Line: line}, {Line: line}}}}})
	if resp := post(t, srv.URL, "", "application/x-protobuf", "", small); resp.StatusCode != http.StatusNoContent {
		t.Errorf("body under the limit: status %d", resp.StatusCode)
	}
	if resp := post(t, srv.URL, "", "application/x-protobuf", "", big); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("decoded body over the limit: status %d, want 400", resp.StatusCode)
	}
	if resp := post(t, srv.URL, "", "application/json", "", []byte(`{"streams":[]}`+strings.Repeat(" ", 2000))); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("raw body over the limit: status %d, want 400", resp.StatusCode)
	}
	if st := rcv.Stats(); st.Lines != 1 {
		t.Errorf("lines %d, want 1", st.Lines)
	}
}

func TestReceiverFaultInjection(t *testing.T) {
	rcv := New(Options{FailFirst: 2, ThrottleFirst: 1, RetryAfter: 1500 * time.Millisecond, Delay: 20 * time.Millisecond})
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	body := protoBody(t, &push.PushRequest{Streams: []push.Stream{{Labels: `{a="b"}`, Entries: []push.Entry{{Line: "x"}}}}})
	wantCodes := []int{503, 503, 429, 204, 204}
	for i, want := range wantCodes {
		start := time.Now()
		resp := post(t, srv.URL, "t1", "application/x-protobuf", "", body)
		if resp.StatusCode != want {
			t.Errorf("push %d: status %d, want %d", i, resp.StatusCode, want)
		}
		if want == 429 && resp.Header.Get("Retry-After") != "2" {
			t.Errorf("429 has Retry-After %q, want 2 (1.5s rounded up)", resp.Header.Get("Retry-After"))
		}
		if d := time.Since(start); d < 20*time.Millisecond {
			t.Errorf("push %d answered in %v, before the injected 20ms delay", i, d)
		}
	}
	st := rcv.Stats()
	if st.Lines != 2 || st.Requests != 2 || st.Rejected["503"] != 2 || st.Rejected["429"] != 1 {
		t.Errorf("lines %d requests %d rejected %v; want 2, 2, 503:2 429:1", st.Lines, st.Requests, st.Rejected)
	}
}

func TestListenAndWaitLines(t *testing.T) {
	srv, err := Listen("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	body := protoBody(t, &push.PushRequest{Streams: []push.Stream{{Labels: `{a="b"}`, Entries: []push.Entry{{Line: "x"}, {Line: "y"}}}}})
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- srv.WaitLines(ctx, 4)
	}()
	for range 2 {
		resp, err := http.Post(srv.PushURL(), "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := srv.WaitLines(ctx, 5); err == nil {
		t.Error("WaitLines(5) returned with only 4 lines received")
	}
}

func BenchmarkPushProtobuf(b *testing.B) {
	g := loggen.NewGenerator(1)
	st := push.Stream{Labels: `{job="varlogs", filename="/var/log/access.log"}`}
	now := time.Now()
	for range 8000 { // about one 1 MiB batch, Promtail's default batchsize
		st.Entries = append(st.Entries, push.Entry{Timestamp: now, Line: string(g.AppendLine(nil, now))})
	}
	buf, _ := (&push.PushRequest{Streams: []push.Stream{st}}).Marshal()
	body := snappy.Encode(nil, buf)
	rcv := New(Options{})
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, PushPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		w := httptest.NewRecorder()
		rcv.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d", w.Code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(st.Entries)), "ns/line")
}

// TestReceiverCountsLineTimed checks that entries stamped with the write
// time from their own line are told apart from entries stamped when read.
func TestReceiverCountsLineTimed(t *testing.T) {
	rcv := New(Options{Now: fixedClock})
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	g := loggen.NewGenerator(1)
	written := ackTime.Add(-50 * time.Millisecond)
	jsonLine := string(g.AppendJSONLine(nil, written))
	accessLine := string(g.AppendLine(nil, written))
	req := push.PushRequest{Streams: []push.Stream{{Labels: `{job="a"}`, Entries: []push.Entry{
		{Timestamp: written, Line: jsonLine},                           // a timestamp stage parsed ts
		{Timestamp: written, Line: accessLine},                         // same, from the access format
		{Timestamp: written.Add(time.Microsecond), Line: jsonLine},     // stamped when read
		{Timestamp: written.Add(-time.Nanosecond), Line: accessLine},   // off by one nanosecond
		{Timestamp: written, Line: "no token, so no write time known"}, // neither
	}}}}
	if resp := post(t, srv.URL, "", "application/x-protobuf", "", protoBody(t, &req)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("push: status %d", resp.StatusCode)
	}
	lat := rcv.Stats().Latency
	if lat.LineTimed != 2 || lat.Count != 4 || lat.Unparsed != 1 {
		t.Errorf("line_timed/count/unparsed = %d/%d/%d, want 2/4/1", lat.LineTimed, lat.Count, lat.Unparsed)
	}
	if lat.MinMs != 50 || lat.MaxMs != 50 {
		t.Errorf("latency min/max = %v/%v ms, want 50/50 from the JSON line's token", lat.MinMs, lat.MaxMs)
	}
}
