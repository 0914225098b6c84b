package host

import (
	"slices"
	"testing"
)

func TestNetclassGolden(t *testing.T) {
	checkGolden(t, "netclass",
		"node_network_address_assign_type", "node_network_carrier*", "node_network_device_id",
		"node_network_dormant", "node_network_flags", "node_network_iface_*", "node_network_info",
		"node_network_mtu_bytes", "node_network_name_assign_type", "node_network_net_dev_group",
		"node_network_protocol_type", "node_network_speed_bytes", "node_network_transmit_queue_length",
		"node_network_up")
}

func TestNetclassInvalidSpeedReported(t *testing.T) {
	mfs := collect(t, newCollector(t, "netclass", fixturePaths(t), nil))
	speeds := seriesLines(mfs["node_network_speed_bytes"])
	// Without ignore-invalid-speed, bond0's -1 Mb/s is reported as is.
	if want := `{device="bond0"} -125000`; !slices.Contains(speeds, want) {
		t.Errorf("speed series %v lack %s", speeds, want)
	}
	// Without ignored-devices, dmz and int are reported.
	if ups := seriesLines(mfs["node_network_up"]); len(ups) != 4 {
		t.Errorf("node_network_up series %v, want 4 devices", ups)
	}
}
