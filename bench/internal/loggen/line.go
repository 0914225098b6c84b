// Package loggen produces access-log lines in nginx's combined format, or
// JSON application-log lines, each ending with a t=<unix nanoseconds> token
// that records when it was written, so a receiver can compute end-to-end
// latency from the line alone.
package loggen

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// TimestampToken is the field every line ends with: " t=" followed by the
// write time in unix nanoseconds. It is last so a reader finds it without
// parsing the rest of the line, whatever the rest contains.
const TimestampToken = " t="

// Generator appends random but realistic access-log lines. It is not safe
// for concurrent use; give each writer its own.
type Generator struct {
	rng *rand.Rand
	// nginx's $time_local only changes once a second, so it is formatted
	// once per second instead of once per line.
	lastSec  int64
	timeText []byte
}

// NewGenerator returns a generator whose lines are a deterministic function
// of seed and the times passed to AppendLine.
func NewGenerator(seed uint64) *Generator {
	return &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), lastSec: -1}
}

type weighted struct {
	v string
	w int
}

// pick chooses by cumulative weight; the tables are tiny, so a linear walk
// beats anything cleverer.
func (g *Generator) pick(t []weighted, total int) string {
	n := g.rng.IntN(total)
	for _, e := range t {
		if n < e.w {
			return e.v
		}
		n -= e.w
	}
	return t[len(t)-1].v
}

func sum(t []weighted) int {
	s := 0
	for _, e := range t {
		s += e.w
	}
	return s
}

var (
	methods = []weighted{{"GET", 80}, {"POST", 11}, {"PUT", 3}, {"HEAD", 2}, {"DELETE", 2}, {"PATCH", 1}, {"OPTIONS", 1}}
	protos  = []weighted{{"HTTP/1.1", 80}, {"HTTP/2.0", 18}, {"HTTP/1.0", 2}}
	// The tenants of the first users' VPS, behind one Traefik.
	userAgents = []weighted{
		{"Mozilla/5.0 (X11; Linux x86_64)", 4},
		{"Mozilla/5.0 (iPhone; iOS 17_5)", 3},
		{"Mozilla/5.0 (Windows NT 10.0)", 4},
		{"curl/8.5.0", 18},
		{"Go-http-client/1.1", 12},
		{"Prometheus/2.53.0", 10},
		{"python-requests/2.31", 4},
		{"Googlebot/2.1", 4},
		{"okhttp/4.12.0", 7},
		{"kube-probe/1.29", 8},
		{"Wget/1.21.4", 6},
		{"axios/1.7.2", 6},
		{"Grafana/11.2.0", 6},
	}
	referers = []weighted{{"-", 94}, {"https://rentguy.example/", 2}, {"https://psra.example/", 2}, {"https://google.com/", 2}}

	methodsTotal, protosTotal, uaTotal, refTotal = sum(methods), sum(protos), sum(userAgents), sum(referers)
)

type status struct {
	code    string
	w       int
	noBody  bool
	minSize int
}

var (
	statuses = []status{
		{"200", 68, false, 120}, {"304", 8, true, 0}, {"404", 6, false, 150}, {"201", 4, false, 40},
		{"301", 3, false, 160}, {"302", 3, false, 140}, {"204", 2, true, 0}, {"401", 2, false, 30},
		{"403", 1, false, 150}, {"429", 1, false, 20}, {"500", 1, false, 170}, {"502", 1, false, 150}, {"503", 0, false, 190},
	}
	statusTotal = func() int {
		s := 0
		for _, st := range statuses {
			s += st.w
		}
		return s
	}()
)

const hexDigits = "0123456789abcdef"

// appendPath writes a request target. Ids and hashes vary per line so the
// lines do not compress unrealistically well.
func (g *Generator) appendPath(b []byte) []byte {
	r := g.rng
	switch n := r.IntN(100); {
	case n < 22:
		b = append(b, "/api/users/"...)
		b = strconv.AppendInt(b, int64(r.IntN(99999)), 10)
	case n < 36:
		b = append(b, "/rentguy/book/"...)
		b = strconv.AppendInt(b, int64(r.IntN(999999)), 10)
	case n < 46:
		b = append(b, "/js/app."...)
		for range 8 {
			b = append(b, hexDigits[r.IntN(16)])
		}
		b = append(b, ".js"...)
	case n < 54:
		b = append(b, "/psra/reports/"...)
		b = strconv.AppendInt(b, int64(2020+r.IntN(6)), 10)
		b = append(b, '/')
		b = strconv.AppendInt(b, int64(10+r.IntN(3)), 10)
	case n < 62:
		b = append(b, "/search?page="...)
		b = strconv.AppendInt(b, int64(1+r.IntN(40)), 10)
	case n < 70:
		b = append(b, "/metrics"...)
	case n < 76:
		b = append(b, "/healthz"...)
	case n < 82:
		b = append(b, "/wpcs/?p="...)
		b = strconv.AppendInt(b, int64(r.IntN(9999)), 10)
	case n < 88:
		b = append(b, "/img/"...)
		b = strconv.AppendInt(b, int64(r.IntN(99999)), 10)
		b = append(b, ".webp"...)
	case n < 93:
		b = append(b, "/ai/jobs/"...)
		b = strconv.AppendInt(b, int64(r.IntN(999999)), 10)
		b = append(b, "/log"...)
	case n < 97:
		b = append(b, "/favicon.ico"...)
	default:
		b = append(b, "/"...)
	}
	return b
}

