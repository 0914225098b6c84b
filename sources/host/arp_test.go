package host

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestARPGolden(t *testing.T) {
	checkGolden(t, "arp", "node_arp_*")
}

func TestARPFilter(t *testing.T) {
	paths := fixturePaths(t)
	for _, tc := range []struct {
		opts map[string]string
		want string
	}{
		{nil, `{device="eth0"} 3,{device="eth1"} 3,{device="nope"} 1`},
		{map[string]string{"device-include": "^eth1$"}, `{device="eth1"} 3`},
		{map[string]string{"device-exclude": "^eth"}, `{device="nope"} 1`},
	} {
		c := newCollector(t, "arp", paths, tc.opts)
		got := strings.Join(seriesLines(collect(t, c)["node_arp_entries"]), ",")
		if got != tc.want {
			t.Errorf("%v: %s, want %s", tc.opts, got, tc.want)
		}
	}
}

func TestARPNoFile(t *testing.T) {
	c := newCollector(t, "arp", Paths{Proc: t.TempDir()}, nil)
	if err := c.Update(make(chan prometheus.Metric, 1)); !errors.Is(err, ErrNoData) {
		t.Fatalf("err = %v, want ErrNoData", err)
	}
}

func TestParseARPDevices(t *testing.T) {
	in := "IP address       HW type     Flags       HW address            Mask     Device\n" +
		"192.168.1.1    0x1         0x2         cc:aa:dd:ee:aa:bb     *        eth0\n\n" +
		"10.0.0.9       0x1         0x0         00:00:00:00:00:00     *        br-1a2b\n"
	var devs []string
	if err := parseARPDevices([]byte(in), func(d []byte) { devs = append(devs, string(d)) }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(devs, " "); got != "eth0 br-1a2b" {
		t.Errorf("devices %q", got)
	}
	if err := parseARPDevices([]byte("1 2 3\n"), func([]byte) {}); err == nil {
		t.Error("3 columns accepted")
	}
}

func FuzzParseARPDevices(f *testing.F) {
	f.Add([]byte("IP address       HW type     Flags       HW address            Mask     Device\n192.168.1.1    0x1         0x2         cc:aa:dd:ee:aa:bb     *        eth0\n"))
	f.Add([]byte("a b c d e f\n\t\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		err := parseARPDevices(data, func(d []byte) {
			if len(d) == 0 || strings.ContainsAny(string(d), " \t\n") {
				t.Fatalf("bad device %q", d)
			}
			n++
		})
		if err == nil && n > strings.Count(string(data), "\n")+1 {
			t.Fatalf("%d entries from %d lines", n, strings.Count(string(data), "\n")+1)
		}
	})
}

func BenchmarkARP(b *testing.B) {
	benchUpdate(b, fixtureCollector(b, "arp", nil))
}
