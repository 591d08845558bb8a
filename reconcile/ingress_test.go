package reconcile_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// router records what a plan asks of the ingress.
type router struct {
	mu    sync.Mutex
	calls []string
}

func (r *router) log(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
}

func (r *router) Sync(context.Context, []fleets.Fleet, []string) error { r.log("sync"); return nil }
func (r *router) Route(_ context.Context, fleet, service, c string) error {
	r.log("route " + c)
	return nil
}
func (r *router) Drain(_ context.Context, fleet, service, c string, timeout time.Duration) error {
	r.log(fmt.Sprintf("drain %s %s", c, timeout))
	return nil
}

// behindIngress is web/api with a fixed host port through the ingress.
func behindIngress(n int, image string) fleets.Fleet {
	f := rolling(n, image, fleets.Rollout{Parallelism: 1, Order: fleets.OrderStopFirst, FailureAction: fleets.FailureRollback})
	f.Services[0].Ingress = &fleets.Ingress{Ports: []fleets.Port{{Target: 80, Published: "8080", Protocol: "tcp"}},
		Protocol: fleets.IngressHTTP, Balance: fleets.BalanceRoundRobin, Drain: 7 * time.Second}
	return f
}

// A service behind the ingress rolls out start-first even with a fixed
// host port and update_config order stop-first: each new replica passes
// its gate and enters the pool before the old one is drained, then
// stopped.
func TestRolloutThroughIngress(t *testing.T) {
	e := newFake(t)
	r := &router{}
	opts := reconcile.ConvergeOptions{Exec: reconcile.ExecOptions{Router: r}}
	if _, err := reconcile.Converge(t.Context(), e, []fleets.Fleet{behindIngress(2, "app:v1")}, policy(), opts); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.calls, " "); !strings.Contains(got, "route web-api-1") || !strings.Contains(got, "route web-api-2") {
		t.Errorf("first deploy: router calls %q, want each replica routed once healthy", got)
	}
	r.calls = nil
	v2 := []fleets.Fleet{behindIngress(2, "app:v2")}
	p := reconcile.Plan(v2, observe(t, e), policy())
	text := p.String()
	order := []string{"create", "start", "wait-up", "route", "drain", "stop", "remove", "rename"}
	at := -1
	for _, op := range order {
		i := strings.Index(text[max(at, 0):], "  "+op+" ")
		if i < 0 {
			t.Fatalf("plan lacks %s after the previous steps (want %v):\n%s", op, order, text)
		}
		at += i + 1
	}
	if !regexp.MustCompile(`drain\s+web-api-1\s`).MatchString(text) || !strings.Contains(text, "up to 7s") || !strings.Contains(text, "start-first") {
		t.Errorf("plan does not drain web-api-1 for the service's 7s, start-first:\n%s", text)
	}

	names := map[string]string{}
	for _, c := range observe(t, e).Containers {
		names[c.ID] = c.Name
	}
	if _, err := reconcile.Converge(t.Context(), e, v2, policy(), opts); err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, c := range r.calls {
		op, ref, _ := strings.Cut(c, " ")
		ref, _, _ = strings.Cut(ref, " ")
		pos[op+" "+cmp.Or(names[ref], ref)] = i
	}
	for _, slot := range []string{"1", "2"} {
		route, okR := pos["route web-api-"+slot+"-next"]
		drain, okD := pos["drain web-api-"+slot]
		if !okR || !okD || route > drain {
			t.Errorf("slot %s: routed at %d (%v), drained at %d (%v); want the new replica routed before the old one drains: %v", slot, route, okR, drain, okD, r.calls)
		}
	}
	if r.calls[0] != "sync" || r.calls[len(r.calls)-1] != "sync" {
		t.Errorf("router calls %v: want a sync before and after", r.calls)
	}
	assertConverged(t, e, v2)

	// Scaling down drains the replica before it stops.
	r.calls = nil
	if _, err := reconcile.Converge(t.Context(), e, []fleets.Fleet{behindIngress(1, "app:v2")}, policy(), opts); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.calls, " "); !strings.Contains(got, "drain ") {
		t.Errorf("scale down: router calls %q, want a drain", got)
	}
}

