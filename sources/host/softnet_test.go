package host

import "testing"

func TestSoftnetGolden(t *testing.T) {
	checkGoldenH2(t, "softnet", "node_softnet_*")
}
