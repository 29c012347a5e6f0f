package heartbeatd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeCert makes a certificate for subject, signed by parent (self-signed when nil), and
// writes it and its key as PEM files NAME.pem and NAME.key (mode 0600) in dir.
func writeCert(t *testing.T, dir, name string, tmpl *x509.Certificate, parent *x509.Certificate,
	parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, kind string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(name+".pem", "CERTIFICATE", der)
	write(name+".key", "EC PRIVATE KEY", keyDER)
	return cert, key
}

// tlsFiles writes a throwaway CA, a server certificate for 127.0.0.1 and a client
// certificate into dir.
func tlsFiles(t *testing.T, dir string) {
	now := time.Now()
	ca, caKey := writeCert(t, dir, "ca", &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "heartbeatd-go-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil, nil)
	writeCert(t, dir, "server", &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "go-tls"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, caKey)
	writeCert(t, dir, "client", &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "gateway"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
}

// TestTLS: HTTPS with the daemon's certificate checked against a CA file, and mutual TLS.
func TestTLS(t *testing.T) {
	needDaemon(t)
	certs := t.TempDir()
	tlsFiles(t, certs)
	f := func(name string) string { return filepath.Join(certs, name) }
	d := startDaemon(t, "tls", map[string]string{
		"api.tls.cert_file":      f("server.pem"),
		"api.tls.key_file":       f("server.key"),
		"api.tls.client_ca_file": f("ca.pem"),
	})
	ctx := testCtx(t)
	url := "https://" + d.httpAddr

	var dc dialCounter
	c := newClient(t, Options{URL: url, CAFile: f("ca.pem"), CertFile: f("client.pem"), KeyFile: f("client.key"),
		DialContext: dc.dial})
	h, err := c.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Node != "go-tls" {
		t.Fatalf("health: %+v", h)
	}
	for i := 0; i < 10; i++ {
		if err := c.Heartbeat(ctx, maxID); err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.Status(ctx, maxID)
	if err != nil || st.User != maxID || !st.Online {
		t.Fatalf("status over TLS: %+v, %v", st, err)
	}
	if n := dc.count(); n != 1 {
		t.Fatalf("12 calls over TLS opened %d connections, want 1 (one handshake)", n)
	}

	// Events over TLS, with the largest id.
	s, err := c.Events(ctx, EventsOptions{Users: []uint64{maxID}, Members: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch := pump(s)
	nextEvent(t, ch, 10*time.Second, "user 2^64-1 online, initial", isUser(maxID, true, true), nil)
	if err := c.Logout(ctx, maxID); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, 10*time.Second, "user 2^64-1 offline", isUser(maxID, false, false), nil)

	// Without the CA the daemon's certificate is not trusted.
	_, err = newClient(t, Options{URL: url, CertFile: f("client.pem"), KeyFile: f("client.key")}).Health(ctx)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("without CAFile: %v, want an unknown authority error", err)
	}
	// Without a client certificate the daemon refuses the handshake.
	if _, err := newClient(t, Options{URL: url, CAFile: f("ca.pem")}).Health(ctx); err == nil {
		t.Fatal("mutual TLS without a client certificate succeeded")
	}
	// TLS options with a plain URL are a mistake.
	if _, err := New(Options{URL: "http://" + d.httpAddr, CAFile: f("ca.pem")}); err == nil {
		t.Fatal("CAFile with an http URL accepted")
	}
}
