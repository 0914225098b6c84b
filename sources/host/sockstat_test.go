package host

import "testing"

func TestSockstatGolden(t *testing.T) {
	if sockstatPageSize != 4096 {
		t.Skip("e2e-output.txt's mem_bytes assume 4 KiB pages")
	}
	checkGolden(t, "sockstat", "node_sockstat_*")
}
