package victorialogs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Tenant is the server as one tenant sees it. VictoriaLogs stores a Loki
// push under the tenant its X-Scope-OrgID names, read as "AccountID" or
// "AccountID:ProjectID": tenants must be numeric. A push without the
// header, or with "0", lands in account 0, which Server's own queries read.
type Tenant struct {
	s         *Server
	accountID string
	projectID string
}

// Tenant returns the view of the tenant a push with X-Scope-OrgID orgID
// is stored under.
func (s *Server) Tenant(orgID string) (*Tenant, error) {
	account, project, _ := strings.Cut(orgID, ":")
	for _, v := range []string{account, project} {
		if v == "" {
			continue
		}
		if _, err := strconv.ParseUint(v, 10, 32); err != nil {
			return nil, fmt.Errorf("tenant %q: VictoriaLogs needs a numeric AccountID[:ProjectID]", orgID)
		}
	}
	if account == "" {
		account = "0"
	}
	if project == "" {
		project = "0"
	}
	return &Tenant{s: s, accountID: account, projectID: project}, nil
}

// Count is the number of the tenant's entries matching a LogsQL filter.
func (t *Tenant) Count(filter string) (int, error) {
	n := -1
	err := t.Each(filter+" | stats count() as n", func(raw []byte) error {
		var row Row
		if err := json.Unmarshal(raw, &row); err != nil {
			return err
		}
		v, err := strconv.Atoi(row["n"])
		n = v
		return err
	})
	if err == nil && n < 0 {
		err = fmt.Errorf("count query on %s returned no row", filter)
	}
	return n, err
}

// Each flushes what was ingested, runs a LogsQL query as the tenant and
// hands fn each result row as the JSON object VictoriaLogs sends, without
// holding the whole result: a load test reads back millions of rows. The
// bytes are valid only during the call.
func (t *Tenant) Each(q string, fn func(raw []byte) error) error {
	resp, err := client.Get(t.s.Base + "/internal/force_flush")
	if err != nil {
		return fmt.Errorf("force_flush: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("force_flush: status %d", resp.StatusCode)
	}
	req, err := http.NewRequest(http.MethodPost, t.s.Base+"/select/logsql/query",
		strings.NewReader(url.Values{"query": {q}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("AccountID", t.accountID)
	req.Header.Set("ProjectID", t.projectID)
	// Reading back a large result takes longer than the shared client's
	// timeout allows.
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("query %q: %w", q, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		return fmt.Errorf("query %q: status %d: %s", q, resp.StatusCode, b.String())
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if err := fn(sc.Bytes()); err != nil {
			return fmt.Errorf("query %q: %w", q, err)
		}
	}
	return sc.Err()
}
