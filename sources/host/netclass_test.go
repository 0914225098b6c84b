package host

import "testing"

// netclassPaths are the fixture paths with class/net's symlinks restored
// (see h2RepairedSys).
func netclassPaths(t *testing.T) Paths {
	dir := h2Fixtures(t)
	p := h2FixturePaths(dir)
	p.Sys = h2RepairedSys(t, p.Sys, "class/net")
	return p
}

func TestNetclassGolden(t *testing.T) {
	dir := h2Fixtures(t)
	c := h2NewCollector(t, "netclass", netclassPaths(t), true, nil)
	h2Compare(t, h2LoadE2E(t, dir), h2Gather(t, c), nil,
		"node_network_address_assign_type", "node_network_carrier*", "node_network_device_id",
		"node_network_dormant", "node_network_flags", "node_network_iface_*", "node_network_info",
		"node_network_mtu_bytes", "node_network_name_assign_type", "node_network_net_dev_group",
		"node_network_protocol_type", "node_network_speed_bytes", "node_network_transmit_queue_length",
		"node_network_up")
}

func TestNetclassInvalidSpeedReported(t *testing.T) {
	c := h2NewCollector(t, "netclass", netclassPaths(t), false, nil)
	mfs := h2Gather(t, c)
	speeds := h2Series(mfs["node_network_speed_bytes"])
	// Without ignore-invalid-speed, bond0's -1 Mb/s is reported as is.
	want := `{device="bond0"} -125000`
	found := false
	for _, s := range speeds {
		found = found || s == want
	}
	if !found {
		t.Errorf("speed series %v lack %s", speeds, want)
	}
	// Without ignored-devices, dmz and int are reported.
	if ups := h2Series(mfs["node_network_up"]); len(ups) != 4 {
		t.Errorf("node_network_up series %v, want 4 devices", ups)
	}
}
