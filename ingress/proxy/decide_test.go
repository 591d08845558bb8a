package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/fleetd/fleetd/ingress"
)

func TestIsUsable(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name              string
		draining, healthy bool
		ejectedUntil      time.Time
		want              bool
	}{
		{"fine", false, true, time.Time{}, true},
		{"draining", true, true, time.Time{}, false},
		{"unhealthy", false, false, time.Time{}, false},
		{"ejected", false, true, now.Add(time.Second), false},
		{"ejection over", false, true, now, true},
	}
	for _, tc := range cases {
		if got := isUsable(tc.draining, tc.healthy, tc.ejectedUntil, now); got != tc.want {
			t.Errorf("%s: isUsable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDecisions(t *testing.T) {
	if shouldEject(2, 3) || !shouldEject(3, 3) {
		t.Error("shouldEject: want ejection at the third failure")
	}
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete} {
		if !retryable(m, true) {
			t.Errorf("retryable(%s, body) = false", m)
		}
	}
	if retryable(http.MethodPost, true) || !retryable(http.MethodPost, false) || retryable(http.MethodPatch, true) {
		t.Error("retryable: a POST or PATCH is retried only without a body")
	}
	for code, want := range map[int][2]bool{
		200: {false, true}, 404: {false, true}, 101: {false, true},
		500: {false, false}, 502: {true, false}, 503: {true, false}, 504: {true, false},
	} {
		if f, s := answerVerdict(code); f != want[0] || s != want[1] {
			t.Errorf("answerVerdict(%d) = %v %v, want %v", code, f, s, want)
		}
	}
	for code, want := range map[int]string{101: "1xx", 200: "2xx", 302: "3xx", 404: "4xx", 503: "5xx", 42: "other"} {
		if got := codeClass(code); got != want {
			t.Errorf("codeClass(%d) = %q, want %q", code, got, want)
		}
	}
	if !healthyStatus(204) || !healthyStatus(302) || healthyStatus(404) || healthyStatus(500) {
		t.Error("healthyStatus: want 2xx and 3xx only")
	}
}

func TestBackendInfosMergeRoutes(t *testing.T) {
	b := ingress.Backend{ID: "c1", Name: "web-1", Addr: "10.0.0.2:80"}
	drainingB := b
	drainingB.Draining = true
	plain := ingress.Route{Fleet: "f", Service: "web", Drain: time.Second, Backends: []ingress.Backend{b}}
	checked := ingress.Route{Fleet: "f", Service: "web", HealthPath: "/up", Drain: 3 * time.Second, Backends: []ingress.Backend{drainingB}}
	infos := backendInfos(table(1,
		ingress.Listener{Port: 80, Protocol: ingress.ProtoHTTP, Routes: []ingress.Route{plain}},
		ingress.Listener{Port: 443, Protocol: ingress.ProtoHTTP, Routes: []ingress.Route{checked}}))
	want := backendInfo{route: "f/web", name: "web-1", addr: "10.0.0.2:80", healthPath: "/up", drain: 3 * time.Second, draining: true}
	if got := infos["c1"]; got != want {
		t.Fatalf("backendInfos = %+v, want %+v", got, want)
	}
}

func TestCloneTableNormalizesEmptyLists(t *testing.T) {
	a := table(1, ingress.Listener{Port: 80, Protocol: ingress.ProtoHTTP, Routes: []ingress.Route{{Fleet: "f", Service: "s", Backends: []ingress.Backend{}}}})
	b := table(1, ingress.Listener{Port: 80, Protocol: ingress.ProtoHTTP, Routes: []ingress.Route{{Fleet: "f", Service: "s"}}})
	s := &Server{}
	s.applied = true
	s.cur.Store(&snapshot{table: cloneTable(a)})
	if noop, err := s.checkVersion(cloneTable(b)); err != nil || !noop {
		t.Fatalf("checkVersion(equal table) = %v, %v; want a no-op", noop, err)
	}
}
