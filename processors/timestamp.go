package processors

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

// timestamp is Promtail's timestamp stage: it sets the entry's time from
// an extracted value.
//
//	timestamp:
//	  source: <extracted name>
//	  format: <Go layout | ANSIC | UnixDate | RubyDate | RFC822 | RFC822Z |
//	           RFC850 | RFC1123 | RFC1123Z | RFC3339 | RFC3339Nano |
//	           Unix | UnixMs | UnixUs | UnixNs>
//	  fallback_formats: [<format>, ...]
//	  location: <IANA zone>          # for Go layouts only, as in Promtail
//	  action_on_failure: fudge|skip  # default fudge
//
// fudge gives an entry whose time cannot be parsed the last time parsed in
// its stream plus 1ns, keeping the stream's order; streams are told apart
// by their labels (and tenant) at this stage, and the last 10000 streams
// are remembered, as in Promtail. skip keeps the time the entry was read.
//
// RFC3339 and RFC3339Nano, the common case on the hot path, are parsed by
// hand straight to Unix nanoseconds without allocating; anything that
// parser does not accept goes through time.Parse, so results are the same
// as Promtail's.

func init() {
	pipeline.RegisterProcessor("timestamp", newTimestampStage)
}

type timestampConfig struct {
	Source          string   `yaml:"source"`
	Format          string   `yaml:"format"`
	FallbackFormats []string `yaml:"fallback_formats"`
	Location        *string  `yaml:"location"`
	ActionOnFailure *string  `yaml:"action_on_failure"`
}

type timestampStage struct {
	source  string
	formats []tsFormat // the format, then the fallbacks
	fudge   bool
	now     func() time.Time
	streams tsStreams

	missing prometheus.Counter
	failed  prometheus.Counter
}

// Maximum number of streams whose last time is remembered for fudging.
const maxTimestampStreams = 10000

func newTimestampStage(env pipeline.Env, node *yaml.Node) (pipeline.Processor, error) {
	d := env.Decoder
	var cfg timestampConfig
	if err := d.Decode(node, &cfg); err != nil {
		return nil, err
	}
	if cfg.Source == "" {
		return nil, d.Errorf(pipeline.NodeAt(node, "source"), "timestamp stage: source is required")
	}
	if cfg.Format == "" {
		return nil, d.Errorf(pipeline.NodeAt(node, "format"), "timestamp stage: format is required")
	}
	var loc *time.Location
	if cfg.Location != nil {
		l, err := time.LoadLocation(*cfg.Location)
		if err != nil {
			return nil, d.Errorf(pipeline.NodeAt(node, "location"), "timestamp stage: invalid location %q: %v", *cfg.Location, err)
		}
		loc = l
	}
	s := &timestampStage{
		source:  cfg.Source,
		fudge:   true,
		now:     time.Now,
		missing: counters{env}.stageError("missing_source"),
		failed:  counters{env}.stageError("timestamp_parse"),
	}
	if cfg.ActionOnFailure != nil {
		switch *cfg.ActionOnFailure {
		case "fudge":
		case "skip":
			s.fudge = false
		default:
			return nil, d.Errorf(pipeline.NodeAt(node, "action_on_failure"), "timestamp stage: invalid action_on_failure %q (valid: fudge, skip)", *cfg.ActionOnFailure)
		}
	}
	f, err := newTSFormat(cfg.Format, loc)
	if err != nil {
		return nil, d.Errorf(pipeline.NodeAt(node, "format"), "timestamp stage: %v", err)
	}
	s.formats = append(s.formats, f)
	for i, ff := range cfg.FallbackFormats {
		f, err := newTSFormat(ff, loc)
		if err != nil {
			return nil, d.Errorf(cfgListItem(node, "fallback_formats", i), "timestamp stage: fallback format: %v", err)
		}
		s.formats = append(s.formats, f)
	}
	return s, nil
}

func (s *timestampStage) Process(b *pipeline.Batch) {
	var now time.Time // read once per batch, and only for layouts without a year
	for i := range b.Entries {
		e := &b.Entries[i]
		v, ok := extractedValue(e, s.source)
		if ok {
			var ns int64
			ns, ok = s.parse(v, &now)
			if ok {
				e.Time = ns
				if s.fudge {
					s.streams.find(e, true).last = ns
				}
				continue
			}
			s.failed.Inc()
		} else {
			s.missing.Inc()
		}
		if s.fudge {
			// Without a time parsed before in this stream, the entry keeps
			// its own, as in Promtail.
			if st := s.streams.find(e, false); st != nil {
				st.last++
				e.Time = st.last
			}
		}
	}
}

func (s *timestampStage) parse(v string, now *time.Time) (int64, bool) {
	for i := range s.formats {
		f := &s.formats[i]
		if f.kind == tsLayoutNoYear && now.IsZero() {
			*now = s.now()
		}
		if ns, ok := f.parse(v, *now); ok {
			return ns, true
		}
	}
	return 0, false
}

