package processors

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pipeline"
)

func tsMustTime(t testing.TB, layout, v string) int64 {
	t.Helper()
	tm, err := time.Parse(layout, v)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UnixNano()
}

func TestTimestampFormats(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	const read = int64(42) // the time the entry was read
	year := time.Now().Year()
	tests := []struct {
		name   string
		config string
		value  string
		want   int64 // read when the value must not parse
	}{
		// The example of Promtail's docs.
		{"docs: RFC3339Nano", "format: RFC3339Nano", "2006-01-02T15:04:05.999999999-07:00",
			time.Date(2006, 1, 2, 22, 4, 5, 999999999, time.UTC).UnixNano()},
		// The documented shape of every named format.
		{"ANSIC", "format: ANSIC", "Mon Jan  2 15:04:05 2006", time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC).UnixNano()},
		{"UnixDate", "format: UnixDate", "Mon Jan  2 15:04:05 UTC 2006", time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC).UnixNano()},
		{"RubyDate", "format: RubyDate", "Mon Jan 02 15:04:05 -0700 2006", time.Date(2006, 1, 2, 22, 4, 5, 0, time.UTC).UnixNano()},
		{"RFC822", "format: RFC822", "02 Jan 06 15:04 UTC", time.Date(2006, 1, 2, 15, 4, 0, 0, time.UTC).UnixNano()},
		{"RFC822Z", "format: RFC822Z", "02 Jan 06 15:04 -0700", time.Date(2006, 1, 2, 22, 4, 0, 0, time.UTC).UnixNano()},
		{"RFC850", "format: RFC850", "Monday, 02-Jan-06 15:04:05 UTC", time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC).UnixNano()},
		{"RFC1123", "format: RFC1123", "Mon, 02 Jan 2006 15:04:05 UTC", time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC).UnixNano()},
		{"RFC1123Z", "format: RFC1123Z", "Mon, 02 Jan 2006 15:04:05 -0700", time.Date(2006, 1, 2, 22, 4, 5, 0, time.UTC).UnixNano()},
		{"RFC3339", "format: RFC3339", "2012-11-01T22:08:41-04:00", time.Date(2012, 11, 2, 2, 8, 41, 0, time.UTC).UnixNano()},
		{"RFC3339 takes fractions", "format: RFC3339", "2019-10-01T01:02:03.4Z", time.Date(2019, 10, 1, 1, 2, 3, 4e8, time.UTC).UnixNano()},
		{"RFC3339Nano without fraction", "format: RFC3339Nano", "2019-10-01T01:02:03Z", time.Date(2019, 10, 1, 1, 2, 3, 0, time.UTC).UnixNano()},
		{"RFC3339Nano, more than 9 digits", "format: RFC3339Nano", "2019-04-30T02:12:41.84435151234Z",
			time.Date(2019, 4, 30, 2, 12, 41, 844351512, time.UTC).UnixNano()},
		{"RFC3339 with a comma (time.Parse's lenient path)", "format: RFC3339", "2019-10-01T01:02:03,5Z",
			time.Date(2019, 10, 1, 1, 2, 3, 5e8, time.UTC).UnixNano()},
		{"RFC3339 ignores location", "format: RFC3339\nlocation: America/New_York", "2019-10-01T01:02:03Z",
			time.Date(2019, 10, 1, 1, 2, 3, 0, time.UTC).UnixNano()},
		// The documented Unix examples.
		{"Unix", "format: Unix", "1562708916", time.Date(2019, 7, 9, 21, 48, 36, 0, time.UTC).UnixNano()},
		{"Unix with fraction", "format: Unix", "1562708916.000000123", time.Date(2019, 7, 9, 21, 48, 36, 123, time.UTC).UnixNano()},
		{"Unix with ms fraction", "format: Unix", "1562708916.414", time.Date(2019, 7, 9, 21, 48, 36, 414e6, time.UTC).UnixNano()},
		{"UnixMs", "format: UnixMs", "1562708916414", time.Date(2019, 7, 9, 21, 48, 36, 414e6, time.UTC).UnixNano()},
		{"UnixUs", "format: UnixUs", "1562708916414123", time.Date(2019, 7, 9, 21, 48, 36, 414123e3, time.UTC).UnixNano()},
		{"UnixNs", "format: UnixNs", "1562708916000000123", time.Date(2019, 7, 9, 21, 48, 36, 123, time.UTC).UnixNano()},
		// Go layouts.
		{"layout with year", "format: '2006-01-02'", "2009-01-01", time.Date(2009, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()},
		{"layout with location", "format: '2006-01-02 15:04:05'\nlocation: America/New_York", "2019-07-22 20:29:32",
			time.Date(2019, 7, 22, 20, 29, 32, 0, ny).UnixNano()},
		{"layout without year takes this year", "format: 'Jan 02 15:04:05'", "Jul 15 01:02:03",
			time.Date(year, 7, 15, 1, 2, 3, 0, time.UTC).UnixNano()},
		{"layout with fraction and 12-hour clock", "format: '02/01/2006 03:04:05.000 PM'", "31/12/2021 11:59:58.250 PM",
			time.Date(2021, 12, 31, 23, 59, 58, 25e7, time.UTC).UnixNano()},
		// Failures keep the read time (action_on_failure: skip).
		{"garbage", "format: RFC3339Nano", "yesterday", read},
		{"RFC3339 with a bad day", "format: RFC3339", "2019-02-29T01:02:03Z", read},
		{"RFC3339 without zone", "format: RFC3339", "2019-02-20T01:02:03", read},
		{"Unix with two dots", "format: Unix", "1.2.3", read},
		{"UnixMs with a fraction", "format: UnixMs", "1562708916414.5", read},
		{"UnixMs overflowing int64 nanoseconds", "format: UnixMs", "9223372036854775", read},
		{"before 1678 does not fit in nanoseconds", "format: RFC3339", "1000-01-01T00:00:00Z", read},
		{"year in a layout without one", "format: 'Jan 02 15:04:05'", "Jul 15 2019 01:02:03", read},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newProcHarness(t, "timestamp", "source: ts\naction_on_failure: skip\n"+tt.config)
			out := h.run(pipeline.Entry{Time: read, Line: []byte("x"), Extracted: fieldsOf("ts", tt.value)})
			if out[0].Time != tt.want {
				t.Errorf("time = %s, want %s", time.Unix(0, out[0].Time).UTC(), time.Unix(0, tt.want).UTC())
			}
			wantErr := 0.0
			if tt.want == read {
				wantErr = 1
			}
			if got := h.errors("timestamp_parse"); got != wantErr {
				t.Errorf("timestamp_parse errors = %v, want %v", got, wantErr)
			}
		})
	}
}

