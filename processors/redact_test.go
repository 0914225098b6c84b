package processors

import (
	"bytes"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/pipeline"
)

func newRedactForTest(t testing.TB, body string) (*redact, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("test YAML: %v", err)
	}
	env := pipeline.Env{
		Name:       "redact_under_test",
		Decoder:    pipeline.Decoder{File: "x.yaml"},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:    pipeline.NewTestMetrics(),
		Registerer: prometheus.NewRegistry(),
	}
	p, err := pipeline.NewProcessor(env, "redact", doc.Content[0], doc.Content[0])
	if err != nil {
		return nil, err
	}
	return p.(*redact), nil
}

// redactCases are lines and what the default configuration makes of them.
var redactCases = []struct {
	name, in, want string
}{
	// e-mail
	{"email", "user john.doe@example.com logged in", "user <redacted:email> logged in"},
	{"email with plus and subdomains", "to a+b@mail.example.co.uk.", "to <redacted:email>."},
	{"email in a git remote", "git@github.com:org/repo", "<redacted:email>:org/repo"},
	{"email in angle brackets", "From: Jo <jo_x@ex-ample.org>", "From: Jo <<redacted:email>>"},
	{"no dot in the domain", "root@localhost says hi", "root@localhost says hi"},
	{"one-letter tld", "a@b.c", "a@b.c"},
	{"numeric tld", "x@host.123", "x@host.123"},
	{"handle", "ping @alice now", "ping @alice now"},

	// IPv4
	{"ipv4", "client 192.168.1.10 connected", "client <redacted:ipv4> connected"},
	{"ipv4 with port", "from 10.0.0.1:8080 ok", "from <redacted:ipv4>:8080 ok"},
	{"ipv4 at the ends", "127.0.0.1", "<redacted:ipv4>"},
	{"ipv4 in a field", `ip=8.8.8.8, "src":"1.2.3.4"`, `ip=<redacted:ipv4>, "src":"<redacted:ipv4>"`},
	{"ipv4 at the end of a sentence", "blocked 203.0.113.9.", "blocked <redacted:ipv4>."},
	{"octet over 255", "not 256.1.1.1 or 1.1.1.999", "not 256.1.1.1 or 1.1.1.999"},
	{"five parts", "oid 1.3.6.1.4.1", "oid 1.3.6.1.4.1"},
	{"three parts", "version 1.2.3", "version 1.2.3"},
	{"glued to letters", "v1.2.3.4 and 1.2.3.4b", "v1.2.3.4 and 1.2.3.4b"},

	// IPv6
	{"ipv6 compressed", "from 2001:db8::8a2e:370:7334 ok", "from <redacted:ipv6> ok"},
	{"ipv6 full", "2001:0db8:0000:0000:0000:ff00:0042:8329", "<redacted:ipv6>"},
	{"ipv6 loopback in brackets with port", "[::1]:8080", "[<redacted:ipv6>]:8080"},
	{"ipv6 with zone", "fe80::1%eth0 up", "<redacted:ipv6>%eth0 up"},
	{"ipv6 with embedded ipv4", "peer ::ffff:192.0.2.1 closed", "peer <redacted:ipv6> closed"},
	{"ipv6 before a colon", "addr fe80::abcd: refused", "addr <redacted:ipv6>: refused"},
	{"ipv6 trailing compression", "net fe80:: up", "net <redacted:ipv6> up"},
	{"time of day", "at 13:55:36.123 +0000", "at 13:55:36.123 +0000"},
	{"scope operator", "std::vector and Foo::Bar", "std::vector and Foo::Bar"},
	{"mac address", "mac aa:bb:cc:dd:ee:ff", "mac aa:bb:cc:dd:ee:ff"},
	{"double colon alone", "a :: b", "a :: b"},
	{"two compressions", "1::2::3", "1::2::3"},
	{"nine groups", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8:9"},

	// tokens
	{"authorization header", "Authorization: Bearer eyJhbGciOi.J9-x_y", "Authorization: Bearer <redacted:token>"},
	{"basic auth header", "authorization: Basic dXNlcjpwYXNz", "authorization: Basic <redacted:token>"},
	{"bearer anywhere", "curl -H 'bearer abcdefgh12345' x", "curl -H 'bearer <redacted:token>' x"},
	{"bearer in capitals", "BEARER abcdefgh12345==", "BEARER <redacted:token>"},
	{"bearer in prose", "the bearer of bad news", "the bearer of bad news"},
	{"token_type is not a secret", "token_type=bearer expires=3600", "token_type=bearer expires=3600"},
	{"password in logfmt", "user=bob password=hunter2 ok=1", "user=bob password=<redacted:token> ok=1"},
	{"api key in json", `{"api_key": "k-123", "user": "bob"}`, `{"api_key": "<redacted:token>", "user": "bob"}`},
	{"escaped json", `msg="{\"secret\":\"s3\",\"a\":1}"`, `msg="{\"secret\":\"<redacted:token>\",\"a\":1}"`},
	{"query string", "GET /cb?access_token=abc123&state=x", "GET /cb?access_token=<redacted:token>&state=x"},
	{"yaml style", "client_secret: s3cr3t", "client_secret: <redacted:token>"},
	{"header with dashes", "X-Api-Key: abcdef", "X-Api-Key: <redacted:token>"},
	{"quoted with spaces", "DB_PASSWORD='two words'", "DB_PASSWORD='<redacted:token>'"},
	{"empty and null values", `password= "token":null`, `password= "token":null`},
	{"aws access key id", "using AKIAIOSFODNN7EXAMPLE now", "using <redacted:token> now"},
	{"aws temporary key id", "ASIAY34FZKBOKMUTVV7A", "<redacted:token>"},
	{"aws prefix in a word", "XAKIAIOSFODNN7EXAMPLE", "XAKIAIOSFODNN7EXAMPLE"},
	{"github classic token", "push with ghp_16C7e42F292c6912E7710c838347Ae178B4a ok", "push with <redacted:token> ok"},
	{"github fine-grained token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789", "<redacted:token>"},
	{"github prefix with a short body", "ghp_short", "ghp_short"},

	// cards
	{"visa with spaces", "paid with 4111 1111 1111 1111 ok", "paid with <redacted:card> ok"},
	{"visa with dashes in a field", "card=4111-1111-1111-1111", "card=<redacted:card>"},
	{"amex", "amex 378282246310005", "amex <redacted:card>"},
	{"mastercard before a dot", "mc 5555555555554444.", "mc <redacted:card>."},
	{"card after another number", "qty 2 4111 1111 1111 1111", "qty 2 <redacted:card>"},
	{"card before a date", "4111 1111 1111 1111 2024-01-31", "<redacted:card> 2024-01-31"},
	{"luhn failure stays", "order 4111111111111112", "order 4111111111111112"},
	{"unix millis and nanos stay", "ts=1700000000005 t=1700000000000000003", "ts=1700000000005 t=1700000000000000003"},
	{"too many digits", "id 41111111111111111111111", "id 41111111111111111111111"},
	{"glued to a letter", "x4111111111111111", "x4111111111111111"},
	{"decimal fraction", "pi 0.4111111111111111", "pi 0.4111111111111111"},

	// overlaps
	{"card as a password", "password=4111111111111111 x", "password=<redacted:token> x"},
	{"email with an ip domain part", "to me@10.0.0.1", "to me@<redacted:ipv4>"},
	{"several classes", "u=a@b.io ip=10.1.2.3 token=xyz", "u=<redacted:email> ip=<redacted:ipv4> token=<redacted:token>"},

	// found by fuzzing: a replacement gives its neighbours new boundaries
	{"ipv4 glued to an ipv6 tail", "0.0.0.0::0", "<redacted:ipv4><redacted:ipv6>"},
	{"ipv4 after a number", "qty 1 1.2.3.4", "qty 1 <redacted:ipv4>"},
	{"ipv4 after an ipv6 and a number", "0000::0000:0 0.0.0.0", "<redacted:ipv6> <redacted:ipv4>"},
	{"amex with dashes", "card=3782-822463-10005;", "card=<redacted:card>;"},

	// nothing
	{"access line", `- - [10/Oct/2023:13:55:36 +0000] "GET /index.html HTTP/1.1" 200 2326 "-" "curl/8.1.2"`, `- - [10/Oct/2023:13:55:36 +0000] "GET /index.html HTTP/1.1" 200 2326 "-" "curl/8.1.2"`},
	{"empty", "", ""},
}

func TestRedactDefaults(t *testing.T) {
	p, err := newRedactForTest(t, "{}")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range redactCases {
		t.Run(tc.name, func(t *testing.T) {
			b := pipeline.NewBatch(1, nil)
			b.Entries = append(b.Entries, pipeline.Entry{Line: []byte(tc.in), Labels: relabelLabels("job=x")})
			p.Process(b)
			if got := string(b.Entries[0].Line); got != tc.want {
				t.Fatalf("\n in: %s\ngot: %s\nwant %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestRedactConfig(t *testing.T) {
	tests := []struct {
		name, cfg, in, want string
	}{
		{"only some classes", "classes: [email, card]",
			"a@b.io 10.0.0.1 4111111111111111 password=x",
			"<redacted:email> 10.0.0.1 <redacted:card> password=x"},
		{"fixed replacement", "replacement: '***'", "a@b.io 10.0.0.1", "*** ***"},
		{"replacement naming the class", "replacement: '[${class}]'", "a@b.io ::1", "[email] [ipv6]"},
		{"pattern with a group redacts the group", `{classes: [], patterns: ['sid=(\w+)']}`,
			"sid=abc123 sid=def", "sid=<redacted:pattern> sid=<redacted:pattern>"},
		{"named pattern without a group", `{classes: [], patterns: [{name: user, regex: 'user=\w+'}]}`,
			"x user=bob y", "x <redacted:user> y"},
		{"pattern and classes together", `patterns: [{name: ticket, regex: 'TCK-\d+'}]`,
			"TCK-42 from a@b.io", "<redacted:ticket> from <redacted:email>"},
		{"pattern matching empty text", `{classes: [], patterns: ['x*']}`, "abc", "abc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := newRedactForTest(t, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(p.redactLine([]byte(tc.in))); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRedactConfigErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"unknown class", "classes: [email, phone]", `x.yaml:1:18: redact: unknown class "phone"`},
		{"nothing to do", "classes: []", "x.yaml:1:1: redact: no classes and no patterns"},
		{"bad regex", "patterns:\n  - 'a(b'", `x.yaml:2:5: redact: invalid regex "a(b"`},
		{"bad named regex", "patterns:\n  - name: x\n    regex: '[z'", `x.yaml:3:12: redact: invalid regex "[z"`},
		{"pattern without regex", "patterns:\n  - name: x", "x.yaml:2:5: redact: a pattern needs a regex"},
		{"null pattern", "patterns:\n  - ~", "x.yaml:2:5: redact: a pattern needs a regex"},
		{"pattern unknown key", "patterns:\n  - {name: x, regex: y, flags: i}", `x.yaml:2:25: unknown key "flags"`},
		{"unknown key", "replace: x", `x.yaml:1:1: unknown key "replace"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newRedactForTest(t, tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// Redacted lines live in a shared arena: neither the next batch nor a
// later stage appending to a line may change another line.
func TestRedactLinesStayIndependent(t *testing.T) {
	p, err := newRedactForTest(t, "{}")
	if err != nil {
		t.Fatal(err)
	}
	b1 := pipeline.NewBatch(2, nil)
	b1.Entries = append(b1.Entries, pipeline.Entry{Line: []byte("a@b.io one")}, pipeline.Entry{Line: []byte("10.0.0.1 two")})
	p.Process(b1)
	b1.Entries[0].Line = append(b1.Entries[0].Line, " appended by a later stage"...)
	b2 := pipeline.NewBatch(1, nil)
	b2.Entries = append(b2.Entries, pipeline.Entry{Line: []byte("c@d.io three")})
	p.Process(b2)
	for _, c := range []struct{ got, want string }{
		{string(b1.Entries[0].Line), "<redacted:email> one appended by a later stage"},
		{string(b1.Entries[1].Line), "<redacted:ipv4> two"},
		{string(b2.Entries[0].Line), "<redacted:email> three"},
	} {
		if c.got != c.want {
			t.Errorf("line %q, want %q", c.got, c.want)
		}
	}
	// Lines larger than a quarter of the arena get their own memory.
	long := bytes.Repeat([]byte("x"), redactArenaChunk)
	long = append(long, " a@b.io"...)
	if got := p.redactLine(long); !bytes.HasSuffix(got, []byte(" <redacted:email>")) || len(got) != redactArenaChunk+17 {
		t.Fatalf("long line redacted to %d bytes", len(got))
	}
}

func TestRedactNonMatchingLinesAreUntouched(t *testing.T) {
	p, err := newRedactForTest(t, `patterns: ['secret-\d+']`)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(redactAccessLine)
	b := pipeline.NewBatch(1, nil)
	b.Entries = append(b.Entries, pipeline.Entry{Line: line})
	allocs := testing.AllocsPerRun(100, func() {
		b.Entries[0].Line = line
		p.Process(b)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations for a line that matches nothing", allocs)
	}
	if &b.Entries[0].Line[0] != &line[0] {
		t.Fatal("a line that matches nothing was copied")
	}
}

// A 130-byte access line with the digits, dots, colons, dashes and
// slashes such lines have, and nothing to redact.
const redactAccessLine = `- - [10/Oct/2023:13:55:36 +0000] "GET /api/v1/orders?page=2&sort=desc HTTP/1.1" 200 5123 "-" "Mozilla/5.0 (X11; Linux x86_64)" 0.012`

const redactMatchingLine = `10.1.2.3 - bob [10/Oct/2023:13:55:36 +0000] "POST /login?email=bob@example.com&password=hunter2 HTTP/1.1" 302 0 "-" "curl/8.1" 4111111111111111`

func BenchmarkRedact(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{"nomatch", redactAccessLine},
		{"match", redactMatchingLine},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := newRedactForTest(b, "{}")
			if err != nil {
				b.Fatal(err)
			}
			line := []byte(bc.line)
			const n = 256
			batch := pipeline.NewBatch(n, nil)
			b.SetBytes(int64(n * len(line)))
			perLine := startPerLineForRelabel(b)
			for i := 0; i < b.N; i++ {
				batch.Entries = batch.Entries[:0]
				for j := 0; j < n; j++ {
					batch.Entries = append(batch.Entries, pipeline.Entry{Line: line})
				}
				p.Process(batch)
			}
			perLine(n)
		})
	}
}

func FuzzRedact(f *testing.F) {
	for _, tc := range redactCases {
		f.Add(tc.in)
	}
	f.Add(redactAccessLine)
	f.Add(redactMatchingLine)
	p, err := newRedactForTest(f, "{}")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		line := []byte(in)
		out := p.redactLine(line)
		if string(line) != in {
			t.Fatalf("input modified: %q", line)
		}
		// Everything redacted once stays as it is: no secret is left
		// behind for a second pass to find.
		if again := p.redactLine(out); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n in: %q\n1st: %q\n2nd: %q", in, out, again)
		}
		// A line with none of the bytes any scanner starts from is
		// returned as it is.
		if !strings.ContainsAny(in, "@:=_0123456789Aa") && !bytes.Equal(out, line) {
			t.Fatalf("changed a line with no anchors: %q -> %q", in, out)
		}
		// The IPv6 validator agrees with the standard library, apart from
		// the bare "::" it refuses and leading zeros in an embedded IPv4
		// address, which the standard library refuses.
		if len(in) < 64 {
			mine := redactValidIPv6(line)
			a, err := netip.ParseAddr(in)
			std := err == nil && a.Is6() && a.Zone() == "" && in != "::"
			if mine != std && !(mine && strings.Contains(in, ".") && err != nil && strings.Contains(err.Error(), "leading zero")) {
				t.Fatalf("redactValidIPv6(%q) = %v, netip says %v (%v)", in, mine, std, err)
			}
		}
	})
}
