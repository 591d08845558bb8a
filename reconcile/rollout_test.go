package reconcile_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/enginetest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// rolling is web with n replicas and the given update_config, on image.
func rolling(n int, image string, update fleets.Rollout) fleets.Fleet {
	return fleet("web", service("web", "api", n, func(s *fleets.Service) {
		s.Spec.Image = image
		s.Update = update
		s.Rollback = fleets.Rollout{Parallelism: 1, Order: fleets.OrderStopFirst, FailureAction: fleets.FailurePause}
	}))
}

// convergeOpts records events and plans and never sleeps for real.
type recorder struct {
	events []reconcile.Event
	saved  reconcile.Rollouts
	slept  time.Duration
}

func (r *recorder) opts() reconcile.ConvergeOptions {
	return reconcile.ConvergeOptions{
		OnEvent: func(e reconcile.Event) { r.events = append(r.events, e) },
		Save:    func(s reconcile.Rollouts) error { r.saved = s; return nil },
		Now:     func() time.Time { return now.Add(r.slept) },
		Sleep:   func(_ context.Context, d time.Duration) error { r.slept += d; return nil },
	}
}

func (r *recorder) kinds() []string {
	var out []string
	for _, e := range r.events {
		out = append(out, string(e.Kind))
	}
	return out
}

// images returns the image each replica of web/api runs, by name.
func images(t *testing.T, obs drift.Observed) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range obs.Containers {
		if c.Labels[fleets.LabelService] == "api" {
			out[c.Name] = c.Image
		}
	}
	return out
}

func TestRolloutInBatches(t *testing.T) {
	e := newFake(t)
	update := fleets.Rollout{Parallelism: 2, Order: fleets.OrderStartFirst, FailureAction: fleets.FailureRollback, Delay: 10 * time.Second}
	converge(t, e, rolling(4, "app:v1", update))

	var rec recorder
	out, err := reconcile.Converge(t.Context(), e, []fleets.Fleet{rolling(4, "app:v2", update)}, policy(), rec.opts())
	if err != nil {
		t.Fatal(err)
	}
	if out.Passes != 2 || len(out.Plans[0].Rollouts[0].Slots) != 2 || len(out.Plans[1].Rollouts[0].Slots) != 2 {
		t.Fatalf("passes = %d; want two batches of two\n%v", out.Passes, out.Plans)
	}
	if rec.slept != update.Delay {
		t.Errorf("slept %s between batches, want the update delay %s", rec.slept, update.Delay)
	}
	want := []string{"rollout-started", "rollout-batch", "rollout-batch", "rollout-succeeded"}
	if got := rec.kinds(); !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	if len(out.Rollouts) != 0 || len(rec.saved) != 0 {
		t.Errorf("a finished rollout leaves records: %v", out.Rollouts)
	}
	for name, img := range images(t, observe(t, e)) {
		if img != "app:v2" || strings.HasSuffix(name, "-next") {
			t.Errorf("%s runs %s", name, img)
		}
	}
	// start-first: each batch's new replicas pass the gate before an old
	// one stops.
	p := out.Plans[0].String()
	if strings.Index(p, "wait-up") > strings.Index(p, "stop ") {
		t.Errorf("start-first batch stops an old replica before the gate:\n%s", p)
	}
	assertConverged(t, e, []fleets.Fleet{rolling(4, "app:v2", update)})
}

// rollOut deploys n replicas of app:v1 with update, lets prepare break
// something, then converges to app:v2 and returns the outcome and what
// was told.
func rollOut(t *testing.T, e *enginetest.Fake, n int, update fleets.Rollout, prepare func()) (reconcile.Outcome, *recorder) {
	t.Helper()
	converge(t, e, rolling(n, "app:v1", update))
	prepare()
	rec := &recorder{}
	out, err := reconcile.Converge(t.Context(), e, []fleets.Fleet{rolling(n, "app:v2", update)}, policy(), rec.opts())
	if err != nil {
		t.Fatal(err)
	}
	return out, rec
}

// failOnImage makes every container of image fail its health check.
func failOnImage(image string) func(c *drift.Container) {
	return func(c *drift.Container) {
		if c.Image == image {
			c.Health = "unhealthy"
		}
	}
}