func TestTimestampFallbackFormats(t *testing.T) {
	h := newProcHarness(t, "timestamp", `
source: ts
format: UnixMs
fallback_formats: ["2006-01-02 03:04:05.000000000 +0000 UTC", RFC3339]
`)
	out := h.run(
		pipeline.Entry{Extracted: fieldsOf("ts", "1562708916414")},
		pipeline.Entry{Extracted: fieldsOf("ts", "2012-11-01T22:08:41-04:00")},
		pipeline.Entry{Extracted: fieldsOf("ts", "2012-11-01 10:08:41.000000001 +0000 UTC")},
	)
	want := []int64{
		time.Date(2019, 7, 9, 21, 48, 36, 414e6, time.UTC).UnixNano(),
		time.Date(2012, 11, 2, 2, 8, 41, 0, time.UTC).UnixNano(),
		time.Date(2012, 11, 1, 10, 8, 41, 1, time.UTC).UnixNano(),
	}
	for i := range want {
		if out[i].Time != want[i] {
			t.Errorf("entry %d: time = %d, want %d", i, out[i].Time, want[i])
		}
	}
}

func TestTimestampWithoutYearAroundNewYear(t *testing.T) {
	tests := []struct {
		now   time.Time
		value string
		want  time.Time
	}{
		{time.Date(2024, 1, 1, 0, 0, 5, 0, time.UTC), "Dec 31 23:59:59", time.Date(2023, 12, 31, 23, 59, 59, 0, time.UTC)},
		{time.Date(2023, 12, 31, 23, 59, 59, 0, time.UTC), "Jan 01 00:00:01", time.Date(2024, 1, 1, 0, 0, 1, 0, time.UTC)},
		{time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), "Jan 01 00:00:01", time.Date(2024, 1, 1, 0, 0, 1, 0, time.UTC)},
	}
	for _, tt := range tests {
		h := newProcHarness(t, "timestamp", "source: ts\nformat: 'Jan 02 15:04:05'")
		h.proc.(*timestampStage).now = func() time.Time { return tt.now }
		out := h.run(pipeline.Entry{Extracted: fieldsOf("ts", tt.value)})
		if got := time.Unix(0, out[0].Time).UTC(); !got.Equal(tt.want) {
			t.Errorf("now %s, %q: got %s, want %s", tt.now, tt.value, got, tt.want)
		}
	}
}

