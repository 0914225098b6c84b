package dockerengine

import (
	"path/filepath"
	"testing"

	"github.com/vigilhq/vigil/internal/engineapi"
)

// Users of one host share one Engine; the last Close stops it, and the
// next Open starts a new one. Nothing here needs a reachable Engine.
func TestSharedPerHostAndRefcounted(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "missing.sock")
	a, err := Open(host, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(host, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("two users of one host got two Engines")
	}
	private, err := OpenWith(host+"#tls", host, engineapi.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if private == a {
		t.Fatal("a private key shared the public Engine")
	}
	private.Close()
	if a.Ready() || len(a.Running()) != 0 {
		t.Fatal("an unreachable Engine reports itself ready")
	}
	a.Close()
	select {
	case <-a.done:
		t.Fatal("the Engine stopped while a user still holds it")
	default:
	}
	b.Close()
	<-a.done // stopped by the last Close
	c, err := Open(host, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c == a {
		t.Fatal("Open after the last Close returned the stopped Engine")
	}
}