type tsKind uint8

const (
	tsRFC3339 tsKind = iota
	tsNamed          // a named Go layout, parsed with time.Parse, location ignored (as in Promtail)
	tsUnix
	tsUnixMs
	tsUnixUs
	tsUnixNs
	tsLayout       // a custom layout with a year
	tsLayoutNoYear // a custom layout without one: the year is guessed from now
)

type tsFormat struct {
	kind   tsKind
	layout string
	loc    *time.Location // custom layouts only
	days   rfc3339DayCache
}

var namedTimeLayouts = map[string]string{
	"ANSIC":       time.ANSIC,
	"UnixDate":    time.UnixDate,
	"RubyDate":    time.RubyDate,
	"RFC822":      time.RFC822,
	"RFC822Z":     time.RFC822Z,
	"RFC850":      time.RFC850,
	"RFC1123":     time.RFC1123,
	"RFC1123Z":    time.RFC1123Z,
	"RFC3339":     time.RFC3339,
	"RFC3339Nano": time.RFC3339Nano,
}

// layoutProbe is formatted with a candidate layout to see whether the
// layout has any reference-time element in it: none of its fields equals
// a reference value, so a layout without elements formats to itself.
var layoutProbe = time.Date(1999, 11, 28, 21, 37, 48, 123456789, time.FixedZone("XST", 5*3600+1800))

func newTSFormat(format string, loc *time.Location) (tsFormat, error) {
	switch format {
	case "RFC3339", "RFC3339Nano":
		return tsFormat{kind: tsRFC3339, layout: namedTimeLayouts[format]}, nil
	case "Unix":
		return tsFormat{kind: tsUnix}, nil
	case "UnixMs":
		return tsFormat{kind: tsUnixMs}, nil
	case "UnixUs":
		return tsFormat{kind: tsUnixUs}, nil
	case "UnixNs":
		return tsFormat{kind: tsUnixNs}, nil
	}
	if l, ok := namedTimeLayouts[format]; ok {
		return tsFormat{kind: tsNamed, layout: l}, nil
	}
	for _, name := range []string{"ANSIC", "UnixDate", "RubyDate", "RFC822", "RFC822Z", "RFC850", "RFC1123", "RFC1123Z",
		"RFC3339", "RFC3339Nano", "Unix", "UnixMs", "UnixUs", "UnixNs"} {
		// Read as a Go layout, "rfc3339" would parse hours ("3"); it is a
		// misspelt name, so say so.
		if strings.EqualFold(format, name) {
			return tsFormat{}, fmt.Errorf("unknown format %q (did you mean %q? names are case-sensitive)", format, name)
		}
	}
	if layoutProbe.Format(format) == format {
		return tsFormat{}, errBadTimeFormat(format)
	}
	// Promtail's test for a layout without a year.
	if !strings.Contains(format, "06") {
		return tsFormat{kind: tsLayoutNoYear, layout: format, loc: loc}, nil
	}
	return tsFormat{kind: tsLayout, layout: format, loc: loc}, nil
}

type errBadTimeFormat string

func (e errBadTimeFormat) Error() string {
	return "format " + strconv.Quote(string(e)) + " is neither a named format (ANSIC, UnixDate, RubyDate, RFC822, RFC822Z, RFC850, " +
		"RFC1123, RFC1123Z, RFC3339, RFC3339Nano, Unix, UnixMs, UnixUs, UnixNs) nor a Go layout: it has no element " +
		"of the reference time Mon Jan 2 15:04:05 MST 2006"
}

// parse returns the time v stands for in Unix nanoseconds. Times outside
// what int64 nanoseconds can hold (before 1678 or after 2262) fail.
func (f *tsFormat) parse(v string, now time.Time) (int64, bool) {
	switch f.kind {
	case tsRFC3339:
		if sec, nsec, ok := f.days.parse(v); ok {
			return secToNanos(sec, nsec)
		}
		t, err := time.Parse(f.layout, v)
		if err != nil {
			return 0, false
		}
		return timeToNanos(t)
	case tsNamed:
		t, err := time.Parse(f.layout, v)
		if err != nil {
			return 0, false
		}
		return timeToNanos(t)
	case tsUnix:
		return parseUnixSeconds(v)
	case tsUnixMs:
		return parseUnixScaled(v, int64(time.Millisecond))
	case tsUnixUs:
		return parseUnixScaled(v, int64(time.Microsecond))
	case tsUnixNs:
		return parseUnixScaled(v, 1)
	case tsLayout, tsLayoutNoYear:
		var (
			t   time.Time
			err error
		)
		if f.loc != nil {
			t, err = time.ParseInLocation(f.layout, v, f.loc)
		} else {
			t, err = time.Parse(f.layout, v)
		}
		if err != nil {
			return 0, false
		}
		if f.kind == tsLayoutNoYear {
			var ok bool
			if t, ok = withGuessedYear(t, now); !ok {
				return 0, false
			}
		}
		return timeToNanos(t)
	}
	return 0, false
}