func TestTimestampActionOnFailure(t *testing.T) {
	type in struct {
		labels pipeline.Labels
		tenant string
		ts     string // "" for no extracted value
	}
	at := func(v string) int64 { return tsMustTime(t, time.RFC3339Nano, v) }
	const read = int64(1e9)
	one, two := labelsOf("filename", "/1.log"), labelsOf("filename", "/2.log")
	tests := []struct {
		name   string
		action string
		in     []in
		want   []int64
	}{
		{
			name:   "parsed times are kept",
			action: "fudge",
			in:     []in{{ts: "2019-10-01T01:02:03.4Z"}, {ts: "2019-10-01T01:02:03.5Z"}},
			want:   []int64{at("2019-10-01T01:02:03.4Z"), at("2019-10-01T01:02:03.5Z")},
		},
		{
			name:   "fudge adds 1ns to the last parsed time",
			action: "fudge",
			in:     []in{{ts: "2019-10-01T01:02:03.4Z"}, {}, {ts: "not a time"}},
			want:   []int64{at("2019-10-01T01:02:03.4Z"), at("2019-10-01T01:02:03.400000001Z"), at("2019-10-01T01:02:03.400000002Z")},
		},
		{
			name:   "fudge is per stream",
			action: "fudge",
			in: []in{
				{labels: one, ts: "2019-10-01T01:02:03.4Z"}, {labels: two, ts: "2019-10-01T01:02:03.8Z"},
				{labels: one}, {labels: two}, {labels: one},
			},
			want: []int64{
				at("2019-10-01T01:02:03.4Z"), at("2019-10-01T01:02:03.8Z"),
				at("2019-10-01T01:02:03.400000001Z"), at("2019-10-01T01:02:03.800000001Z"), at("2019-10-01T01:02:03.400000002Z"),
			},
		},
		{
			name:   "fudge tells tenants apart",
			action: "fudge",
			in:     []in{{tenant: "a", ts: "2019-10-01T01:02:03.4Z"}, {tenant: "b"}, {tenant: "a"}},
			want:   []int64{at("2019-10-01T01:02:03.4Z"), read, at("2019-10-01T01:02:03.400000001Z")},
		},
		{
			name:   "fudge without a known time keeps the read time",
			action: "fudge",
			in:     []in{{labels: one, ts: "2019-10-01T01:02:03.4Z"}, {labels: two}},
			want:   []int64{at("2019-10-01T01:02:03.4Z"), read},
		},
		{
			name:   "skip keeps the read time",
			action: "skip",
			in:     []in{{ts: "2019-10-01T01:02:03.4Z"}, {}},
			want:   []int64{at("2019-10-01T01:02:03.4Z"), read},
		},
		{
			name:   "default is fudge",
			action: "",
			in:     []in{{ts: "2019-10-01T01:02:03.4Z"}, {}},
			want:   []int64{at("2019-10-01T01:02:03.4Z"), at("2019-10-01T01:02:03.400000001Z")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := "source: time\nformat: RFC3339Nano\n"
			if tt.action != "" {
				cfg += "action_on_failure: " + tt.action
			}
			// One entry per batch, as Promtail's tests feed them, and all in
			// one batch: the results must be the same.
			for _, split := range []bool{true, false} {
				h := newProcHarness(t, "timestamp", cfg)
				var got []int64
				var entries []pipeline.Entry
				for _, e := range tt.in {
					en := pipeline.Entry{Time: read, Labels: e.labels, Tenant: e.tenant}
					if e.ts != "" {
						en.Extracted = fieldsOf("time", e.ts)
					}
					entries = append(entries, en)
				}
				if split {
					for _, e := range entries {
						got = append(got, h.run(e)[0].Time)
					}
				} else {
					for _, e := range h.run(entries...) {
						got = append(got, e.Time)
					}
				}
				for i := range tt.want {
					if got[i] != tt.want[i] {
						t.Errorf("split=%v entry %d: time = %d, want %d", split, i, got[i], tt.want[i])
					}
				}
			}
		})
	}
}

