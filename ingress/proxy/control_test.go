package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetd/fleetd/ingress"
)

func TestControlSocket(t *testing.T) {
	a := startBackend(t, "a", nil)
	dir := t.TempDir()
	s := newTestServer(t, Options{StateDir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()

	sock := filepath.Join(dir, "control.sock")
	c := Client{Socket: sock}
	waitFor(t, 5*time.Second, "the control socket", func() bool {
		_, err := c.State(ctx)
		return err == nil
	})
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, mode %v", err, fi.Mode().Perm())
	}

	port := freePort(t)
	if err := c.Push(ctx, table(2, httpListener(port, route("web", a.backend())))); err != nil {
		t.Fatalf("Push: %v", err)
	}
	st, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != 2 || st.Backends["id-a"].Name != "a" || !st.Backends["id-a"].Healthy {
		t.Fatalf("state after push: %+v", st)
	}
	if code, _ := get(t, port, "", "/"); code != http.StatusOK {
		t.Fatalf("pushed table answers %d", code)
	}

	if err := c.Push(ctx, table(1)); !errors.Is(err, ErrStale) {
		t.Fatalf("Push(stale) = %v, want ErrStale", err)
	}
	bad := route("web", a.backend())
	bad.Balance = "fastest"
	if err := c.Push(ctx, table(3, httpListener(port, bad))); !errors.Is(err, ingress.ErrInvalidTable) {
		t.Fatalf("Push(invalid) = %v, want ErrInvalidTable", err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	busyPort := uint16(busy.Addr().(*net.TCPAddr).Port)
	if err := c.Push(ctx, table(3, httpListener(busyPort, route("web", a.backend())))); !errors.Is(err, ErrBind) || errors.Is(err, ingress.ErrInvalidTable) {
		t.Fatalf("Push(busy port) = %v, want ErrBind (a busy port is the host's state, not a bad table)", err)
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if !portFree(port) {
		t.Fatal("a listener is still bound after Serve returned")
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("control socket left behind: %v", err)
	}
}

func TestServeReplacesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "control.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, Options{StateDir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	c := Client{Socket: sock}
	waitFor(t, 5*time.Second, "the control socket", func() bool {
		_, err := c.State(ctx)
		return err == nil
	})
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestControlHealthz(t *testing.T) {
	s := newTestServer(t, Options{})
	rec := newRecorder(s, http.MethodGet, "/healthz")
	if rec.Code != http.StatusOK || rec.Body.String() != "ok" {
		t.Fatalf("/healthz: %d %q", rec.Code, rec.Body.String())
	}
}

// newRecorder sends one request to the Server's control handler.
func newRecorder(s *Server, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.ControlHandler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}
