package host

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures have no net/dev: node_exporter's end-to-end run reads the
// live host's loopback over netlink (hence the excluded byte and packet
// counters). This test does the same, so it checks names, help, types and
// labels, and loopback's zero error counters.
func TestNetdevGolden(t *testing.T) {
	if _, err := os.Stat("/proc/net/dev"); err != nil {
		t.Skip("no /proc/net/dev")
	}
	cfg := fixtureConfig(t, "netdev")
	cfg.Procfs = "/proc"
	checkGoldenWith(t, cfg, "netdev",
		"node_network_receive_*", "node_network_transmit_bytes_total", "node_network_transmit_carrier_total",
		"node_network_transmit_colls_total", "node_network_transmit_compressed_total", "node_network_transmit_drop_total",
		"node_network_transmit_errs_total", "node_network_transmit_fifo_total", "node_network_transmit_packets_total")
}

func TestNetdevFixtureFile(t *testing.T) {
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	// As printed by the kernel's dev_seq_show.
	data := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16
  eth0: 100 200 0 0 0 0 0 0 300 400 0 0 0 0 0 0
veth1a: 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1
`
	if err := os.WriteFile(filepath.Join(proc, "net/dev"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts map[string]string
		want map[string]string // family -> series
	}{
		{"legacy", map[string]string{"device-exclude": "^veth", "netlink": "false"}, map[string]string{
			"node_network_receive_errs_total":      `{device="eth0"} 0,{device="lo"} 3`,
			"node_network_receive_multicast_total": `{device="eth0"} 0,{device="lo"} 8`,
			"node_network_transmit_colls_total":    `{device="eth0"} 0,{device="lo"} 14`,
			"node_network_transmit_carrier_total":  `{device="eth0"} 0,{device="lo"} 15`,
			"node_network_transmit_bytes_total":    `{device="eth0"} 300,{device="lo"} 9`,
		}},
		{"detailed", map[string]string{"device-include": "^lo$", "enable-detailed-metrics": "true", "netlink": "false"}, map[string]string{
			"node_network_receive_errors_total":          `{device="lo"} 3`,
			"node_network_multicast_total":               `{device="lo"} 8`,
			"node_network_collisions_total":              `{device="lo"} 14`,
			"node_network_transmit_carrier_errors_total": `{device="lo"} 15`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mfs := collect(t, newCollector(t, "netdev", Paths{Proc: proc}, tc.opts))
			if len(mfs) != 16 {
				t.Errorf("%d families, want 16", len(mfs))
			}
			for fam, want := range tc.want {
				mf, ok := mfs[fam]
				if !ok {
					t.Errorf("no %s", fam)
					continue
				}
				if got := strings.Join(seriesLines(mf), ","); got != want {
					t.Errorf("%s = %s, want %s", fam, got, want)
				}
			}
		})
	}
}

func TestNetdevBothFiltersRejected(t *testing.T) {
	spec := specByName(t, "netdev")
	env := &Env{Paths: Paths{Proc: "/proc"}, Logger: slog.New(slog.DiscardHandler), name: "netdev", options: map[string]string{
		"netdev.device-include": "a", "netdev.device-exclude": "b", "netdev.device-whitelist": "", "netdev.device-blacklist": "",
		"netdev.address-info": "false", "netdev.enable-detailed-metrics": "false",
	}}
	if _, err := spec.New(env); err == nil {
		t.Fatal("include and exclude together accepted")
	}
}

func TestNetdevAddressInfo(t *testing.T) {
	mfs := collect(t, newCollector(t, "netdev", Paths{Proc: "/proc"}, map[string]string{"address-info": "true", "device-include": "^lo$"}))
	mf, ok := mfs["node_network_address_info"]
	if !ok {
		t.Skip("no addresses on this host")
	}
	for _, s := range seriesLines(mf) {
		if s == `{address="127.0.0.1",device="lo",netmask="8",scope="link-local"} 1` {
			return
		}
	}
	t.Errorf("no loopback address in %v", seriesLines(mf))
}