// withGuessedYear puts a time parsed without a year into the year of now,
// or the one before or after when that is closer across New Year, as
// Promtail does.
func withGuessedYear(t, now time.Time) (time.Time, bool) {
	if t.Year() != 0 {
		// The layout had no year element, yet a year was parsed.
		return t, false
	}
	switch {
	case t.Month() == time.December && now.Month() == time.January:
		return t.AddDate(now.Year()-1, 0, 0), true
	case t.Month() == time.January && now.Month() == time.December:
		return t.AddDate(now.Year()+1, 0, 0), true
	}
	return t.AddDate(now.Year(), 0, 0), true
}

var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)

func timeToNanos(t time.Time) (int64, bool) {
	if t.Before(minNanosTime) || t.After(maxNanosTime) {
		return 0, false
	}
	return t.UnixNano(), true
}

// secToNanos converts with a range check; nsec is in [0, 1e9).
func secToNanos(sec, nsec int64) (int64, bool) {
	const minSec, maxSec = -9223372036, 9223372036 // math.MinInt64 and math.MaxInt64 nanoseconds, in seconds
	if sec <= minSec || sec >= maxSec {
		return timeToNanos(time.Unix(sec, nsec))
	}
	return sec*1e9 + nsec, true
}

// parseUnixSeconds reads seconds with an optional fraction, as Promtail's
// Unix format does (including its scaling of fractions longer than 9
// digits).
func parseUnixSeconds(v string) (int64, bool) {
	dot := strings.IndexByte(v, '.')
	if dot < 0 || strings.IndexByte(v[dot+1:], '.') >= 0 {
		// No dot, or more than one: the whole value must be an integer.
		sec, ok := parseInt64(v)
		if !ok {
			return 0, false
		}
		return secToNanos(sec, 0)
	}
	sec, ok := parseInt64(v[:dot])
	if !ok {
		return 0, false
	}
	fracStr := v[dot+1:]
	frac, ok := parseInt64(fracStr)
	if !ok {
		return 0, false
	}
	var nsec int64
	if n := len(fracStr); n <= 9 && frac >= 0 {
		nsec = frac * tsPow10[9-n]
	} else {
		nsec = int64(float64(frac) * math.Pow(10, float64(9-len(fracStr))))
	}
	return timeToNanos(time.Unix(sec, nsec))
}

var tsPow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// parseUnixScaled reads an integer count of units. Promtail lets the
// multiplication overflow into a wrong time; here it is a failure.
func parseUnixScaled(v string, unit int64) (int64, bool) {
	n, ok := parseInt64(v)
	if !ok {
		return 0, false
	}
	if unit == 1 {
		return n, true
	}
	if n > math.MaxInt64/unit || n < math.MinInt64/unit {
		return 0, false
	}
	return n * unit, true
}

