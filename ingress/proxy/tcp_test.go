package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/fleetd/fleetd/ingress"
)

func TestTCPEcho(t *testing.T) {
	echo, _ := startEcho(t)
	s := newTestServer(t, Options{})
	port := freePort(t)
	mustApply(t, s, table(1, tcpListener(port, route("db", deadBackend(t, "dead"), ingress.Backend{ID: "id-echo", Name: "echo", Addr: echo}))))

	for i := range 3 { // a dial to the dead backend fails over to echo
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		echoOnce(t, c, fmt.Sprintf("ping %d", i))
		// Half-close: the echo server sees EOF, closes, and so do we.
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
			t.Fatalf("after half-close: %q, %v", rest, err)
		}
		_ = c.Close()
	}
	waitFor(t, 5*time.Second, "connections to close", func() bool { return inFlight(s, "id-echo") == 0 })
	if got := s.State().Backends["id-echo"].Requests; got != 3 {
		t.Fatalf("echo backend counted %d connections, want 3", got)
	}
}

func TestTCPConnectionClosedAfterDrain(t *testing.T) {
	echoA, _ := startEcho(t)
	echoB, connsB := startEcho(t)
	s := newTestServer(t, Options{})
	port := freePort(t)
	a := ingress.Backend{ID: "id-a", Name: "a", Addr: echoA}
	b := ingress.Backend{ID: "id-b", Name: "b", Addr: echoB}
	mustApply(t, s, table(1, tcpListener(port, route("db", a))))

	old, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = old.Close() }()
	echoOnce(t, old, "before")

	a.Draining = true
	r := route("db", a, b)
	r.Drain = 200 * time.Millisecond
	mustApply(t, s, table(2, tcpListener(port, r)))
	start := time.Now()

	fresh, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fresh.Close() }()
	echoOnce(t, fresh, "new")
	if connsB.Load() != 1 {
		t.Fatal("the new connection did not go to b")
	}
	echoOnce(t, old, "still open while draining")

	_ = old.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = old.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("read on a drained connection: %v, want EOF", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("the connection was closed after %v, before its drain", d)
	}
	echoOnce(t, fresh, "b is untouched")
}
