package enginetest_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/fleetd/fleetd/engine/enginetest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// Execute hands a build's output to ExecOptions.BuildLog with the action
// it belongs to.
func TestExecuteStreamsBuildLog(t *testing.T) {
	e := enginetest.New(t)
	build := reconcile.Action{Op: reconcile.OpBuild, Fleet: "shop", Service: "api", Target: "shop-api:ctx-1",
		Build: &fleets.Build{ContextDir: "shop", Dockerfile: "Dockerfile", ContextHash: "1"}}
	var mu sync.Mutex
	var got []string
	rep := reconcile.Execute(t.Context(), e, reconcile.ActionPlan{Actions: []reconcile.Action{build}}, reconcile.ExecOptions{
		BuildLog: func(a reconcile.Action, line string) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, a.Fleet+"/"+a.Service+": "+line)
		},
	})
	if !rep.OK() {
		t.Fatalf("report %+v", rep)
	}
	if want := []string{"shop/api: fake build of shop-api:ctx-1"}; !slices.Equal(got, want) {
		t.Errorf("build log %q, want %q", got, want)
	}
}
