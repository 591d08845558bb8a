package server

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClient(t *testing.T) {
	srv, spy := newTestServer(t, nil)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	addr := strings.TrimPrefix(ts.URL, "http://")

	for _, a := range []string{addr, ts.URL, ts.URL + "/"} {
		b, err := FetchStatus(t.Context(), a, "")
		if err != nil || strings.TrimSpace(string(b)) != `{"fleets":["web"]}` {
			t.Fatalf("FetchStatus(%q) = %q, %v", a, b, err)
		}
	}
	if err := TriggerSync(t.Context(), addr, "tok"); err != nil {
		t.Fatalf("TriggerSync: %v", err)
	}
	spy.next(t)

	err := TriggerSync(t.Context(), addr, "wrong")
	if err == nil || err.Error() != "sync: 401 Unauthorized: missing or wrong bearer token" {
		t.Fatalf("wrong token: %v", err)
	}
	spy.none(t, srv)

	ts.Close()
	if _, err := FetchStatus(t.Context(), addr, ""); err == nil || !strings.HasPrefix(err.Error(), "status: ") {
		t.Fatalf("daemon down: %v", err)
	}
}

func TestClientReadToken(t *testing.T) {
	srv, _ := newTestServer(t, func(c *Config) { c.ReadToken = "rd" })
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	if _, err := FetchStatus(t.Context(), ts.URL, ""); err == nil || err.Error() != "status: 401 Unauthorized: missing or wrong bearer token" {
		t.Fatalf("no token: %v", err)
	}
	for _, tok := range []string{"rd", "tok"} {
		if _, err := FetchStatus(t.Context(), ts.URL, tok); err != nil {
			t.Errorf("token %q: %v", tok, err)
		}
	}
}

func TestBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "http://127.0.0.1:9750",
		"127.0.0.1:9750":       "http://127.0.0.1:9750",
		"http://h:1/":          "http://h:1",
		"https://fleetd.local": "https://fleetd.local",
	} {
		if got := baseURL(in); got != want {
			t.Errorf("baseURL(%q) = %q, want %q", in, got, want)
		}
	}
}