// Without a router a route or drain fails, and what waits on it is
// skipped: the old replica is not stopped.
func TestIngressNeedsARouter(t *testing.T) {
	e := newFake(t)
	withRouter := reconcile.ConvergeOptions{Exec: reconcile.ExecOptions{Router: &router{}}}
	if _, err := reconcile.Converge(t.Context(), e, []fleets.Fleet{behindIngress(1, "app:v1")}, policy(), withRouter); err != nil {
		t.Fatal(err)
	}
	out, err := reconcile.Converge(t.Context(), e, []fleets.Fleet{behindIngress(1, "app:v2")}, policy(), reconcile.ConvergeOptions{MaxPasses: 1})
	if err != nil {
		t.Fatal(err)
	}
	var routed bool
	for _, res := range out.Reports[0].Results {
		if res.Action.Op == reconcile.OpRoute {
			routed = true
			if !errors.Is(res.Err, reconcile.ErrNoRouter) {
				t.Errorf("route without a router: %v", res.Err)
			}
		}
		if res.Action.Op == reconcile.OpStop && res.Status == reconcile.Done {
			t.Errorf("the old replica was stopped though it was never drained")
		}
	}
	if !routed {
		t.Fatal("no route action ran")
	}
}

// Putting a service that published its port itself behind the ingress:
// the old replicas hold the port the ingress must bind, so that one
// rollout is stop-first, and says why.
func TestRolloutOntoIngressIsStopFirst(t *testing.T) {
	direct := rolling(1, "app:v1", fleets.Rollout{Parallelism: 1, Order: fleets.OrderStartFirst, FailureAction: fleets.FailurePause})
	direct.Services[0].Spec.Ports = []fleets.Port{{Target: 80, Published: "8080", Protocol: "tcp"}}
	direct.Services[0] = rehash(direct.Services[0])
	e := newFake(t)
	converge(t, e, direct)
	behind := behindIngress(1, "app:v1")
	p := reconcile.Plan([]fleets.Fleet{behind}, observe(t, e), policy())
	if s := p.String(); !strings.Contains(s, "stop-first (forced: its replicas publish host port 8080, which the ingress takes over)") {
		t.Errorf("plan does not go stop-first onto the ingress:\n%s", s)
	}
}

// failingRouter cannot sync (the ingress cannot bind its port).
type failingRouter struct{ router }

func (*failingRouter) Sync(context.Context, []fleets.Fleet, []string) error {
	return errors.New("port 8080 is taken")
}

// An ingress that cannot be synced fails the applies of fleets behind it
// (even with nothing else to do), and no other fleet's.
func TestIngressSyncFailure(t *testing.T) {
	e := newFake(t)
	behind, plain := behindIngress(1, "app:v1"), rolling(1, "app:v1", fleets.Rollout{Parallelism: 1})
	plain.Name = "plain"
	plain.Services[0].Name = "svc"
	ok := reconcile.ConvergeOptions{Exec: reconcile.ExecOptions{Router: &router{}}}
	all := []fleets.Fleet{behind, plain}
	if _, err := reconcile.Converge(t.Context(), e, all, policy(), ok); err != nil {
		t.Fatal(err)
	}
	bad := reconcile.ConvergeOptions{Exec: reconcile.ExecOptions{Router: &failingRouter{}}}
	pol := policy()
	pol.Scope = []string{"web"}
	if _, err := reconcile.Converge(t.Context(), e, all, pol, bad); err == nil || !strings.Contains(err.Error(), "port 8080 is taken") {
		t.Errorf("fleet behind the ingress, in sync: %v, want the ingress's error", err)
	}
	pol.Scope = []string{"plain"}
	if _, err := reconcile.Converge(t.Context(), e, all, pol, bad); err != nil {
		t.Errorf("a fleet not behind the ingress: %v, want nil", err)
	}
}
