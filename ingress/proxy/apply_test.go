package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/ingress"
)

func TestApplyRefusesInvalidTableWhole(t *testing.T) {
	a := startBackend(t, "a", nil)
	s := newTestServer(t, Options{})
	p1, p2 := freePort(t), freePort(t)
	mustApply(t, s, table(1, httpListener(p1, route("web", a.backend()))))

	bad := route("api", a.backend())
	bad.Balance = "random"
	err := s.Apply(table(2, httpListener(p1, route("web", a.backend())), httpListener(p2, bad)))
	if !errors.Is(err, ingress.ErrInvalidTable) {
		t.Fatalf("Apply(invalid) = %v, want ErrInvalidTable", err)
	}
	if v := s.Table().Version; v != 1 {
		t.Fatalf("version after a refused table = %d, want 1", v)
	}
	if code, body := get(t, p1, "", "/"); code != http.StatusOK || body != "a" {
		t.Fatalf("old table: got %d %q", code, body)
	}
	if !portFree(p2) {
		t.Fatalf("port %d of the refused table is bound", p2)
	}
}

func TestApplyRefusesStaleVersion(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	s := newTestServer(t, Options{})
	port := freePort(t)
	v5 := table(5, httpListener(port, route("web", a.backend())))
	mustApply(t, s, v5)

	if err := s.Apply(table(4, httpListener(port, route("web", b.backend())))); !errors.Is(err, ErrStale) {
		t.Fatalf("Apply(older) = %v, want ErrStale", err)
	}
	if err := s.Apply(table(5, httpListener(port, route("web", b.backend())))); !errors.Is(err, ErrStale) {
		t.Fatalf("Apply(same version, other content) = %v, want ErrStale", err)
	}
	// The same table again, listed in another order, is a no-op.
	again := table(5, httpListener(port, route("web", a.backend())))
	again.Listeners[0].Routes[0].Backends = append([]ingress.Backend{}, a.backend())
	if err := s.Apply(again); err != nil {
		t.Fatalf("Apply(same table) = %v, want nil", err)
	}
	if _, body := get(t, port, "", "/"); body != "a" {
		t.Fatalf("served %q, want a", body)
	}
}

func TestApplyRefusesBusyPort(t *testing.T) {
	a := startBackend(t, "a", nil)
	s := newTestServer(t, Options{})
	p1, pNew := freePort(t), freePort(t)
	mustApply(t, s, table(1, httpListener(p1, route("web", a.backend()))))

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	pBusy := uint16(busy.Addr().(*net.TCPAddr).Port)

	err = s.Apply(table(2,
		httpListener(p1, route("web", a.backend())),
		httpListener(pNew, route("api", a.backend())),
		httpListener(pBusy, route("admin", a.backend()))))
	if !errors.Is(err, ErrBind) || !errors.Is(err, ingress.ErrInvalidTable) {
		t.Fatalf("Apply(busy port) = %v, want ErrBind", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(pBusy)) {
		t.Fatalf("error %q does not name port %d", err, pBusy)
	}
	if v := s.Table().Version; v != 1 {
		t.Fatalf("version = %d, want 1", v)
	}
	if code, _ := get(t, p1, "", "/"); code != http.StatusOK {
		t.Fatalf("old table answers %d", code)
	}
	if !portFree(pNew) {
		t.Fatalf("port %d leaked after a refused table", pNew)
	}
}

func TestApplyKeepsUnchangedListenersAndClosesRemovedOnes(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	s := newTestServer(t, Options{})
	p1, p2 := freePort(t), freePort(t)
	drained := route("api", a.backend())
	drained.Drain = 0
	mustApply(t, s, table(1, httpListener(p1, route("web", a.backend())), httpListener(p2, drained)))
	kept := s.listeners[p1]

	mustApply(t, s, table(2, httpListener(p1, route("web", b.backend()))))
	if s.listeners[p1] != kept {
		t.Fatal("the unchanged listener was replaced")
	}
	if _, body := get(t, p1, "", "/"); body != "b" {
		t.Fatalf("kept listener served %q, want the new route's b", body)
	}
	waitFor(t, 5*time.Second, "the removed port to close", func() bool { return portFree(p2) })
	if _, ok := s.State().Backends["id-a"]; ok {
		t.Fatal("a backend that left the table idle is still in the state")
	}
}

func TestApplyChangesProtocolOnAPort(t *testing.T) {
	a := startBackend(t, "a", nil)
	echo, _ := startEcho(t)
	s := newTestServer(t, Options{})
	port := freePort(t)
	mustApply(t, s, table(1, httpListener(port, route("web", a.backend()))))

	r := route("db", ingress.Backend{ID: "id-echo", Name: "echo", Addr: echo})
	r.Drain = 0
	mustApply(t, s, table(2, tcpListener(port, r)))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	echoOnce(t, c, "hello")
}

func TestPersistedTableServedAfterRestart(t *testing.T) {
	a := startBackend(t, "a", nil)
	dir := t.TempDir()
	port := freePort(t)
	s1 := newTestServer(t, Options{StateDir: dir})
	mustApply(t, s1, table(3, httpListener(port, route("web", a.backend()))))
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "table.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("table.json mode %v, want 0600", fi.Mode().Perm())
	}

	s2 := newTestServer(t, Options{StateDir: dir})
	if v := s2.Table().Version; v != 3 {
		t.Fatalf("restarted server serves version %d, want 3", v)
	}
	if code, body := get(t, port, "", "/"); code != http.StatusOK || body != "a" {
		t.Fatalf("restarted server answered %d %q", code, body)
	}
	// The agent sending the same table again is a no-op; an older one is stale.
	if err := s2.Apply(table(3, httpListener(port, route("web", a.backend())))); err != nil {
		t.Fatalf("re-apply of the saved table: %v", err)
	}
	if err := s2.Apply(table(2)); !errors.Is(err, ErrStale) {
		t.Fatalf("older table after restart: %v, want ErrStale", err)
	}
}

func TestCorruptSavedTableStartsEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "table.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, Options{StateDir: dir})
	if v := s.Table().Version; v != 0 {
		t.Fatalf("version %d, want 0", v)
	}
	a := startBackend(t, "a", nil)
	mustApply(t, s, table(1, httpListener(freePort(t), route("web", a.backend()))))
}

func TestTLSListener(t *testing.T) {
	a := startBackend(t, "a", nil)
	s := newTestServer(t, Options{})
	certFile, keyFile := writeCert(t)
	port := freePort(t)
	l := httpListener(port, route("web", a.backend()))

	l.TLS = &ingress.TLS{CertFile: certFile, KeyFile: keyFile + ".missing"}
	if err := s.Apply(table(1, l)); !errors.Is(err, ingress.ErrInvalidTable) {
		t.Fatalf("Apply(missing key) = %v, want ErrInvalidTable", err)
	}
	if !portFree(port) {
		t.Fatal("port bound by a refused table")
	}

	l.TLS = &ingress.TLS{CertFile: certFile, KeyFile: keyFile}
	mustApply(t, s, table(1, l))
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed test certificate
		DisableKeepAlives: true,
	}, Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("https answered %d (tls %v)", resp.StatusCode, resp.TLS != nil)
	}
}

// writeCert writes a self-signed certificate and its key for 127.0.0.1.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fleetd test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
