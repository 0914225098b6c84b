package host

import "testing"

func TestSoftnetGolden(t *testing.T) {
	checkGolden(t, "softnet", "node_softnet_*")
}
