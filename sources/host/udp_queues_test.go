package host

import (
	"errors"
	"testing"
)

func TestUDPQueuesGolden(t *testing.T) {
	checkGoldenH2(t, "udp_queues", "node_udp_queues")
}

func TestUDPQueuesNoData(t *testing.T) {
	c := h2NewCollector(t, "udp_queues", Paths{Proc: t.TempDir()}, false, nil)
	ch := make(chan prometheusMetricH2, 8)
	if err := c.Update(ch); !errors.Is(err, ErrNoData) {
		t.Fatalf("err = %v, want ErrNoData", err)
	}
}
