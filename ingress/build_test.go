package ingress

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/fleets"
)

func ingressService(name string, port string, rules ...fleets.IngressRule) fleets.Service {
	return fleets.Service{Name: name, Targets: true, Replicas: 3,
		Spec: fleets.Spec{Networks: []fleets.NetworkAttachment{{Network: "web_default"}, {Network: "web_back"}}},
		Ingress: &fleets.Ingress{Ports: []fleets.Port{{Target: 80, Published: port, Protocol: "tcp"}},
			Protocol: fleets.IngressHTTP, Balance: fleets.BalanceRoundRobin, Drain: 30 * time.Second, Rules: rules}}
}

func replica(id, name, svc, health string, running bool) Replica {
	return Replica{ID: id, Name: name, Fleet: "web", Service: svc, Running: running, Health: health,
		IPs: map[string]string{"web_default": "10.0.0." + id, "web_back": "10.1.0." + id}}
}

func TestBuild(t *testing.T) {
	desired := []fleets.Fleet{{Name: "web", Targets: true, Services: []fleets.Service{
		ingressService("api", "8080"),
		ingressService("shop", "9000", fleets.IngressRule{Host: "shop.example"}),
		ingressService("wiki", "9000", fleets.IngressRule{Path: "/wiki"}),
		{Name: "db", Targets: true}, // not behind the ingress
	}}}
	replicas := []Replica{
		replica("1", "web-api-1", "api", "healthy", true),
		replica("2", "web-api-2", "api", "", true),             // no healthcheck: up
		replica("3", "web-api-3", "api", "starting", true),     // not yet
		replica("4", "web-api-4", "api", "unhealthy", true),    // out
		replica("5", "web-api-5", "api", "healthy", false),     // stopped
		replica("6", "web-api-1-next", "api", "healthy", true), // not routed yet
		replica("7", "web-api-2-next", "api", "healthy", true), // routed
		replica("8", "web-shop-1", "shop", "unhealthy", true),  // draining: kept, marked
		replica("9", "other-api-1", "api", "healthy", true),    // another fleet's
		replica("10", "web-api-9", "api", "", true),            // never routed, no healthcheck
		replica("11", "web-api-4", "api", "healthy", true),     // on the old first network only
	}
	replicas[8].Fleet = "other"
	delete(replicas[10].IPs, "web_default")
	replicas[5].Temp, replicas[6].Temp = true, true
	replicas = append(replicas, replica("12", "web-api-5", "api", "healthy", true)) // healthy by Docker: admitted
	routed := map[string]bool{}
	for _, id := range []string{"1", "2", "3", "4", "5", "7", "9", "11"} {
		routed[id] = true
	}
	pool := Pool{Routed: routed, Draining: map[string]bool{"8": true}}
	got := Build(7, desired, replicas, pool, []string{"web_back"})
	if err := Validate(got); err != nil {
		t.Fatalf("Build made an invalid table: %v", err)
	}
	b, _ := json.MarshalIndent(got, "", " ")
	if got.Version != 7 || len(got.Listeners) != 2 || got.Listeners[0].Port != 8080 || got.Listeners[1].Port != 9000 {
		t.Fatalf("listeners:\n%s", b)
	}
	api := got.Listeners[0].Routes[0].Backends
	var names []string
	for _, be := range api {
		names = append(names, be.Name+"@"+be.Addr)
	}
	want := "web-api-1@10.0.0.1:80 web-api-4@10.1.0.11:80 web-api-5@10.0.0.12:80 web-api-2@10.0.0.2:80 web-api-2-next@10.0.0.7:80"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("api backends %s\nwant %s", got, want)
	}
	shared := got.Listeners[1].Routes
	if len(shared) != 2 || shared[0].Host != "shop.example" || shared[1].PathPrefix != "/wiki" {
		t.Fatalf("port 9000 routes:\n%s", b)
	}
	if be := shared[0].Backends; len(be) != 1 || !be[0].Draining {
		t.Errorf("the draining shop replica: %+v, want kept and marked draining", be)
	}
	if n := Networks(desired, nil); len(n) != 1 || n[0] != "web_default" {
		t.Errorf("Networks = %v, want the services' first network", n)
	}
	if b := Bindings(desired); len(b) != 2 || b[0] != (Binding{Port: 8080}) || b[1] != (Binding{Port: 9000}) {
		t.Errorf("Bindings = %v, want 8080 and 9000 once each", b)
	}
	// A service with no replica has no listener; one port published on
	// two addresses is one listener and one route.
	desired[0].Services[0].Replicas = 0
	desired[0].Services[1].Ingress.Ports = append(desired[0].Services[1].Ingress.Ports, fleets.Port{Target: 80, Published: "9000", HostIP: "::1", Protocol: "tcp"})
	got = Build(8, desired, replicas, pool, nil)
	if err := Validate(got); err != nil || len(got.Listeners) != 1 || len(got.Listeners[0].Routes) != 2 {
		t.Fatalf("without api, shop on two addresses: %+v, %v", got.Listeners, err)
	}
	if b := Bindings(desired); len(b) != 2 || b[0] != (Binding{Port: 9000}) || b[1] != (Binding{HostIP: "::1", Port: 9000}) {
		t.Errorf("Bindings = %v, want 9000 on every address and on ::1", b)
	}
}