func TestTimestampCountsFailures(t *testing.T) {
	h := newProcHarness(t, "timestamp", "source: ts\nformat: RFC3339")
	out := h.run(
		pipeline.Entry{Time: 7, Line: []byte("a"), Extracted: fieldsOf("other", "x")},
		pipeline.Entry{Time: 8, Line: []byte("b"), Extracted: fieldsOf("ts", "nope")},
	)
	if h.errors("missing_source") != 1 || h.errors("timestamp_parse") != 1 {
		t.Errorf("errors: missing_source=%v timestamp_parse=%v, want 1 and 1", h.errors("missing_source"), h.errors("timestamp_parse"))
	}
	if out[0].Time != 7 || out[1].Time != 8 || string(out[0].Line) != "a" || string(out[1].Line) != "b" {
		t.Errorf("failed entries changed: %+v", out)
	}
}

func TestTimestampReadsLabels(t *testing.T) {
	// Promtail's extracted map holds the labels too.
	h := newProcHarness(t, "timestamp", "source: ts\nformat: Unix")
	out := h.run(pipeline.Entry{Labels: labelsOf("ts", "1562708916")})
	if want := int64(1562708916e9); out[0].Time != want {
		t.Errorf("time = %d, want %d", out[0].Time, want)
	}
}

func TestTimestampStreamsAreBounded(t *testing.T) {
	h := newProcHarness(t, "timestamp", "source: ts\nformat: UnixNs")
	s := h.proc.(*timestampStage)
	for i := 0; i < maxTimestampStreams+50; i++ {
		h.run(pipeline.Entry{Labels: labelsOf("n", strconv.Itoa(i)), Extracted: fieldsOf("ts", strconv.Itoa(1000+i))})
	}
	if len(s.streams.m) != maxTimestampStreams {
		t.Fatalf("remembers %d streams, want %d", len(s.streams.m), maxTimestampStreams)
	}
	// The oldest streams were forgotten, the newest are still fudged.
	out := h.run(pipeline.Entry{Time: 5, Labels: labelsOf("n", "0")}, pipeline.Entry{Time: 5, Labels: labelsOf("n", strconv.Itoa(maxTimestampStreams+49))})
	if out[0].Time != 5 {
		t.Errorf("forgotten stream fudged to %d", out[0].Time)
	}
	if want := int64(1000 + maxTimestampStreams + 49 + 1); out[1].Time != want {
		t.Errorf("recent stream fudged to %d, want %d", out[1].Time, want)
	}
}

func TestTimestampConfigErrors(t *testing.T) {
	tests := []struct {
		name, config string
		line, col    int
		msg          string
	}{
		{"missing source", "format: RFC3339", 1, 1, "source is required"},
		{"missing format", "source: ts", 1, 1, "format is required"},
		{"unknown key", "source: ts\nformat: RFC3339\nfromat: x", 3, 1, `unknown key "fromat"`},
		{"bad location", "source: ts\nformat: '2006-01-02'\nlocation: Mars/Olympus", 3, 11, "invalid location"},
		{"bad action", "source: ts\nformat: RFC3339\naction_on_failure: drop", 3, 20, "invalid action_on_failure"},
		{"format without elements", "source: ts\nformat: iso", 2, 9, "neither a named format"},
		{"misspelt named format", "source: ts\nformat: rfc3339", 2, 9, `did you mean "RFC3339"`},
		{"bad fallback", "source: ts\nformat: RFC3339\nfallback_formats: [Unix, UnixSeconds]", 3, 26, "fallback format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce := procConfigErr(t, "timestamp", tt.config)
			if ce.Line != tt.line || ce.Column != tt.col || !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("error = %v, want x.yaml:%d:%d: ...%s...", ce, tt.line, tt.col, tt.msg)
			}
		})
	}
}

