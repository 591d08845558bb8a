package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	bs := []*testBackend{startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)}
	s := newTestServer(t, Options{})
	port := freePort(t)
	mustApply(t, s, table(1, httpListener(port, route("web", bs[0].backend(), bs[1].backend(), bs[2].backend()))))
	for range 30 {
		if code, _ := get(t, port, "", "/"); code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
	}
	for _, b := range bs {
		if n := b.hits.Load(); n != 10 {
			t.Errorf("backend %s got %d requests, want 10", b.name, n)
		}
	}
}

// slowGate makes a backend hold requests to /slow until released.
type slowGate struct {
	once    sync.Once
	release chan struct{}
}

func newSlowGate(t *testing.T) *slowGate {
	g := &slowGate{release: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *slowGate) open() { g.once.Do(func() { close(g.release) }) }

// handler answers name, after the gate opens for /slow.
func (g *slowGate) handler(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-g.release:
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, name)
	}
}

// inFlight returns the in-flight count of a backend by ID.
func inFlight(s *Server, id string) int64 { return s.State().Backends[id].InFlight }

func TestLeastConnPrefersIdleBackend(t *testing.T) {
	g := newSlowGate(t)
	a, b := startBackend(t, "a", g.handler("a")), startBackend(t, "b", g.handler("b"))
	s := newTestServer(t, Options{})
	port := freePort(t)
	r := route("web", a.backend(), b.backend())
	r.Balance = ingress.LeastConn
	mustApply(t, s, table(1, httpListener(port, r)))

	slow := make(chan string, 1)
	go func() {
		_, body, _ := tryGet(port, "", "/slow")
		slow <- body
	}()
	waitFor(t, 5*time.Second, "the slow request to start", func() bool {
		return inFlight(s, "id-a")+inFlight(s, "id-b") == 1
	})
	busy, idle := "a", "b"
	if inFlight(s, "id-b") == 1 {
		busy, idle = "b", "a"
	}
	for range 10 {
		if _, body := get(t, port, "", "/"); body != idle {
			t.Fatalf("least_conn sent a request to %s while %s holds a slow one", body, busy)
		}
	}
	g.open()
	if body := <-slow; body != busy {
		t.Fatalf("slow request answered by %q, want %q", body, busy)
	}
}

func TestHostAndPathRules(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	s := newTestServer(t, Options{})
	port := freePort(t)
	api := route("api", a.backend())
	api.Host, api.PathPrefix = "api.test", "/v1"
	site := route("site", b.backend())
	site.Host = "api.test"
	static := route("static", c.backend())
	static.PathPrefix = "/static/"
	empty := route("empty")
	empty.Host = "empty.test"
	mustApply(t, s, table(1, httpListener(port, static, site, empty, api)))

	cases := []struct {
		host, path string
		code       int
		body       string
	}{
		{"api.test", "/v1/users", 200, "a"},
		{"API.test:8080", "/v1", 200, "a"},
		{"api.test", "/v10", 200, "b"},
		{"api.test", "/", 200, "b"},
		{"other.test", "/static/app.css", 200, "c"},
		{"other.test", "/", 404, "fleetd ingress: no route for host other.test path /"},
		{"empty.test", "/", 503, "fleetd ingress: no healthy backend for f/empty"},
	}
	for _, tc := range cases {
		code, body := get(t, port, tc.host, tc.path+"?q=1")
		if code != tc.code || body != tc.body {
			t.Errorf("%s%s: got %d %q, want %d %q", tc.host, tc.path, code, body, tc.code, tc.body)
		}
	}
}

func TestForwardedHeadersAndHost(t *testing.T) {
	seen := make(chan *http.Request, 1)
	a := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Clone(context.Background())
	})
	s := newTestServer(t, Options{})
	port := freePort(t)
	mustApply(t, s, table(1, httpListener(port, route("web", a.backend()))))
	get(t, port, "shop.test", "/")
	r := <-seen
	if r.Host != "shop.test" {
		t.Errorf("backend saw Host %q, want shop.test", r.Host)
	}
	got := r.Header
	if got.Get("X-Forwarded-For") != "127.0.0.1" || got.Get("X-Forwarded-Host") != "shop.test" || got.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("forwarded headers: %v", got)
	}
}

// upgradeEcho answers an "Upgrade: echo" request with 101 Switching
// Protocols, then echoes the bytes of the connection it hijacked.
func upgradeEcho(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "echo" {
		http.Error(w, "want an upgrade", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer func() { _ = conn.Close() }()
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	if brw.Flush() != nil {
		return
	}
	_, _ = io.Copy(conn, brw)
}

// dialUpgrade opens an upgraded connection through the proxy on port
// and checks it echoes.
func dialUpgrade(t *testing.T, port uint16) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answered %d", resp.StatusCode)
	}
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, br
}

