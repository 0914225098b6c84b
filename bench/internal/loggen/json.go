package loggen

import (
	"fmt"
	"strconv"
	"time"
)

// Format is the kind of line a Generator writes.
type Format int

const (
	// Access is nginx's combined access-log format (the default).
	Access Format = iota
	// JSON is a structured application log: one JSON object of seven
	// fields per line, as JSON loggers write them.
	JSON
)

// ParseFormat reads a format name as the -format flags spell it.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "access", "":
		return Access, nil
	case "json":
		return JSON, nil
	}
	return 0, fmt.Errorf("loggen: unknown format %q (want access or json)", s)
}

func (f Format) String() string {
	if f == JSON {
		return "json"
	}
	return "access"
}

// Append appends one line of format f, without its newline.
func (g *Generator) Append(f Format, b []byte, now time.Time) []byte {
	if f == JSON {
		return g.AppendJSONLine(b, now)
	}
	return g.AppendLine(b, now)
}

var (
	levels = []weighted{{"info", 85}, {"warn", 8}, {"error", 4}, {"debug", 3}}
	// The first users' tenants, as their services would name themselves.
	tenants = []weighted{{"rentguy", 35}, {"psra", 25}, {"wpcs", 20}, {"ai-orchestrator", 15}, {"traefik", 5}}
	// Messages per level; picked uniformly.
	messages = map[string][]string{
		"info":  {"request completed", "response served from cache", "user session refreshed", "request completed ok", "static asset served from disk"},
		"warn":  {"slow upstream response", "retrying upstream request", "client closed request early"},
		"error": {"upstream connect error", "database query failed", "template rendering failed"},
		"debug": {"cache lookup finished", "route matched handler"},
	}

	levelsTotal, tenantsTotal = sum(levels), sum(tenants)
)

// appendDuration writes a request duration in milliseconds with three
// decimals: mostly a few ms, with a tail of slow requests.
func (g *Generator) appendDuration(b []byte) []byte {
	r := g.rng
	us := 200 + r.IntN(40_000)
	if r.IntN(20) == 0 {
		us += r.IntN(5_000_000)
	}
	b = strconv.AppendInt(b, int64(us/1000), 10)
	frac := us % 1000
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// AppendJSONLine appends one JSON line, without its newline, stamped with
// now (about 190 bytes):
//
//	{"ts":"2025-11-25T17:39:01.123456789Z","level":"info","tenant":"rentguy","method":"GET","path":"/api/users/4821","duration_ms":12.345,"msg":"request completed t=1764092341123456789"}
//
// ts is now in RFC3339Nano, for a timestamp stage to parse. msg is the last
// field and ends with the TimestampToken, so ParseTimestamp finds the write
// time at the end of the line as it does in access-log lines, without a
// JSON parser and without an eighth field. No value needs JSON escaping.
func (g *Generator) AppendJSONLine(b []byte, now time.Time) []byte {
	level := g.pick(levels, levelsTotal)
	b = append(b, `{"ts":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"`...)
	b = append(b, level...)
	b = append(b, `","tenant":"`...)
	b = append(b, g.pick(tenants, tenantsTotal)...)
	b = append(b, `","method":"`...)
	b = append(b, g.pick(methods, methodsTotal)...)
	b = append(b, `","path":"`...)
	b = g.appendPath(b)
	b = append(b, `","duration_ms":`...)
	b = g.appendDuration(b)
	b = append(b, `,"msg":"`...)
	msgs := messages[level]
	b = append(b, msgs[g.rng.IntN(len(msgs))]...)
	b = append(b, TimestampToken...)
	b = strconv.AppendInt(b, now.UnixNano(), 10)
	return append(b, `"}`...)
}
