package host

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

const netstatDefaultFields = `^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$`

func init() {
	Register(Spec{
		Name:           "netstat",
		DefaultEnabled: true,
		Options: []Option{
			{Name: "fields", Default: netstatDefaultFields, Help: "Regexp of fields to return for netstat collector."},
		},
		New: newNetstatCollector,
	})
}

// netstatField is what the collector knows of one "Protocol_Name" key: the
// field regexp is matched and the descriptor built once per key, not per
// scrape.
type netstatField struct {
	desc *prometheus.Desc // nil when the field is filtered out
	gen  uint64           // scrape that last emitted it, against duplicates
}

type netstatCollector struct {
	netstat, snmp, snmp6 string
	fields               *regexp.Regexp
	known                map[string]*netstatField
	gen                  uint64
	buf                  []byte
	key                  []byte
}

func newNetstatCollector(env *Env) (Collector, error) {
	fields, err := regexp.Compile(env.Option("fields"))
	if err != nil {
		return nil, fmt.Errorf("netstat: bad fields pattern: %w", err)
	}
	return &netstatCollector{
		netstat: env.Paths.ProcPath("net/netstat"),
		snmp:    env.Paths.ProcPath("net/snmp"),
		snmp6:   env.Paths.ProcPath("net/snmp6"),
		fields:  fields,
		known:   map[string]*netstatField{},
	}, nil
}

func (c *netstatCollector) Update(ch chan<- prometheus.Metric) error {
	c.gen++
	emit := func(proto, name, value []byte) error {
		return c.emit(ch, proto, name, value)
	}
	if err := c.readFile(c.netstat, false, emit); err != nil {
		return fmt.Errorf("couldn't get netstats: %w", err)
	}
	if err := c.readFile(c.snmp, false, emit); err != nil {
		return fmt.Errorf("couldn't get SNMP stats: %w", err)
	}
	// Without IPv6 there is no snmp6.
	if err := c.readFile(c.snmp6, true, emit); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("couldn't get SNMP6 stats: %w", err)
	}
	return nil
}

func (c *netstatCollector) readFile(path string, snmp6 bool, emit func(proto, name, value []byte) error) error {
	var err error
	if c.buf, err = readFileInto(path, c.buf); err != nil {
		return err
	}
	if snmp6 {
		err = parseNetstatSNMP6(c.buf, emit)
	} else {
		err = parseNetstatPairs(c.buf, emit)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func (c *netstatCollector) emit(ch chan<- prometheus.Metric, proto, name, value []byte) error {
	c.key = append(append(append(c.key[:0], proto...), '_'), name...)
	f, ok := c.known[string(c.key)] // no allocation for the lookup
	if !ok {
		key := string(c.key)
		f = &netstatField{}
		if c.fields.MatchString(key) {
			f.desc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "netstat", key),
				"Statistic "+string(proto)+string(name)+".", nil, nil)
		}
		if len(c.known) > 8192 { // kernels have ~400 fields; guard against garbage
			clear(c.known)
		}
		c.known[key] = f
	}
	if f.desc == nil || f.gen == c.gen {
		return nil
	}
	v, err := netstatParseValue(value)
	if err != nil {
		return fmt.Errorf("invalid value %q for %s: %w", value, c.key, err)
	}
	f.gen = c.gen
	ch <- newMetric(f.desc, prometheus.UntypedValue, v)
	return nil
}

// netstatParseValue parses a decimal integer without allocating, falling
// back to ParseFloat for anything else.
func netstatParseValue(b []byte) (float64, error) {
	neg := false
	digits := b
	if len(digits) > 0 && digits[0] == '-' {
		neg, digits = true, digits[1:]
	}
	if len(digits) > 0 && len(digits) <= 18 {
		var n int64
		ok := true
		for _, d := range digits {
			if d < '0' || d > '9' {
				ok = false
				break
			}
			n = n*10 + int64(d-'0')
		}
		if ok {
			if neg {
				n = -n
			}
			return float64(n), nil
		}
	}
	return strconv.ParseFloat(string(b), 64)
}

// parseNetstatPairs parses /proc/net/netstat and /proc/net/snmp: pairs of
// lines "Proto: Name1 Name2 ..." and "Proto: value1 value2 ...".
func parseNetstatPairs(data []byte, emit func(proto, name, value []byte) error) error {
	for len(data) > 0 {
		var names, values []byte
		names, data = cutLine(data)
		if len(bytes.TrimSpace(names)) == 0 {
			continue
		}
		values, data = cutLine(data)
		nproto, nrest, ok1 := bytes.Cut(names, []byte(":"))
		vproto, vrest, ok2 := bytes.Cut(values, []byte(":"))
		if !ok1 || !ok2 || len(nproto) == 0 || !bytes.Equal(nproto, vproto) {
			return fmt.Errorf("mismatched header and value lines for %q", nproto)
		}
		for {
			var name, value []byte
			name, nrest = cutField(nrest)
			value, vrest = cutField(vrest)
			if (name == nil) != (value == nil) {
				return fmt.Errorf("mismatch field count mismatch for %s", nproto)
			}
			if name == nil {
				break
			}
			if err := emit(nproto, name, value); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseNetstatSNMP6 parses /proc/net/snmp6: "Ip6InReceives 42" lines; the
// protocol is the name up to its first "6".
func parseNetstatSNMP6(data []byte, emit func(proto, name, value []byte) error) error {
	for len(data) > 0 {
		var line, stat, value []byte
		line, data = cutLine(data)
		stat, line = cutField(line)
		value, _ = cutField(line)
		if value == nil {
			continue
		}
		i := bytes.IndexByte(stat, '6')
		if i < 0 {
			continue
		}
		if err := emit(stat[:i+1], stat[i+1:], value); err != nil {
			return err
		}
	}
	return nil
}