func (g *Generator) appendIP(b []byte) []byte {
	r := g.rng
	if r.IntN(20) == 0 {
		b = append(b, "2001:db8:"...)
		b = strconv.AppendInt(b, int64(r.IntN(0xffff)), 16)
		b = append(b, "::"...)
		return strconv.AppendInt(b, int64(1+r.IntN(0xfff)), 16)
	}
	// Skip 0, 10, 127 and 224+ so the addresses look like public clients.
	first := 1 + r.IntN(222)
	if first == 10 || first == 127 {
		first++
	}
	b = strconv.AppendInt(b, int64(first), 10)
	for range 3 {
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(r.IntN(256)), 10)
	}
	return b
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

func appendTwo(b []byte, v int) []byte {
	return append(b, byte('0'+v/10), byte('0'+v%10))
}

// appendTimeLocal writes nginx's $time_local in UTC: 25/Nov/2025:17:39:01 +0000.
func (g *Generator) appendTimeLocal(b []byte, now time.Time) []byte {
	if sec := now.Unix(); sec != g.lastSec {
		t := now.UTC()
		s := g.timeText[:0]
		s = appendTwo(s, t.Day())
		s = append(s, '/')
		s = append(s, months[t.Month()-1]...)
		s = append(s, '/')
		s = strconv.AppendInt(s, int64(t.Year()), 10)
		s = append(s, ':')
		s = appendTwo(s, t.Hour())
		s = append(s, ':')
		s = appendTwo(s, t.Minute())
		s = append(s, ':')
		s = appendTwo(s, t.Second())
		s = append(s, " +0000"...)
		g.timeText, g.lastSec = s, sec
	}
	return append(b, g.timeText...)
}

// AppendLine appends one access-log line, without its newline, stamped
// with now:
//
//	203.0.113.7 - - [25/Nov/2025:17:39:01 +0000] "GET /metrics HTTP/1.1" 200 5123 "-" "curl/8.5.0" t=1764092341123456789
func (g *Generator) AppendLine(b []byte, now time.Time) []byte {
	r := g.rng
	b = g.appendIP(b)
	b = append(b, " - - ["...)
	b = g.appendTimeLocal(b, now)
	b = append(b, "] \""...)
	b = append(b, g.pick(methods, methodsTotal)...)
	b = append(b, ' ')
	b = g.appendPath(b)
	b = append(b, ' ')
	b = append(b, g.pick(protos, protosTotal)...)
	b = append(b, "\" "...)
	n := r.IntN(statusTotal)
	st := statuses[len(statuses)-1]
	for _, s := range statuses {
		if n < s.w {
			st = s
			break
		}
		n -= s.w
	}
	b = append(b, st.code...)
	b = append(b, ' ')
	if st.noBody {
		b = append(b, '0')
	} else {
		// Response sizes are heavy-tailed: mostly small, some large.
		size := st.minSize + r.IntN(2000)
		if r.IntN(20) == 0 {
			size += r.IntN(500000)
		}
		b = strconv.AppendInt(b, int64(size), 10)
	}
	b = append(b, " \""...)
	b = append(b, g.pick(referers, refTotal)...)
	b = append(b, "\" \""...)
	b = append(b, g.pick(userAgents, uaTotal)...)
	b = append(b, '"')
	b = append(b, TimestampToken...)
	return strconv.AppendInt(b, now.UnixNano(), 10)
}

// ParseTimestamp returns the write time embedded in line by AppendLine or
// AppendJSONLine, in unix nanoseconds. A trailing newline or carriage
// return is allowed, and so is the `"}` that closes a JSON line's last
// field.
func ParseTimestamp(line []byte) (int64, bool) {
	line = bytes.TrimRight(line, "\r\n")
	line = bytes.TrimSuffix(line, []byte(`"}`))
	i := bytes.LastIndex(line, []byte(TimestampToken))
	if i < 0 {
		return 0, false
	}
	digits := line[i+len(TimestampToken):]
	if len(digits) == 0 || len(digits) > 19 {
		return 0, false
	}
	var v int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}