func TestWebSocketUpgradeCountedInFlight(t *testing.T) {
	a := startBackend(t, "a", upgradeEcho)
	s := newTestServer(t, Options{})
	port := freePort(t)
	mustApply(t, s, table(1, httpListener(port, route("web", a.backend()))))

	c, _ := dialUpgrade(t, port)
	if n := inFlight(s, "id-a"); n != 1 {
		t.Fatalf("in flight with an open upgraded connection = %d, want 1", n)
	}
	_ = c.Close()
	waitFor(t, 5*time.Second, "the closed upgrade to leave in flight", func() bool { return inFlight(s, "id-a") == 0 })
}

func TestUpgradedConnectionCutAfterDrain(t *testing.T) {
	a := startBackend(t, "a", upgradeEcho)
	s := newTestServer(t, Options{})
	port := freePort(t)
	mustApply(t, s, table(1, httpListener(port, route("web", a.backend()))))
	c, br := dialUpgrade(t, port)

	draining := a.backend()
	draining.Draining = true
	r := route("web", draining)
	r.Drain = 100 * time.Millisecond
	mustApply(t, s, table(2, httpListener(port, r)))
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("read on an upgraded connection past its drain: %v, want EOF", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("cut after %v, before the drain", d)
	}
	waitFor(t, 5*time.Second, "the cut upgrade to leave in flight", func() bool { return inFlight(s, "id-a") == 0 })
}

func TestApplyUnderTraffic(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	s := newTestServer(t, Options{})
	port := freePort(t)
	sets := [][]ingress.Backend{{a.backend(), b.backend()}, {a.backend()}, {b.backend()}}
	mustApply(t, s, table(1, httpListener(port, route("web", sets[0]...))))

	stop := make(chan struct{})
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code, _, err := tryGet(port, "", "/"); err != nil || code != http.StatusOK {
					failures.Add(1)
				}
			}
		})
	}
	for v := uint64(2); v <= 30; v++ {
		mustApply(t, s, table(v, httpListener(port, route("web", sets[v%3]...))))
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d requests failed while tables were swapped", n)
	}
}