// parseInt64 is strconv.ParseInt(v, 10, 64) without the error allocation
// for the common all-digits case.
func parseInt64(v string) (int64, bool) {
	if len(v) > 0 && len(v) <= 18 {
		var n int64
		i := 0
		for ; i < len(v); i++ {
			c := v[i] - '0'
			if c > 9 {
				break
			}
			n = n*10 + int64(c)
		}
		if i == len(v) {
			return n, true
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// parseRFC3339Fast parses the strict RFC 3339 form
// 2006-01-02T15:04:05[.999999999](Z|±07:00), accepting exactly what
// time.Parse's own fast path for RFC3339 accepts, with the same result.
// It returns seconds since the epoch and nanoseconds; ok is false for
// anything else, which the caller then hands to time.Parse.
func parseRFC3339Fast(s string) (sec, nsec int64, ok bool) {
	var dc rfc3339DayCache
	return dc.parse(s)
}

// rfc3339DayCache remembers the last date parsed: consecutive timestamps
// nearly always fall on the same day, and the calendar arithmetic is most
// of the parsing cost.
type rfc3339DayCache struct {
	date  [10]byte
	days  int64
	valid bool
}

func (dc *rfc3339DayCache) parse(s string) (sec, nsec int64, ok bool) {
	if len(s) < len("2006-01-02T15:04:05Z") {
		return 0, 0, false
	}
	if s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, 0, false
	}
	var days int64
	if dc.valid && string(dc.date[:]) == s[:10] {
		days = dc.days
	} else {
		if s[4] != '-' || s[7] != '-' {
			return 0, 0, false
		}
		year, ok1 := rfcDigits4(s[0:4])
		month, ok2 := rfcDigits2(s[5:7])
		day, ok3 := rfcDigits2(s[8:10])
		if !(ok1 && ok2 && ok3) || month < 1 || month > 12 || day < 1 || day > rfcDaysInMonth(month, year) {
			return 0, 0, false
		}
		days = rfcDaysFromCivil(year, month, day)
		copy(dc.date[:], s[:10])
		dc.days, dc.valid = days, true
	}
	hour, ok4 := rfcDigits2(s[11:13])
	minute, ok5 := rfcDigits2(s[14:16])
	second, ok6 := rfcDigits2(s[17:19])
	if !(ok4 && ok5 && ok6) || hour > 23 || minute > 59 || second > 59 {
		return 0, 0, false
	}
	s = s[19:]
	if len(s) >= 2 && s[0] == '.' && s[1] >= '0' && s[1] <= '9' {
		n := 2
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		// Digits past the ninth are dropped, as time.Parse does.
		digits := n - 1
		if digits > 9 {
			digits = 9
		}
		for i := 1; i <= digits; i++ {
			nsec = nsec*10 + int64(s[i]-'0')
		}
		nsec *= tsPow10[9-digits]
		s = s[n:]
	}
	var offset int64
	if len(s) != 1 || s[0] != 'Z' {
		if len(s) != len("-07:00") || (s[0] != '+' && s[0] != '-') || s[3] != ':' {
			return 0, 0, false
		}
		hh, ok1 := rfcDigits2(s[1:3])
		mm, ok2 := rfcDigits2(s[4:6])
		if !ok1 || !ok2 || hh > 23 || mm > 59 {
			return 0, 0, false
		}
		offset = (hh*60 + mm) * 60
		if s[0] == '-' {
			offset = -offset
		}
	}
	sec = days*86400 + hour*3600 + minute*60 + second - offset
	return sec, nsec, true
}

func rfcDigits2(s string) (int64, bool) {
	a, b := s[0]-'0', s[1]-'0'
	if a > 9 || b > 9 {
		return 0, false
	}
	return int64(a)*10 + int64(b), true
}

func rfcDigits4(s string) (int64, bool) {
	hi, ok1 := rfcDigits2(s[0:2])
	lo, ok2 := rfcDigits2(s[2:4])
	return hi*100 + lo, ok1 && ok2
}

func rfcDaysInMonth(month, year int64) int64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// rfcDaysFromCivil counts days from 1970-01-01 to the given proleptic
// Gregorian date (Howard Hinnant's algorithm).
func rfcDaysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// tsStreams remembers each stream's last time for fudging, least recently
// used first out. Streams are keyed by their labels and tenant rendered
// into a string; the entry before usually belongs to the same stream, so
// the last stream is checked first by the identity of its label set.
type tsStreams struct {
	m    map[string]*tsStream
	head tsStream // sentinel of the recency list: head.next is the newest
	cur  *tsStream
	key  []byte
}

type tsStream struct {
	key        string
	labels     pipeline.Labels
	tenant     string
	last       int64
	prev, next *tsStream
}

func (ss *tsStreams) find(e *pipeline.Entry, create bool) *tsStream {
	if c := ss.cur; c != nil && len(c.labels) == len(e.Labels) && c.tenant == e.Tenant &&
		(len(c.labels) == 0 || &c.labels[0] == &e.Labels[0]) {
		return c
	}
	if ss.m == nil {
		ss.m = make(map[string]*tsStream)
		ss.head.next, ss.head.prev = &ss.head, &ss.head
	}
	ss.key = ss.key[:0]
	for _, l := range e.Labels {
		ss.key = append(ss.key, l.Name...)
		ss.key = append(ss.key, 0xff)
		ss.key = append(ss.key, l.Value...)
		ss.key = append(ss.key, 0xff)
	}
	ss.key = append(ss.key, 0xfe)
	ss.key = append(ss.key, e.Tenant...)
	st, ok := ss.m[string(ss.key)]
	if ok {
		st.unlink()
	} else {
		if !create {
			return nil
		}
		st = &tsStream{key: string(ss.key)}
		ss.m[st.key] = st
		if len(ss.m) > maxTimestampStreams {
			old := ss.head.prev
			old.unlink()
			delete(ss.m, old.key)
		}
	}
	// The identity check above compares against these, so they are the
	// entry's own (immutable) label set and an owned tenant name.
	st.labels = e.Labels
	if st.tenant != e.Tenant {
		st.tenant = strings.Clone(e.Tenant)
	}
	st.next, st.prev = ss.head.next, &ss.head
	ss.head.next.prev = st
	ss.head.next = st
	ss.cur = st
	return st
}

func (st *tsStream) unlink() {
	st.prev.next = st.next
	st.next.prev = st.prev
}