func TestTimestampRFC3339NanoDoesNotAllocate(t *testing.T) {
	h := newProcHarness(t, "timestamp", "source: ts\nformat: RFC3339Nano")
	in := []pipeline.Entry{
		{Labels: labelsOf("job", "a"), Extracted: fieldsOf("ts", "2024-05-01T10:00:00.123456789Z")},
		{Labels: labelsOf("job", "a"), Extracted: fieldsOf("ts", "2024-05-01T10:00:00.5+02:00")},
		{Labels: labelsOf("job", "b"), Extracted: fieldsOf("ts", "2024-05-01T10:00:01Z")},
	}
	batch := pipeline.NewBatch(len(in), nil)
	batch.Entries = append(batch.Entries, in...)
	h.proc.Process(batch) // learn the streams
	allocs := testing.AllocsPerRun(100, func() {
		batch.Entries = append(batch.Entries[:0], in...)
		h.proc.Process(batch)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per batch", allocs)
	}
}

// referenceTimestamp parses v the way Promtail's timestamp formats are
// documented to, on top of the time package, for comparison with the
// stage's own parsers. ok is false where Promtail fails, and where the
// time does not fit in int64 nanoseconds (vigil then fails on purpose).
func referenceTimestamp(format, v string, loc *time.Location, now time.Time) (int64, bool) {
	var (
		t   time.Time
		err error
	)
	named := map[string]string{
		"ANSIC": time.ANSIC, "UnixDate": time.UnixDate, "RubyDate": time.RubyDate, "RFC822": time.RFC822,
		"RFC822Z": time.RFC822Z, "RFC850": time.RFC850, "RFC1123": time.RFC1123, "RFC1123Z": time.RFC1123Z,
		"RFC3339": time.RFC3339, "RFC3339Nano": time.RFC3339Nano,
	}
	scaled := func(unit int64) (int64, bool) {
		i, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		r := i * unit
		if unit != 0 && r/unit != i {
			return 0, false // overflow: vigil fails where Promtail wraps around
		}
		return r, true
	}
	switch {
	case named[format] != "":
		t, err = time.Parse(named[format], v)
	case format == "Unix":
		parts := strings.Split(v, ".")
		switch len(parts) {
		case 1:
			var sec int64
			sec, err = strconv.ParseInt(v, 10, 64)
			t = time.Unix(sec, 0)
		case 2:
			sec, err1 := strconv.ParseInt(parts[0], 10, 64)
			frac, err2 := strconv.ParseInt(parts[1], 10, 64)
			if err1 != nil || err2 != nil {
				return 0, false
			}
			t = time.Unix(sec, int64(float64(frac)*math.Pow(10, float64(9-len(parts[1])))))
		default:
			return 0, false
		}
	case format == "UnixMs":
		return scaled(1e6)
	case format == "UnixUs":
		return scaled(1e3)
	case format == "UnixNs":
		return scaled(1)
	default:
		if loc != nil {
			t, err = time.ParseInLocation(format, v, loc)
		} else {
			t, err = time.Parse(format, v)
		}
		if err == nil && !strings.Contains(format, "06") {
			if t.Year() != 0 {
				return 0, false
			}
			switch {
			case t.Month() == 12 && now.Month() == 1:
				t = t.AddDate(now.Year()-1, 0, 0)
			case t.Month() == 1 && now.Month() == 12:
				t = t.AddDate(now.Year()+1, 0, 0)
			default:
				t = t.AddDate(now.Year(), 0, 0)
			}
		}
	}
	if err != nil {
		return 0, false
	}
	if t.Before(time.Unix(0, math.MinInt64)) || t.After(time.Unix(0, math.MaxInt64)) {
		return 0, false
	}
	return t.UnixNano(), true
}

var fuzzTimestampFormats = []string{
	"RFC3339", "RFC3339Nano", "Unix", "UnixMs", "UnixUs", "UnixNs", "ANSIC", "RFC1123Z",
	"2006-01-02 15:04:05.000", "Jan _2 15:04:05", "02/Jan/2006:15:04:05 -0700",
}

// persistentTSFormats keep their state (the RFC 3339 day cache) from one
// checked value to the next, as the stage's do.
var persistentTSFormats = map[string]*tsFormat{}

func checkTimestampAgainstReference(t *testing.T, v string) {
	now := time.Date(2024, 12, 31, 12, 0, 0, 0, time.UTC)
	for _, format := range fuzzTimestampFormats {
		fresh, err := newTSFormat(format, nil)
		if err != nil {
			t.Fatal(err)
		}
		kept := persistentTSFormats[format]
		if kept == nil {
			kept = &fresh
			persistentTSFormats[format] = kept
		}
		want, wantOK := referenceTimestamp(format, v, nil, now)
		for _, f := range []*tsFormat{&fresh, kept} {
			got, gotOK := f.parse(v, now)
			if gotOK != wantOK || got != want {
				t.Fatalf("format %s, value %q: got (%d, %v), want (%d, %v)", format, v, got, gotOK, want, wantOK)
			}
		}
	}
	// The hand-written RFC 3339 parser must never accept what time.Parse
	// rejects, nor disagree with it.
	if sec, nsec, ok := parseRFC3339Fast(v); ok {
		tm, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			t.Fatalf("fast RFC3339 parser accepted %q, time.Parse rejects it: %v", v, err)
		}
		if tm.Unix() != sec || int64(tm.Nanosecond()) != nsec {
			t.Fatalf("fast RFC3339 parser: %q = %d.%09d, time.Parse says %d.%09d", v, sec, nsec, tm.Unix(), tm.Nanosecond())
		}
	}
}