func TestAccessLogOmitsQueryAndHeaders(t *testing.T) {
	a := startBackend(t, "a", nil)
	var buf syncBuffer
	s := newTestServer(t, Options{AccessLog: true, Log: slog.New(slog.NewTextHandler(&buf, nil))})
	port := freePort(t)
	mustApply(t, s, table(1, httpListener(port, route("web", a.backend()))))
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/orders?token=s3cret", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "shop.test"
	req.Header.Set("Authorization", "Bearer hunter2")
	resp, err := testClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	waitFor(t, 5*time.Second, "the access log line", func() bool { return strings.Contains(buf.String(), "http request") })
	line := buf.String()
	for _, want := range []string{"method=GET", "host=shop.test", "path=/orders", "status=200", "backend=a", "route=f/web", "duration="} {
		if !strings.Contains(line, want) {
			t.Errorf("access log lacks %s: %s", want, line)
		}
	}
	for _, secret := range []string{"s3cret", "token", "hunter2"} {
		if strings.Contains(line, secret) {
			t.Errorf("access log shows %q: %s", secret, line)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written.
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRetryOnDeadBackendEjectsIt(t *testing.T) {
	live := startBackend(t, "live", nil)
	s := newTestServer(t, Options{EjectFor: time.Minute})
	port := freePort(t)
	mustApply(t, s, table(1, httpListener(port, route("web", deadBackend(t, "dead"), live.backend()))))
	for i := range 20 {
		if code, body := get(t, port, "", "/"); code != http.StatusOK || body != "live" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	st := s.State()
	dead := st.Backends["id-dead"]
	if !dead.Ejected || dead.Errors < 3 {
		t.Fatalf("dead backend: %+v, want ejected after 3 errors", dead)
	}
	if got := st.Backends["id-live"].Requests; got != 20 {
		t.Fatalf("live backend answered %d requests, want 20", got)
	}
}

func TestPostWithBodyToDeadRouteAnswers502(t *testing.T) {
	s := newTestServer(t, Options{})
	port := freePort(t)
	mustApply(t, s, table(1, httpListener(port, route("web", deadBackend(t, "dead")))))
	code, body := do(t, http.MethodPost, port, "", "/orders", strings.NewReader(`{"n":1}`))
	if code != http.StatusBadGateway || body != "fleetd ingress: backend dead: connection refused" {
		t.Fatalf("POST to a dead backend: %d %q", code, body)
	}
}

func TestPostWithBodyIsNotRetried(t *testing.T) {
	live := startBackend(t, "live", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "live%s", body)
	})
	s := newTestServer(t, Options{})
	port := freePort(t)
	// Backends sort by ID: the first pick is the dead one.
	mustApply(t, s, table(1, httpListener(port, route("web", deadBackend(t, "dead"), live.backend()))))
	if code, _ := do(t, http.MethodPost, port, "", "/", strings.NewReader("x")); code != http.StatusBadGateway {
		t.Fatalf("POST with a body was retried: %d", code)
	}
	if code, body := do(t, http.MethodPost, port, "", "/", nil); code != http.StatusOK || body != "live" {
		t.Fatalf("POST without a body: %d %q, want a retry on live", code, body)
	}
	if code, body := do(t, http.MethodPut, port, "", "/", strings.NewReader(":put")); code != http.StatusOK || body != "live:put" {
		t.Fatalf("PUT with a body: %d %q, want a retry on live with the whole body", code, body)
	}
}

func TestDrainingBackendFinishesItsRequests(t *testing.T) {
	g := newSlowGate(t)
	a, b := startBackend(t, "a", g.handler("a")), startBackend(t, "b", g.handler("b"))
	s := newTestServer(t, Options{})
	port := freePort(t)
	mustApply(t, s, table(1, httpListener(port, route("web", a.backend()))))

	type answer struct {
		code int
		body string
	}
	slow := make(chan answer, 1)
	go func() {
		code, body, _ := tryGet(port, "", "/slow")
		slow <- answer{code, body}
	}()
	waitFor(t, 5*time.Second, "the slow request on a", func() bool { return inFlight(s, "id-a") == 1 })

	drainA := a.backend()
	drainA.Draining = true
	mustApply(t, s, table(2, httpListener(port, route("web", drainA, b.backend()))))
	for range 10 {
		if _, body := get(t, port, "", "/"); body != "b" {
			t.Fatalf("a draining backend got a new request (answer %q)", body)
		}
	}
	if st := s.State().Backends["id-a"]; !st.Draining || st.InFlight != 1 {
		t.Fatalf("draining a: %+v", st)
	}
	g.open()
	if got := <-slow; got.code != http.StatusOK || got.body != "a" {
		t.Fatalf("slow request on the draining backend: %+v", got)
	}
}

func TestDrainCutsRequestsLeftAfterDrain(t *testing.T) {
	g := newSlowGate(t)
	a := startBackend(t, "a", g.handler("a"))
	s := newTestServer(t, Options{})
	port := freePort(t)
	short := route("web", a.backend())
	short.Drain = 100 * time.Millisecond // the Drain of the last table that lists a
	mustApply(t, s, table(1, httpListener(port, short)))
	done := make(chan bool, 1) // whether the request got its whole 200
	go func() {
		code, _, err := tryGet(port, "", "/slow")
		done <- err == nil && code == http.StatusOK
	}()
	waitFor(t, 5*time.Second, "the slow request", func() bool { return inFlight(s, "id-a") == 1 })
	mustApply(t, s, table(2, httpListener(port, route("web"))))
	select {
	case ok := <-done:
		if ok {
			t.Fatal("the request outlived its backend's drain")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request was not cut after the drain")
	}
	waitFor(t, 5*time.Second, "the removed backend to leave the state", func() bool {
		_, ok := s.State().Backends["id-a"]
		return !ok
	})
}

func TestActiveHealthCheck(t *testing.T) {
	var sick atomic.Bool
	a := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && sick.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "a")
	})
	b := startBackend(t, "b", nil)
	s := newTestServer(t, Options{CheckEvery: 10 * time.Millisecond})
	port := freePort(t)
	r := route("web", a.backend(), b.backend())
	r.HealthPath = "/health"
	mustApply(t, s, table(1, httpListener(port, r)))

	sick.Store(true)
	waitFor(t, 5*time.Second, "a to turn unhealthy", func() bool { return !s.State().Backends["id-a"].Healthy })
	for range 6 {
		if _, body := get(t, port, "", "/"); body != "b" {
			t.Fatalf("an unhealthy backend got a request")
		}
	}
	sick.Store(false)
	waitFor(t, 5*time.Second, "a to turn healthy", func() bool { return s.State().Backends["id-a"].Healthy })
	seen := map[string]bool{}
	for range 4 {
		_, body := get(t, port, "", "/")
		seen[body] = true
	}
	if !seen["a"] {
		t.Fatal("a healthy-again backend got no request")
	}
}

func TestMetricsCountRequests(t *testing.T) {
	a := startBackend(t, "a", nil)
	s := newTestServer(t, Options{})
	port := freePort(t)
	mustApply(t, s, table(7, httpListener(port, route("web", a.backend()))))
	get(t, port, "", "/")
	get(t, port, "", "/")

	body := scrape(t, s)
	for _, want := range []string{
		`fleetd_ingress_requests_total{backend="a",code="2xx",route="f/web"} 2`,
		`fleetd_ingress_in_flight{backend="a",route="f/web"} 0`,
		`fleetd_ingress_backend_draining{backend="a",route="f/web"} 0`,
		`fleetd_ingress_request_duration_seconds_count{backend="a",route="f/web"} 2`,
		`fleetd_ingress_table_version 7`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	mustApply(t, s, table(8))
	if body := scrape(t, s); strings.Contains(body, `backend="a"`) {
		t.Error("series of a backend that left the table remain")
	}
}

// scrape returns the Server's metrics page.
func scrape(t *testing.T, s *Server) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ControlHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics answered %d", rec.Code)
	}
	return rec.Body.String()
}
