package httpclient

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestAuthHeader(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"none", Config{}, ""},
		{"basic", Config{BasicAuth: &BasicAuth{Username: "u", Password: "p"}}, "Basic dTpw"},
		{"authorization default type", Config{Authorization: &Authorization{Credentials: "c"}}, "Bearer c"},
		{"authorization custom type", Config{Authorization: &Authorization{Type: "Token", Credentials: "c"}}, "Token c"},
		{"bearer file", Config{BearerTokenFile: tokenFile}, "Bearer one"},
	}
	for _, c := range cases {
		if got := NewAuth(&c.cfg, nil).Header(); got != c.want {
			t.Errorf("%s: header %q, want %q", c.name, got, c.want)
		}
	}

	// A rotated file is read again; a file that disappears keeps its last value.
	a := NewAuth(&Config{BearerTokenFile: tokenFile}, func(string, error) {})
	a.Header()
	if err := os.WriteFile(tokenFile, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := a.Header(); got != "Bearer two" {
		t.Errorf("after rotation: %q", got)
	}
	os.Remove(tokenFile)
	if got := a.Header(); got != "Bearer two" {
		t.Errorf("after removal: %q, want the last value", got)
	}
}

func TestRoundTripperKeepsExplicitHeader(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	c := &http.Client{Transport: NewAuth(&Config{BearerToken: "t"}, nil).RoundTripper(http.DefaultTransport)}
	if _, err := c.Get(srv.URL); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Authorization", "Custom x")
	if _, err := c.Do(req); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "Bearer t" || got[1] != "Custom x" {
		t.Fatalf("headers seen %q", got)
	}
}
