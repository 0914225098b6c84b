package host

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestUDPQueuesGolden(t *testing.T) {
	checkGolden(t, "udp_queues", "node_udp_queues")
}

func TestUDPQueuesNoData(t *testing.T) {
	c := newCollector(t, "udp_queues", Paths{Proc: t.TempDir()}, nil)
	ch := make(chan prometheus.Metric, 8)
	if err := c.Update(ch); !errors.Is(err, ErrNoData) {
		t.Fatalf("err = %v, want ErrNoData", err)
	}
}
