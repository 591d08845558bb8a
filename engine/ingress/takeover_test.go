package ingress_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine/dockertest"

	eingress "github.com/fleetd/fleetd/engine/ingress"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir and
// returns a pool that trusts it.
func selfSigned(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fleetd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// TestIngressTakesOver: a service that published its port itself moves
// behind the ingress (one stop-first rollout, the ingress then binds the
// port); a TLS service and a plain TCP service go through it too; once no
// service asks for it, the ingress container is removed.
func TestIngressTakesOver(t *testing.T) {
	b := newBed(t)
	dir := filepath.Join(b.repo, b.fleet)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	roots := selfSigned(t, dir)
	web, secure, raw := b.port, dockertest.FreePort(t), dockertest.FreePort(t)
	write := func(behind bool) {
		ext := ""
		if behind {
			ext = "    x-fleetd: {ingress: true}\n"
		}
		compose := fmt.Sprintf(`services:
  api:
    image: %[1]s
    pull_policy: never
    ports: ["127.0.0.1:%[2]d:8080"]
    stop_grace_period: 2s
%[5]s`, b.image, web, secure, raw, ext)
		if behind {
			compose += fmt.Sprintf(`  secure:
    image: %[1]s
    pull_policy: never
    ports: ["127.0.0.1:%[2]d:8080"]
    x-fleetd: {ingress: {tls: {cert: site_cert, key: site_key}}}
  raw:
    image: %[1]s
    pull_policy: never
    ports: ["127.0.0.1:%[3]d:8080"]
    deploy: {replicas: 2}
    x-fleetd: {ingress: {protocol: tcp}}
secrets:
  site_cert: {file: ./cert.pem}
  site_key: {file: ./key.pem}
`, b.image, secure, raw)
		}
		if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(false)
	b.converge()
	c := &http.Client{Timeout: 5 * time.Second}
	eventually(t, c, b.url(), "v1") // no gate without the ingress: it answers once listening

	write(true)
	out := b.converge()
	if p := out.Plans[0].String(); !strings.Contains(p, "stop-first (forced: its replicas publish host port") {
		t.Errorf("moving onto the ingress is not a stop-first rollout:\n%s", p)
	}
	if body, _, err := get(c, b.url()); err != nil || body != "v1" {
		t.Fatalf("through the ingress after the takeover: %q, %v", body, err)
	}
	tc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if body, _, err := get(tc, fmt.Sprintf("https://127.0.0.1:%d/", secure)); err != nil || body != "v1" {
		t.Errorf("https through the ingress: %q, %v", body, err)
	}
	hosts := map[string]bool{}
	for range 10 {
		// A new connection each time: a TCP listener balances connections.
		nc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		body, host, err := get(nc, fmt.Sprintf("http://127.0.0.1:%d/", raw))
		if err != nil || body != "v1" {
			t.Fatalf("plain TCP through the ingress: %q, %v", body, err)
		}
		hosts[host] = true
	}
	if len(hosts) != 2 {
		t.Errorf("10 TCP connections reached %d replicas, want both", len(hosts))
	}

	// Removed by hand with nothing to apply: Keep creates it again.
	if err := b.cli.ContainerRemove(t.Context(), eingress.ContainerName(b.instance), container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	kept := make(chan struct{})
	go func() { b.router.Keep(ctx, 200*time.Millisecond); close(kept) }()
	eventually(t, c, b.url(), "v1")
	cancel()
	<-kept

	write(false)
	b.converge()
	if _, err := b.cli.ContainerInspect(t.Context(), eingress.ContainerName(b.instance)); !client.IsErrNotFound(err) {
		t.Errorf("the ingress is still there with no service behind it: %v", err)
	}
	eventually(t, c, b.url(), "v1")
}

// eventually polls url until it answers want, for up to 30 s.
func eventually(t testing.TB, c *http.Client, url, want string) {
	t.Helper()
	var body string
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if body, _, err = get(c, url); err == nil && body == want {
			return
		}
	}
	t.Fatalf("GET %s: %q, %v; want %q", url, body, err, want)
}