func TestRolloutRollsBackAndDoesNotRetry(t *testing.T) {
	e := newFake(t)
	update := fleets.Rollout{Parallelism: 2, Order: fleets.OrderStartFirst, FailureAction: fleets.FailureRollback}
	converge(t, e, rolling(4, "app:v1", update))
	e.OnStart(failOnImage("app:v2"))

	var rec recorder
	broken := []fleets.Fleet{rolling(4, "app:v2", update)}
	out, err := reconcile.Converge(t.Context(), e, broken, policy(), rec.opts())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"rollout-started", "rollout-batch", "rollout-failed", "rollout-rolled-back"}
	if got := rec.kinds(); !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v\nplans:\n%v", got, want, out.Plans)
	}
	if r := rec.events[2].Reason; !strings.Contains(r, "unhealthy") {
		t.Errorf("failure reason %q does not say why", r)
	}
	for name, img := range images(t, observe(t, e)) {
		if img != "app:v1" || strings.HasSuffix(name, "-next") {
			t.Errorf("after rollback %s runs %s", name, img)
		}
	}
	rec2 := recorder{}
	again, err := reconcile.Converge(t.Context(), e, broken, reconcile.Policy{Now: now, Rollouts: out.Rollouts}, rec2.opts())
	if err != nil {
		t.Fatal(err)
	}
	if again.Passes != 0 || len(again.Last.Blocked) != 1 || !strings.Contains(again.Last.Blocked[0].Reason, "rolled-back") {
		t.Fatalf("second apply of the broken revision: passes %d, plan:\n%s", again.Passes, again.Last)
	}
	// A manual retry tries it again (and fails again).
	retry, _ := reconcile.Converge(t.Context(), e, broken, reconcile.Policy{Now: now, Rollouts: reconcile.Retry(out.Rollouts)}, (&recorder{}).opts())
	if retry.Passes == 0 {
		t.Errorf("a retry did not try the rollout again")
	}
}

func TestRolloutPauses(t *testing.T) {
	e := newFake(t)
	update := fleets.Rollout{Parallelism: 1, Order: fleets.OrderStopFirst, FailureAction: fleets.FailurePause}
	out, rec := rollOut(t, e, 3, update, func() { e.OnStart(failOnImage("app:v2")) })
	batches := 0
	for _, k := range rec.kinds() {
		if k == "rollout-batch" {
			batches++
		}
	}
	if batches != 1 || rec.kinds()[len(rec.events)-1] != "rollout-paused" {
		t.Fatalf("%d batches, events %v; want a pause after the first batch", batches, rec.kinds())
	}
	got := images(t, observe(t, e))
	v1, v2 := 0, 0
	for _, img := range got {
		if img == "app:v1" {
			v1++
		} else {
			v2++
		}
	}
	if v1 != 2 || v2 != 1 {
		t.Errorf("paused rollout leaves %v; want two old and one new replica", got)
	}
	if r := out.Rollouts["web/api"]; r.Status != reconcile.RolloutPaused {
		t.Errorf("record = %+v, want paused", r)
	}

	// While paused, the failed new replica is left as it is (a restart
	// would only run the broken build again); an old one is still healed.
	e.Stop("web-api-3")
	p := reconcile.Plan([]fleets.Fleet{rolling(3, "app:v2", update)}, observe(t, e), reconcile.Policy{Now: now, Rollouts: out.Rollouts})
	var acted []string
	for _, a := range p.Actions {
		acted = append(acted, string(a.Op)+" "+a.Target)
	}
	if !slices.Equal(acted, []string{"start web-api-3"}) {
		t.Errorf("plan of a paused rollout: actions %v, want only the old replica's heal\n%s", acted, p)
	}
	if len(p.Blocked) != 1 || !strings.Contains(p.Blocked[0].Reason, "new replicas are left as they are") {
		t.Errorf("plan does not say why the new replica is left alone: %+v", p.Blocked)
	}
}

