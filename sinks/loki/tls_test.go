package loki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vigil test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a key pair in PEM, signed by the CA (or self-signed when
// ca is nil).
func (ca *testCA) issue(t *testing.T, cn string, dns []string, ips []net.IP, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	parent, signer := tmpl, any(key)
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newTLSLokiServer is newLokiServer over TLS with the given server config.
func newTLSLokiServer(t *testing.T, cfg *tls.Config) *lokiServer {
	t.Helper()
	ls := &lokiServer{}
	ls.srv = httptest.NewUnstartedServer(http.HandlerFunc(ls.handle))
	ls.srv.TLS = cfg
	ls.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are expected
	ls.srv.StartTLS()
	t.Cleanup(ls.srv.Close)
	return ls
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	caFile := writeFile(t, dir, "ca.pem", ca.pem)
	localhost := []net.IP{net.ParseIP("127.0.0.1")}

	srvCert, srvKey := ca.issue(t, "loki", nil, localhost, x509.ExtKeyUsageServerAuth)
	byIP, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	namedCert, namedKey := ca.issue(t, "loki", []string{"loki.internal"}, nil, x509.ExtKeyUsageServerAuth)
	byName, err := tls.X509KeyPair(namedCert, namedKey)
	if err != nil {
		t.Fatal(err)
	}
	selfCert, selfKey := (*testCA)(nil).issue(t, "self", nil, localhost, x509.ExtKeyUsageServerAuth)
	self, err := tls.X509KeyPair(selfCert, selfKey)
	if err != nil {
		t.Fatal(err)
	}
	cliCert, cliKey := ca.issue(t, "vigil", nil, nil, x509.ExtKeyUsageClientAuth)
	cliCertFile := writeFile(t, dir, "client.pem", cliCert)
	cliKeyFile := writeFile(t, dir, "client-key.pem", cliKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)

	tests := []struct {
		name      string
		server    *tls.Config
		cfg       string
		delivered bool
	}{
		{
			name: "CA file and client certificate",
			server: &tls.Config{Certificates: []tls.Certificate{byIP},
				ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool},
			cfg:       "tls_config: {ca_file: " + caFile + ", cert_file: " + cliCertFile + ", key_file: " + cliKeyFile + "}",
			delivered: true,
		},
		{
			name: "client certificate missing",
			server: &tls.Config{Certificates: []tls.Certificate{byIP},
				ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool},
			cfg: "tls_config: {ca_file: " + caFile + "}",
		},
		{
			name:      "server_name",
			server:    &tls.Config{Certificates: []tls.Certificate{byName}},
			cfg:       "tls_config: {ca_file: " + caFile + ", server_name: loki.internal}",
			delivered: true,
		},
		{
			name:      "insecure_skip_verify",
			server:    &tls.Config{Certificates: []tls.Certificate{self}},
			cfg:       "tls_config: {insecure_skip_verify: true}",
			delivered: true,
		},
		{
			name:   "unknown authority",
			server: &tls.Config{Certificates: []tls.Certificate{self}},
			cfg:    "tls_config: {ca_file: " + caFile + "}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTLSLokiServer(t, tt.server)
			s := newTestSink(t, "url: "+srv.URL()+"\nbatchwait: 10ms\n"+tt.cfg+"\n"+fastRetries+"  max_retries: 1\n")
			tb := newTracked(entry(1, "secure", ls("job", "x")))
			consume(s, tb)
			waitFor(t, "settlement", func() bool { return tb.settled.Load() == 1 })
			got := srv.lines("")
			if tt.delivered != slices.Equal(got, []string{"secure"}) {
				t.Fatalf("delivered = %v, want %v (logs: %s)", got, tt.delivered, s.logs.String())
			}
			dropped := value(s.metrics.DroppedEntries.WithLabelValues(hostOf(srv.srv.URL), reasonGeneric, ""))
			if tt.delivered == (dropped != 0) {
				t.Errorf("dropped = %v", dropped)
			}
		})
	}
}
