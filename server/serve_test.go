package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestServeGracefulShutdown(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	srv, _ := newTestServer(t, func(c *Config) {
		c.Status = func() any {
			close(entered)
			<-release
			return "done"
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(url + "/v1/status")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}()
	<-entered
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if g := <-got; g != `200 "done"` {
		t.Errorf("in-flight request: %s", g)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(ShutdownTimeout + time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}

func TestListenAndServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := New(Config{Addr: ln.Addr().String()}, nil)
	if err := srv.ListenAndServe(t.Context()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("address in use: got %v", err)
	}

	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe(ctx) }()
	waitHealthy(t, "http://"+ln.Addr().String())
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("ListenAndServe: %v", err)
	}
}

func waitHealthy(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("server did not come up")
}

func TestDefaultAddr(t *testing.T) {
	if srv := New(Config{}, nil); srv.cfg.Addr != "127.0.0.1:9750" {
		t.Errorf("default address %q", srv.cfg.Addr)
	}
}

// TestSlowSyncDoesNotBlock: while Sync is stuck, webhooks and manual syncs
// are still answered at once; what arrived meanwhile becomes one more call
// with the latest reason.
func TestSlowSyncDoesNotBlock(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	reasons := make(chan string, 100)
	srv, _ := newTestServer(t, func(c *Config) {
		c.Sync = func(reason string) {
			calls.Add(1)
			reasons <- reason
			<-release
		}
	})
	start := time.Now()
	for i := range 100 {
		body := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","after":"%07d"}`, i))
		check(t, do(srv.Handler(), "POST", "/hooks/github", body, deliver("github", "push", testSecret, body)...), 202, "accepted")
	}
	check(t, do(srv.Handler(), "POST", "/v1/sync", nil, "Authorization", "Bearer tok"), 202, "accepted")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("101 requests took %v with Sync stuck", took)
	}
	if first := <-reasons; first != "webhook github push 0000000" {
		t.Errorf("first call %q", first)
	}
	close(release)
	if !srv.trigger.wait(t.Context()) {
		t.Fatal("trigger not idle")
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("Sync called %d times, want 2 (the first, then one for everything that came meanwhile)", n)
	}
	if last := <-reasons; last != "manual sync (api)" {
		t.Errorf("coalesced call %q, want the latest reason", last)
	}
}

func BenchmarkGitHubHookSlowSync(b *testing.B) {
	block := make(chan struct{})
	defer close(block)
	srv := New(Config{WebhookSecret: string(testSecret), Branch: "main", Sync: func(string) { <-block }}, NewMetrics())
	body := pushBody("refs/heads/main")
	hdr := deliver("github", "push", testSecret, body)
	h := srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		if rec := do(h, "POST", "/hooks/github", body, hdr...); rec.Code != 202 {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
