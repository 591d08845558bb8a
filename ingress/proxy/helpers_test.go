package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetd/fleetd/ingress"
)

// freePort returns a loopback port nobody listens on (now).
func freePort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return uint16(port)
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

// portFree reports whether port can be bound on loopback now.
func portFree(port uint16) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// newTestServer returns a Server bound on loopback, closed at cleanup.
func newTestServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	opts.Bind = func(port uint16) string { return fmt.Sprintf("127.0.0.1:%d", port) }
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testBackend is an HTTP backend that answers its name (unless its
// handler says otherwise) and counts its requests.
type testBackend struct {
	name string
	addr string
	hits atomic.Int64
}

// startBackend runs an HTTP backend; h nil answers the backend's name.
func startBackend(t *testing.T, name string, h http.HandlerFunc) *testBackend {
	t.Helper()
	tb := &testBackend{name: name}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tb.hits.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	tb.addr = srv.Listener.Addr().String()
	return tb
}

// backend is tb as a table backend.
func (tb *testBackend) backend() ingress.Backend {
	return ingress.Backend{ID: "id-" + tb.name, Name: tb.name, Addr: tb.addr}
}

// deadBackend is a table backend nothing answers for.
func deadBackend(t *testing.T, name string) ingress.Backend {
	return ingress.Backend{ID: "id-" + name, Name: name, Addr: deadAddr(t)}
}

// route returns a round robin route of fleet f.
func route(service string, bs ...ingress.Backend) ingress.Route {
	return ingress.Route{Fleet: "f", Service: service, Balance: ingress.RoundRobin, Drain: 5 * time.Second, Backends: bs}
}

// httpListener returns an http listener on port.
func httpListener(port uint16, routes ...ingress.Route) ingress.Listener {
	return ingress.Listener{Port: port, Protocol: ingress.ProtoHTTP, Routes: routes}
}

// tcpListener returns a tcp listener on port.
func tcpListener(port uint16, r ingress.Route) ingress.Listener {
	return ingress.Listener{Port: port, Protocol: ingress.ProtoTCP, Routes: []ingress.Route{r}}
}

// table returns a table of version v.
func table(v uint64, ls ...ingress.Listener) ingress.Table {
	return ingress.Table{Version: v, Listeners: ls}
}

// mustApply applies t or fails the test.
func mustApply(t *testing.T, s *Server, tbl ingress.Table) {
	t.Helper()
	if err := s.Apply(tbl); err != nil {
		t.Fatalf("apply version %d: %v", tbl.Version, err)
	}
}

var (
	clientOnce sync.Once
	client     *http.Client
)

// testClient is an HTTP client with short timeouts and no environment
// proxy.
func testClient() *http.Client {
	clientOnce.Do(func() {
		client = &http.Client{
			Transport: &http.Transport{DisableKeepAlives: true},
			Timeout:   10 * time.Second,
		}
	})
	return client
}

// do sends a request to the proxy on port and returns status and body.
func do(t *testing.T, method string, port uint16, host, path string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), body)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := testClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(data))
}

// tryGet sends a GET to the proxy on port; it is safe in goroutines.
func tryGet(port uint16, host, path string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := testClient().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(data)), err
}

// get sends a GET to the proxy on port.
func get(t *testing.T, port uint16, host, path string) (int, string) {
	t.Helper()
	return do(t, http.MethodGet, port, host, path, nil)
}

// waitFor polls cond until it holds or fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startEcho runs a TCP echo server; it counts its connections.
func startEcho(t *testing.T) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int64)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		open []net.Conn
		done bool
	)
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		done = true
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			conns.Add(1)
			mu.Lock()
			open = append(open, c)
			if done {
				_ = c.Close()
			}
			mu.Unlock()
			wg.Go(func() {
				defer func() { _ = c.Close() }()
				_, _ = io.Copy(c, c)
			})
		}
	})
	return ln.Addr().String(), conns
}

// echoOnce writes msg on c and reads it back.
func echoOnce(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != msg {
		t.Fatalf("echo: got %q, want %q", buf, msg)
	}
	_ = c.SetDeadline(time.Time{})
}