// Without a delay, one plan carries every batch: each later batch waits
// for the previous batch's health gates only (not its hand-over), and each
// batch is judged, told and saved as soon as its replicas are done.
func TestRolloutChainsBatches(t *testing.T) {
	e := newFake(t)
	update := fleets.Rollout{Parallelism: 2, Order: fleets.OrderStartFirst, FailureAction: fleets.FailureRollback}
	converge(t, e, rolling(6, "app:v1", update))

	var rec recorder
	saves := 0
	opts := rec.opts()
	save := opts.Save
	opts.Save = func(s reconcile.Rollouts) error { saves++; return save(s) }
	// How many actions had finished when each batch was told.
	var finished atomic.Int64
	var toldAt []int
	opts.Exec.Progress = func(reconcile.Result) { finished.Add(1) }
	onEvent := opts.OnEvent
	opts.OnEvent = func(ev reconcile.Event) {
		if ev.Kind == reconcile.EventRolloutBatch {
			toldAt = append(toldAt, int(finished.Load()))
		}
		onEvent(ev)
	}
	out, err := reconcile.Converge(t.Context(), e, []fleets.Fleet{rolling(6, "app:v2", update)}, policy(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if out.Passes != 1 {
		t.Fatalf("passes = %d, want one plan for the whole rollout", out.Passes)
	}
	p := out.Plans[0]
	if len(p.Rollouts) != 3 || p.Rollouts[0].Chained || !p.Rollouts[1].Chained || !p.Rollouts[2].Chained {
		t.Fatalf("rollout steps %+v, want three batches, the later two chained", p.Rollouts)
	}
	if got := []int{p.Rollouts[0].Remaining, p.Rollouts[1].Remaining, p.Rollouts[2].Remaining}; !slices.Equal(got, []int{6, 4, 2}) {
		t.Errorf("remaining per batch = %v, want [6 4 2]", got)
	}
	for k := 1; k < 3; k++ {
		gates, handOver := map[int]bool{}, map[int]bool{}
		for _, a := range p.Actions {
			if !a.Rollout || !slices.Contains(p.Rollouts[k-1].Slots, a.Slot) {
				continue
			}
			switch a.Op {
			case reconcile.OpWaitUp:
				gates[a.ID] = true
			case reconcile.OpStop, reconcile.OpRemove, reconcile.OpRename:
				handOver[a.ID] = true
			}
		}
		for _, a := range p.Actions {
			if a.Op != reconcile.OpCreate || !slices.Contains(p.Rollouts[k].Slots, a.Slot) {
				continue
			}
			waits := 0
			for _, dep := range a.After {
				if gates[dep] {
					waits++
				}
				if handOver[dep] {
					t.Errorf("batch %d: create %s waits for the previous batch's hand-over (action %d)", k+1, a.Target, dep)
				}
			}
			if waits != len(gates) || waits == 0 {
				t.Errorf("batch %d: create %s waits for %d of the previous batch's %d gates", k+1, a.Target, waits, len(gates))
			}
		}
	}
	want := []string{"rollout-started", "rollout-batch", "rollout-batch", "rollout-batch", "rollout-succeeded"}
	if got := rec.kinds(); !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	if saves < 3 {
		t.Errorf("state saved %d times, want once per batch as it is judged", saves)
	}
	// The third batch waits for the first one's hand-over, so the first
	// batch is always told before the plan ends.
	if len(toldAt) != 3 || toldAt[0] >= len(p.Actions) {
		t.Errorf("batches told after %v of %d actions; want the first before the plan ends", toldAt, len(p.Actions))
	}
	if !strings.Contains(p.String(), "rollout 5/6") {
		t.Errorf("causes do not count replicas across batches:\n%s", p)
	}
	assertConverged(t, e, []fleets.Fleet{rolling(6, "app:v2", update)})
}

// A failed gate in a chained plan: the later batches, planned in the same
// plan, never run, and the rollout pauses after the first.
func TestRolloutChainStopsAtFailedBatch(t *testing.T) {
	e := newFake(t)
	update := fleets.Rollout{Parallelism: 2, Order: fleets.OrderStartFirst, FailureAction: fleets.FailurePause}
	out, rec := rollOut(t, e, 6, update, func() { e.OnStart(failOnImage("app:v2")) })
	want := []string{"rollout-started", "rollout-batch", "rollout-paused"}
	if got := rec.kinds(); !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	if steps := out.Plans[0].Rollouts; len(steps) != 3 || !steps[1].Chained || !steps[2].Chained {
		t.Fatalf("first plan's rollout steps %+v, want three batches, the later two chained", steps)
	}
	skipped := 0
	for _, res := range out.Reports[0].Results {
		if a := res.Action; a.Op == reconcile.OpCreate && a.Slot > 2 {
			if res.Status != reconcile.Skipped {
				t.Errorf("slot %d was touched after the first batch failed: %s", a.Slot, res.Status)
			}
			skipped++
		}
	}
	if skipped != 4 {
		t.Errorf("%d creates of later batches skipped, want 4", skipped)
	}
	if r := out.Rollouts["web/api"]; r.Status != reconcile.RolloutPaused || r.Batches != 1 {
		t.Errorf("record = %+v, want paused after one batch", r)
	}
}

// A failure in a batch's hand-over (not its gates) pauses the rollout too;
// the next batch, already started alongside, may finish, but no further one
// starts.
func TestRolloutHandOverFailureStopsChain(t *testing.T) {
	e := newFake(t)
	update := fleets.Rollout{Parallelism: 2, Order: fleets.OrderStartFirst, FailureAction: fleets.FailurePause}
	out, _ := rollOut(t, e, 6, update, func() { e.FailOn("RemoveContainer", "web-api-1", errors.New("device or resource busy")) })
	if r := out.Rollouts["web/api"]; r.Status != reconcile.RolloutPaused {
		t.Fatalf("record = %+v, want paused", r)
	}
	got := images(t, observe(t, e))
	for _, name := range []string{"web-api-5", "web-api-6"} {
		if got[name] != "app:v1" {
			t.Errorf("%s runs %s after the first batch's hand-over failed; want it untouched", name, got[name])
		}
	}
}

// A failure the policy tolerates (max_failure_ratio) does not let the
// chained batches declare the rollout done early: the failed replica is
// still to do, and the same rollout finishes it in the next pass.
func TestRolloutToleratedFailureIsFinished(t *testing.T) {
	e := newFake(t)
	update := fleets.Rollout{Parallelism: 2, Order: fleets.OrderStartFirst, FailureAction: fleets.FailurePause, MaxFailureRatio: 0.5}
	_, rec := rollOut(t, e, 6, update, func() { e.FailOnce("RemoveContainer", "web-api-1", errors.New("device or resource busy")) })
	kinds := rec.kinds()
	if n := slices.Index(kinds, "rollout-succeeded"); n != len(kinds)-1 || slices.Index(kinds[1:], "rollout-started") >= 0 {
		t.Errorf("events %v: want one start and the success last", kinds)
	}
	assertConverged(t, e, []fleets.Fleet{rolling(6, "app:v2", update)})
}

func TestRolloutForcedStopFirst(t *testing.T) {
	update := fleets.Rollout{Parallelism: 1, Order: fleets.OrderStartFirst, FailureAction: fleets.FailurePause}
	before := rolling(1, "app:v1", update)
	before.Services[0].Spec.Ports = []fleets.Port{{Target: 80, Published: "8080", Protocol: "tcp"}}
	before.Services[0] = rehash(before.Services[0])
	after := withService(before, "api", func(s *fleets.Service) { s.Spec.Image = "app:v2" })
	e := newFake(t)
	converge(t, e, before)
	p := reconcile.Plan([]fleets.Fleet{after}, observe(t, e), policy())
	if s := p.String(); !strings.Contains(s, "stop-first (forced: publishes fixed host port 8080)") {
		t.Errorf("plan does not say stop-first is forced:\n%s", s)
	}
}

func TestAdvanceContinue(t *testing.T) {
	step := reconcile.RolloutStep{Fleet: "web", Service: "api", Target: "new", From: "old", Slots: []int{1}, Remaining: 3, Replicas: 3,
		Policy: fleets.Rollout{Parallelism: 1, FailureAction: fleets.FailureContinue}, Order: fleets.OrderStopFirst}
	rep := reconcile.Report{Results: []reconcile.Result{{Action: reconcile.Action{Op: reconcile.OpWaitUp, Fleet: "web", Service: "api", Slot: 1, Rollout: true}, Status: reconcile.Failed, Error: "exited with code 3"}}}
	state, events := reconcile.Advance(nil, reconcile.ActionPlan{Rollouts: []reconcile.RolloutStep{step}}, rep, now)
	r := state["web/api"]
	if r.Status != reconcile.RolloutRunning || r.Failures != 1 {
		t.Errorf("continue: record %+v, want running with one failure", r)
	}
	if events[len(events)-1].Kind != reconcile.EventRolloutFailed || !strings.Contains(events[len(events)-1].Message, "continuing") {
		t.Errorf("events %+v", events)
	}
}

func TestForgetOnNewCommit(t *testing.T) {
	state := reconcile.Rollouts{"web/api": {Fleet: "web", Service: "api", Target: "old-target", Status: reconcile.RolloutPaused}}
	if got := reconcile.Forget(state, []fleets.Fleet{rolling(1, "app:v3", fleets.Rollout{})}); len(got) != 0 {
		t.Errorf("a new spec did not supersede the paused rollout: %v", got)
	}
}

// A paused rollout still finishes what fleetd itself left half done: a
// replacement whose rename failed is renamed and started, so no slot stays
// empty until the next commit.
func TestPausedRolloutFinishesHandOver(t *testing.T) {
	e := newFake(t)
	update := fleets.Rollout{Parallelism: 1, Order: fleets.OrderStopFirst, FailureAction: fleets.FailurePause}
	out, _ := rollOut(t, e, 3, update, func() { e.FailOnce("RenameContainer", "web-api-1-next", errors.New("conflict")) })
	if r := out.Rollouts["web/api"]; r.Status != reconcile.RolloutPaused {
		t.Fatalf("record = %+v, want paused after the failed hand-over", r)
	}
	if _, err := reconcile.Converge(t.Context(), e, []fleets.Fleet{rolling(3, "app:v2", update)}, reconcile.Policy{Now: now, Rollouts: out.Rollouts}, (&recorder{}).opts()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web-api-1", "web-api-2", "web-api-3"} {
		if c, ok := e.Container(name); !ok || c.State != "running" {
			t.Errorf("%s: %+v, %v; want every slot running while paused", name, c, ok)
		}
	}
	if _, ok := e.Container("web-api-1-next"); ok {
		t.Error("the half-done replacement was left under its temporary name")
	}
}

// A service that depends on another (service_healthy) waits for that
// service's first batch only: a failure in a later batch of the other
// service's chain does not skip, and so fail, this one's rollout.
func TestChainedRolloutDependentsWaitForFirstBatch(t *testing.T) {
	update := fleets.Rollout{Parallelism: 1, Order: fleets.OrderStartFirst, FailureAction: fleets.FailureRollback}
	build := func(image string) fleets.Fleet {
		api := service("web", "api", 4, func(s *fleets.Service) { s.Spec.Image = image; s.Update = update })
		worker := service("web", "worker", 1, func(s *fleets.Service) {
			s.Spec.Image = image
			s.Update = update
			s.DependsOn = []fleets.Dependency{{Service: "api", Condition: fleets.ConditionHealthy, Required: true}}
		})
		return fleet("web", api, worker)
	}
	e := newFake(t)
	converge(t, e, build("app:v1"))
	e.OnStart(func(c *drift.Container) {
		if c.Name == "web-api-3-next" {
			c.Health = "unhealthy"
		}
	})
	out, err := reconcile.Converge(t.Context(), e, []fleets.Fleet{build("app:v2")}, policy(), (&recorder{}).opts())
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := out.Rollouts["web/worker"]; ok {
		t.Errorf("worker's rollout record %+v; want it rolled out and done", r)
	}
	if c, ok := e.Container("web-worker-1"); !ok || c.Image != "app:v2" {
		t.Errorf("worker runs %+v, want app:v2", c)
	}
	if r := out.Rollouts["web/api"]; r.Status != reconcile.RolloutRolledBack {
		t.Errorf("api's record %+v, want rolled back", r)
	}
}

// A shutdown in the middle of a rollout is not a failure: nothing is
// judged once the context ends, and the next run resumes.
func TestCancelledRolloutIsNotJudged(t *testing.T) {
	e := newFake(t)
	update := fleets.Rollout{Parallelism: 1, Order: fleets.OrderStartFirst, FailureAction: fleets.FailureRollback}
	converge(t, e, rolling(3, "app:v1", update))
	ctx, cancel := context.WithCancel(t.Context())
	opts := (&recorder{}).opts()
	opts.Exec.Progress = func(res reconcile.Result) {
		if res.Action.Op == reconcile.OpStart && res.Action.Target == "web-api-2-next" {
			cancel()
		}
	}
	out, _ := reconcile.Converge(ctx, e, []fleets.Fleet{rolling(3, "app:v2", update)}, policy(), opts)
	for _, r := range out.Rollouts {
		if r.Stalled() || r.Status == reconcile.RolloutRollingBack {
			t.Errorf("a cancelled rollout was judged a failure: %+v", r)
		}
	}
	if _, err := reconcile.Converge(t.Context(), e, []fleets.Fleet{rolling(3, "app:v2", update)}, reconcile.Policy{Now: now, Rollouts: out.Rollouts}, (&recorder{}).opts()); err != nil {
		t.Fatal(err)
	}
	assertConverged(t, e, []fleets.Fleet{rolling(3, "app:v2", update)})
}

// A rollout that plans every batch at once observes twice: before, and
// after to confirm. The pass that only records the outcome executes no
// action, so the next plan reuses its observation.
func TestRolloutObservesOnlyAfterChanges(t *testing.T) {
	e := newFake(t)
	update := fleets.Rollout{Parallelism: 3, Order: fleets.OrderStartFirst, FailureAction: fleets.FailureRollback}
	converge(t, e, rolling(3, "app:v1", update))
	e.ResetCalls()
	var rec recorder
	out, err := reconcile.Converge(t.Context(), e, []fleets.Fleet{rolling(3, "app:v2", update)}, policy(), rec.opts())
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.kinds(); !slices.Contains(got, "rollout-succeeded") {
		t.Fatalf("events %v, want the rollout to succeed", got)
	}
	observes := 0
	for _, c := range e.Calls() {
		if strings.HasPrefix(c, "Observe") {
			observes++
		}
	}
	if observes != 2 {
		t.Errorf("%d observations over %d passes, want 2 (before, and after the rollout)\n%v", observes, out.Passes, e.Calls())
	}
	if out.Converged == nil || len(out.Converged.Containers) != 3 {
		t.Errorf("converged observation %v, want the last one, showing the 3 replicas", out.Converged)
	}
	assertConverged(t, e, []fleets.Fleet{rolling(3, "app:v2", update)})
}

// The hand-over of one batch's old replicas runs in parallel: no stop,
// remove or rename of a slot waits (directly or not) for another slot's
// hand-over, and each new replica is renamed only after its own old one
// is removed.
func TestRolloutRetiresBatchInParallel(t *testing.T) {
	for _, order := range []string{fleets.OrderStartFirst, fleets.OrderStopFirst} {
		e := newFake(t)
		update := fleets.Rollout{Parallelism: 3, Order: order, FailureAction: fleets.FailurePause}
		converge(t, e, rolling(3, "app:v1", update))
		obs, err := e.Observe(t.Context(), drift.ObserveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := reconcile.Plan([]fleets.Fleet{rolling(3, "app:v2", update)}, obs, policy())
		byID := map[int]reconcile.Action{}
		for _, a := range p.Actions {
			byID[a.ID] = a
		}
		// upstream returns every action a waits for, transitively.
		var upstream func(id int, seen map[int]bool)
		upstream = func(id int, seen map[int]bool) {
			for _, dep := range byID[id].After {
				if dep != 0 && !seen[dep] {
					seen[dep] = true
					upstream(dep, seen)
				}
			}
		}
		retire := func(a reconcile.Action) bool {
			return a.Rollout && (a.Op == reconcile.OpStop || a.Op == reconcile.OpRemove || a.Op == reconcile.OpRename)
		}
		n := 0
		for _, a := range p.Actions {
			if !retire(a) {
				continue
			}
			n++
			seen := map[int]bool{}
			upstream(a.ID, seen)
			removedOwn := false
			for dep := range seen {
				b := byID[dep]
				if retire(b) && b.Slot != a.Slot {
					t.Errorf("%s: %s %s (slot %d) waits for %s %s of slot %d", order, a.Op, a.Target, a.Slot, b.Op, b.Target, b.Slot)
				}
				removedOwn = removedOwn || (b.Op == reconcile.OpRemove && b.Slot == a.Slot)
			}
			if a.Op == reconcile.OpRename && !removedOwn {
				t.Errorf("%s: rename %s -> %s does not wait for the removal of its old replica", order, a.Target, a.NewName)
			}
		}
		if n < 6 {
			t.Errorf("%s: %d hand-over actions in a batch of 3, want stop, remove and rename per slot\n%s", order, n, p)
		}
	}
}