var timestampSeeds = []string{
	"2006-01-02T15:04:05.999999999-07:00", "2019-10-01T01:02:03Z", "2019-10-01T01:02:03.4+14:00",
	"0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z",
	"2019-10-01T01:02:03,5Z", "2019-10-01t01:02:03Z", "2019-10-01T24:00:00Z", "2019-10-01T01:02:03+24:00",
	"2019-10-01T1:02:03Z", "1562708916", "1562708916.000000123", "1562708916.0000001234", "-1.5", "1.-5",
	"+1562708916", "9223372036854775807", "-9223372036854775808", "9223372036.854775807", "1.2.3", "",
	"Mon Jan  2 15:04:05 2006", "Mon, 02 Jan 2006 15:04:05 -0700", "2006-01-02 15:04:05.000", "Dec 31 23:59:59",
	"Jan  1 00:00:00", "Feb 29 12:00:00", "02/Jan/2006:15:04:05 -0700", "1562708916414", "1562708916414123",
}

func TestTimestampAgainstReference(t *testing.T) {
	for _, v := range timestampSeeds {
		checkTimestampAgainstReference(t, v)
	}
}

// FuzzTimestamp checks the stage's parsers against time.Parse-based
// reference parsing for every kind of format, and that the stage never
// panics on any value.
func FuzzTimestamp(f *testing.F) {
	for _, v := range timestampSeeds {
		f.Add(v)
	}
	h := newProcHarness(f, "timestamp", "source: ts\nformat: RFC3339Nano\nfallback_formats: [Unix, 'Jan _2 15:04:05']")
	batch := pipeline.NewBatch(1, nil)
	f.Fuzz(func(t *testing.T, v string) {
		checkTimestampAgainstReference(t, v)
		batch.Entries = append(batch.Entries[:0], pipeline.Entry{Time: 1, Extracted: fieldsOf("ts", v)})
		h.proc.Process(batch)
	})
}

func TestParseRFC3339FastRange(t *testing.T) {
	// Every day of a few years, at odd times and offsets, against time.Parse,
	// with the day cache warm (same day) and cold (a new day).
	start := time.Date(1969, 12, 25, 0, 0, 0, 0, time.UTC)
	var dc rfc3339DayCache
	for d := 0; d < 3*366; d += 1 {
		for _, off := range []string{"Z", "+05:30", "-11:59", "Z"} {
			tm := start.AddDate(0, 0, d).Add(time.Duration(d*7919) * time.Second)
			v := tm.Format("2006-01-02T15:04:05.000000") + off
			sec, nsec, ok := dc.parse(v)
			want, err := time.Parse(time.RFC3339Nano, v)
			if !ok || err != nil || want.Unix() != sec || int64(want.Nanosecond()) != nsec {
				t.Fatalf("%q: fast (%d, %d, %v), time.Parse (%v, %v)", v, sec, nsec, ok, want, err)
			}
		}
	}
}

func BenchmarkTimestamp(b *testing.B) {
	for _, bc := range []struct{ format, value string }{
		{"RFC3339Nano", "2024-05-01T10:00:00.123456789Z"},
		{"RFC3339Nano", "2024-05-01T10:00:00.123+02:00"},
		{"Unix", "1714557600.123"},
		{"UnixMs", "1714557600123"},
		{"'2006-01-02 15:04:05.000'", "2024-05-01 10:00:00.123"},
	} {
		b.Run(fmt.Sprintf("%s/%s", strings.Trim(bc.format, "'"), bc.value), func(b *testing.B) {
			h := newProcHarness(b, "timestamp", "source: ts\nformat: "+bc.format)
			const n = 256
			batch := pipeline.NewBatch(n, nil)
			base := labelsOf("job", "app", "level", "info")
			for i := 0; i < n; i++ {
				batch.Entries = append(batch.Entries, pipeline.Entry{Labels: base, Extracted: fieldsOf("level", "info", "ts", bc.value)})
			}
			benchStageBatches(b, h.proc, batch)
		})
	}
}

func BenchmarkParseRFC3339Fast(b *testing.B) {
	var f tsFormat
	f.kind = tsRFC3339
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, ok := f.parse("2024-05-01T10:00:00.123456789Z", time.Time{}); !ok {
			b.Fatal("no parse")
		}
	}
}
