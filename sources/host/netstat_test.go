package host

import (
	"strings"
	"testing"
)

func TestNetstatGolden(t *testing.T) {
	checkGolden(t, "netstat", "node_netstat_*")
}

func TestNetstatParsePairs(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            bool
	}{
		{"ok", "Tcp: RtoMin MaxConn\nTcp: 200 -1\nUdp: InErrors\nUdp: 3\n", "Tcp_RtoMin=200 Tcp_MaxConn=-1 Udp_InErrors=3", false},
		{"blank lines", "\nIp: Forwarding\nIp: 1\n\n", "Ip_Forwarding=1", false},
		{"short values", "Tcp: A B\nTcp: 1\n", "", true},
		{"missing value line", "Tcp: A B\n", "", true},
		{"protocol mismatch", "Tcp: A\nUdp: 1\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := parseNetstatPairs([]byte(tc.in), func(p, n, v []byte) error {
				got = append(got, string(p)+"_"+string(n)+"="+string(v))
				return nil
			})
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if !tc.err && strings.Join(got, " ") != tc.want {
				t.Errorf("got %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
}

func TestNetstatParseSNMP6(t *testing.T) {
	var got []string
	in := "Ip6InReceives                   \t42\nIcmp6InMsgs 3\nUdpLite6InErrors 0\nnonsense\nNoSix 1\n"
	if err := parseNetstatSNMP6([]byte(in), func(p, n, v []byte) error {
		got = append(got, string(p)+"_"+string(n)+"="+string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := "Ip6_InReceives=42 Icmp6_InMsgs=3 UdpLite6_InErrors=0"; strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, " "), want)
	}
}

func TestNetstatParseValue(t *testing.T) {
	for in, want := range map[string]float64{"0": 0, "-1": -1, "18446744073709551615": 18446744073709551615, "12345678901234567": 12345678901234567} {
		got, err := netstatParseValue([]byte(in))
		if err != nil || got != want {
			t.Errorf("%s: %v, %v", in, got, err)
		}
	}
	if _, err := netstatParseValue([]byte("x1")); err == nil {
		t.Error("x1 parsed")
	}
}

func FuzzNetstatPairs(f *testing.F) {
	f.Add([]byte("TcpExt: SyncookiesSent SyncookiesRecv\nTcpExt: 0 -4\nIpExt: InOctets\nIpExt: 6286396970\n"))
	f.Add([]byte("Ip6InReceives 4\nIcmp6InMsgs 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		count := func(p, name, v []byte) error {
			if len(p) == 0 || len(v) == 0 {
				t.Fatalf("empty protocol or value from %q", data)
			}
			n++
			_, _ = netstatParseValue(v)
			return nil
		}
		_ = parseNetstatPairs(data, count)
		_ = parseNetstatSNMP6(data, count)
	})
}

func BenchmarkNetstat(b *testing.B) {
	benchUpdate(b, fixtureCollector(b, "netstat", nil))
}
