package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/victorialogs"
)

// victoriaLogs is a real Loki-protocol server: VictoriaLogs, built by
// `make tools` into bin/victoria-logs.
type victoriaLogs struct {
	*victorialogs.Server
	t    *testing.T
	base string
}

// vlRow is one log entry as LogsQL returns it.
type vlRow = victorialogs.Row

// startVictoriaLogs starts an empty VictoriaLogs on a free loopback port.
// It is skipped when the binary is missing, or fails under CI=true.
func startVictoriaLogs(t *testing.T) *victoriaLogs {
	t.Helper()
	needVigil(t)
	s := victorialogs.Start(t)
	return &victoriaLogs{Server: s, t: t, base: s.Base}
}

func (v *victoriaLogs) pushURL() string { return v.PushURL() }

func (v *victoriaLogs) query(q string, limit int) ([]vlRow, error) { return v.Query(q, limit) }

func (v *victoriaLogs) count(filter string) (int, error) { return v.Count(filter) }

func (v *victoriaLogs) countUniq(filter string) (int, error) { return v.CountUniq(filter) }

// waitCount polls until at least n entries match filter, and returns the
// count.
func (v *victoriaLogs) waitCount(filter string, n int, timeout time.Duration) int {
	v.t.Helper()
	var got int
	var err error
	waitFor(v.t, timeout, func() string {
		return fmt.Sprintf("VictoriaLogs has %d entries matching %s, want %d (err %v)", got, filter, n, err)
	}, func() bool {
		got, err = v.count(filter)
		return err == nil && got >= n
	})
	return got
}

// msgCounts returns how many times each _msg matching filter is stored.
func (v *victoriaLogs) msgCounts(filter string, limit int) map[string]int {
	v.t.Helper()
	rows, err := v.query(filter+" | fields _msg", limit)
	if err != nil {
		v.t.Fatal(err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r["_msg"]]++
	}
	return out
}
