package ingress

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func route(svc, host, path string, backends ...Backend) Route {
	return Route{Fleet: "web", Service: svc, Host: host, PathPrefix: path, Balance: RoundRobin, Backends: backends}
}

func TestValidate(t *testing.T) {
	ok := Table{Version: 1, Listeners: []Listener{
		{Port: 8080, Protocol: ProtoHTTP, Routes: []Route{route("api", "", "", Backend{ID: "a", Addr: "10.0.0.2:80"})}},
		{Port: 5432, Protocol: ProtoTCP, Routes: []Route{route("db", "", "", Backend{ID: "d", Addr: "10.0.0.3:5432"})}},
	}}
	if err := Validate(ok); err != nil {
		t.Fatalf("a good table: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		t          Table
	}{
		{"port twice", "port 80: listed twice", Table{Listeners: []Listener{{Port: 80, Protocol: ProtoHTTP}, {Port: 80, Protocol: ProtoHTTP}}}},
		{"protocol", `protocol "udp"`, Table{Listeners: []Listener{{Port: 80, Protocol: "udp"}}}},
		{"tcp two routes", "exactly one route, not 2", Table{Listeners: []Listener{{Port: 80, Protocol: ProtoTCP, Routes: []Route{route("a", "", ""), route("b", "", "")}}}}},
		{"tcp rules", "host and path rules need http", Table{Listeners: []Listener{{Port: 80, Protocol: ProtoTCP, Routes: []Route{route("a", "x.example", "")}}}}},
		{"clash", "web/a and web/b both route every request", Table{Listeners: []Listener{{Port: 80, Protocol: ProtoHTTP, Routes: []Route{route("a", "", ""), route("b", "", "")}}}}},
		{"address", `address "10.0.0.2"`, Table{Listeners: []Listener{{Port: 80, Protocol: ProtoHTTP, Routes: []Route{route("a", "", "", Backend{ID: "x", Name: "n", Addr: "10.0.0.2"})}}}}},
		{"shadowed", "web/a and web/b both route", Table{Listeners: []Listener{{Port: 80, Protocol: ProtoHTTP, Routes: []Route{route("a", "X.example", "/api"), route("b", "x.example", "/api/")}}}}},
		{"balance", `balance "random"`, Table{Listeners: []Listener{{Port: 80, Protocol: ProtoHTTP, Routes: []Route{{Fleet: "f", Service: "s", Balance: "random"}}}}}},
		{"tls", "tls needs cert_file and key_file", Table{Listeners: []Listener{{Port: 443, Protocol: ProtoHTTP, TLS: &TLS{CertFile: "c"}}}}},
	} {
		err := Validate(tc.t)
		if !errors.Is(err, ErrInvalidTable) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalidTable with %q", tc.name, err, tc.want)
		}
	}
}

func TestSortAndMatch(t *testing.T) {
	tb := Table{Listeners: []Listener{{Port: 80, Protocol: ProtoHTTP, Routes: []Route{
		route("any", "", ""),
		route("wiki", "", "/wiki"),
		route("shop", "shop.example", ""),
		route("shopapi", "shop.example", "/api/"),
	}}}}
	Sort(&tb)
	var order []string
	for _, r := range tb.Listeners[0].Routes {
		order = append(order, r.Service)
	}
	if got := strings.Join(order, " "); got != "shopapi shop wiki any" {
		t.Fatalf("sorted routes %s, want the most specific first", got)
	}
	for _, tc := range []struct{ host, path, want string }{
		{"shop.example", "/api/orders", "shopapi"},
		{"SHOP.example:8080", "/api", "shopapi"},
		{"shop.example", "/apis", "shop"},
		{"other", "/wiki", "wiki"},
		{"other", "/wiki/page", "wiki"},
		{"other", "/wikipedia", "any"},
		{"[::1]:80", "/", "any"},
	} {
		r, ok := Match(tb.Listeners[0], tc.host, tc.path)
		if !ok || r.Service != tc.want {
			t.Errorf("Match(%s, %s) = %s, %v; want %s", tc.host, tc.path, r.Service, ok, tc.want)
		}
	}
	only := Listener{Routes: []Route{route("wiki", "", "/wiki")}}
	if _, ok := Match(only, "x", "/"); ok {
		t.Error("matched / against a listener with only /wiki")
	}
}

func TestPick(t *testing.T) {
	c := []Candidate{{Usable: true}, {Usable: false}, {Usable: true}}
	var got []int
	for next := range uint64(4) {
		got = append(got, Pick(c, RoundRobin, next))
	}
	if want := []int{0, 2, 2, 0}; !slices.Equal(got, want) {
		t.Errorf("round robin picks %v, want %v (skipping the unusable one)", got, want)
	}
	busy := []Candidate{{Usable: true, InFlight: 5}, {Usable: true, InFlight: 1}, {Usable: true, InFlight: 1}, {Usable: false}}
	if i := Pick(busy, LeastConn, 0); i != 1 {
		t.Errorf("least_conn picked %d, want 1", i)
	}
	if i := Pick(busy, LeastConn, 2); i != 2 {
		t.Errorf("least_conn from 2 picked %d, want 2 (ties take turns)", i)
	}
	if i := Pick([]Candidate{{}, {}}, RoundRobin, 0); i != -1 {
		t.Errorf("no usable backend: %d, want -1", i)
	}
}
