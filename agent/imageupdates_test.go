package agent

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/fleets/fleetstest"
	"github.com/fleetd/fleetd/reconcile"
)

const (
	regRef  = "127.0.0.1:5000/team/app:1"
	digest1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digest2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	digest3 = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
)

// regFleet is a fleet whose service web runs regRef with the given
// image_updates policy.
func regFleet(name, policy string) fleets.Fleet {
	return fleetstest.Fleet(name, fleetstest.Service(name, "web", 1, func(s *fleets.Service) {
		s.Spec.Image, s.ImageUpdates = regRef, policy
	}))
}

func imageSim(t *testing.T, fs ...fleets.Fleet) *sim {
	s := newSim(t)
	s.rules.ImageCheck = 6 * time.Hour
	s.boot(fs...)
	for _, f := range fs {
		s.done(f.Name)
	}
	return s
}

func checks(fx []Effect) []CheckImages {
	var out []CheckImages
	for _, e := range fx {
		if c, ok := e.(CheckImages); ok {
			out = append(out, c)
		}
	}
	return out
}

func pulls(fx []Effect) []PullImage {
	var out []PullImage
	for _, e := range fx {
		if p, ok := e.(PullImage); ok {
			out = append(out, p)
		}
	}
	return out
}

func TestImageUpdateCheckScheduleAndRefs(t *testing.T) {
	built := fleetstest.Fleet("b", fleetstest.Service("b", "web", 1, func(s *fleets.Service) {
		s.Spec.Image, s.Build, s.PullPolicy = "b-web:ctx123", &fleets.Build{}, "build"
	}), fleetstest.Service("b", "pinned", 1, func(s *fleets.Service) {
		s.Spec.Image = "127.0.0.1:5000/team/db@" + digest1
	}), fleetstest.Service("b", "quiet", 1, func(s *fleets.Service) {
		s.Spec.Image, s.ImageUpdates = "127.0.0.1:5000/team/quiet:1", fleets.ImageUpdatesOff
	}))
	s := imageSim(t, regFleet("a", ""), built)
	if got := checks(s.after(30 * time.Second)); len(got) != 0 {
		t.Fatalf("checked before the first delay: %v", got)
	}
	got := checks(s.after(31 * time.Second))
	if len(got) != 1 || !slices.Equal(got[0].Refs, []string{regRef}) {
		t.Fatalf("first check: %v, want one check of %s only (built, pinned and off images are skipped)", got, regRef)
	}
	// In flight: the next due time does not start a second one.
	s.now = s.s.NextImageCheck
	if got := checks(s.in(TimerFired{})); len(got) != 0 {
		t.Fatalf("second check while one is in flight: %v", got)
	}
	if at := s.s.NextImageCheck.Sub(s.now); at != time.Minute {
		t.Errorf("a check due while one runs is looked at again in %s, want 1m", at)
	}
	s.in(ImagesChecked{Results: []ImageCheck{{Ref: regRef, Running: digest1, Remote: digest1}}})
	s.now = s.s.NextImageCheck
	if got := checks(s.in(TimerFired{})); len(got) != 1 {
		t.Fatalf("the check held back by the one in flight: %v", got)
	}
	s.in(ImagesChecked{Results: []ImageCheck{{Ref: regRef, Running: digest1, Remote: digest1}}})
	if at := s.s.NextImageCheck.Sub(s.now); at < 4*time.Hour || at > 8*time.Hour {
		t.Errorf("next check in %s, want about 6h", at)
	}
	// Due while the engine is down: held back, checked once it is up.
	s.in(EngineLost{Err: "engine gone"})
	s.now = s.s.NextImageCheck
	if got := checks(s.in(TimerFired{})); len(got) != 0 {
		t.Fatalf("checked with the engine down: %v", got)
	}
	s.in(EngineUp{})
	if got := checks(s.after(time.Minute)); len(got) != 1 {
		t.Errorf("no check a minute after the engine came back: %v", got)
	}
}

func TestImageUpdateToldOncePerDigest(t *testing.T) {
	s := imageSim(t, regFleet("a", ""))
	s.s.CheckingImages = true
	fx := s.in(ImagesChecked{Results: []ImageCheck{{Ref: regRef, Running: digest1, Remote: digest2}}})
	if got := notifications(fx); !slices.Equal(got, []reconcile.EventKind{reconcile.EventImageUpdateAvailable}) {
		t.Fatalf("notifications %v, want one image-update-available", got)
	}
	if len(pulls(fx)) != 0 {
		t.Errorf("notify policy pulled: %v", pulls(fx))
	}
	var ev reconcile.Event
	for _, e := range fx {
		if n, ok := e.(Notify); ok {
			ev = n.Event
		}
	}
	if ev.Fleet != "a" || ev.Service != "web" || !strings.Contains(ev.Message, "sha256:111111111111… → sha256:222222222222…") {
		t.Errorf("event %+v", ev)
	}
	since := s.s.Images[regRef].Since
	s.now = s.now.Add(time.Hour)
	if got := notifications(s.in(ImagesChecked{Results: []ImageCheck{{Ref: regRef, Running: digest1, Remote: digest2}}})); len(got) != 0 {
		t.Errorf("same digest told again: %v", got)
	}
	if !s.s.Images[regRef].Since.Equal(since) {
		t.Errorf("since moved from %s to %s for the same digest", since, s.s.Images[regRef].Since)
	}
	st := StatusOf(s.s, "h1", s.now)
	want := []ImageUpdate{{Service: "web", Image: regRef, Running: digest1, Available: digest2, Since: since, Policy: fleets.ImageUpdatesNotify}}
	if !slices.Equal(st.Fleets[0].Updates, want) {
		t.Errorf("status updates %+v, want %+v", st.Fleets[0].Updates, want)
	}
	if got := notifications(s.in(ImagesChecked{Results: []ImageCheck{{Ref: regRef, Running: digest1, Remote: digest3}}})); len(got) != 1 {
		t.Errorf("a newer digest: notifications %v, want one", got)
	}
	// Back in step (pulled by hand): no update in the status, nothing told.
	fx = s.in(ImagesChecked{Results: []ImageCheck{{Ref: regRef, Running: digest3, Remote: digest3}}})
	if len(notifications(fx)) != 0 || len(StatusOf(s.s, "h1", s.now).Fleets[0].Updates) != 0 {
		t.Errorf("in step: told %v, status %+v", notifications(fx), StatusOf(s.s, "h1", s.now).Fleets[0].Updates)
	}
}

func TestImageUpdateErrorKeepsState(t *testing.T) {
	s := imageSim(t, regFleet("a", fleets.ImageUpdatesApply))
	s.in(ImagesChecked{Results: []ImageCheck{{Ref: regRef, Running: digest1, Remote: digest1}}})
	before := s.s.Images[regRef]
	fx := s.in(ImagesChecked{Results: []ImageCheck{{Ref: regRef, Err: "resolve 127.0.0.1:5000/team/app:1: connection refused"}}})
	if len(notifications(fx)) != 0 || len(pulls(fx)) != 0 || len(applies(fx)) != 0 {
		t.Errorf("an error acted: %v", fx)
	}
	got := s.s.Images[regRef]
	if got.Running != before.Running || got.Remote != before.Remote || got.Err == "" {
		t.Errorf("after an error %+v, want the digests of %+v and the error", got, before)
	}
	if f := s.s.Fleets["a"]; f.Stall != nil || len(f.Faults) > 0 || f.Pending != 0 {
		t.Errorf("an unreachable registry touched the fleet: %+v", f)
	}
	us := StatusOf(s.s, "h1", s.now).Fleets[0].Updates
	if len(us) != 1 || !strings.Contains(us[0].Error, "connection refused") || us[0].Available != "" {
		t.Errorf("status %+v, want the check's error only", us)
	}
}

func TestImageUpdateApplyWithinWindows(t *testing.T) {
	open := false
	s := newSim(t)
	s.rules.ImageCheck = 6 * time.Hour
	s.rules.InWindow = func(time.Time) bool { return open }
	s.boot(regFleet("a", fleets.ImageUpdatesApply))
	s.in(ApplyDone{Fleet: "a", Revision: "c1", ReportOnly: true})
	fx := s.in(ImagesChecked{Results: []ImageCheck{{Ref: regRef, Running: digest1, Remote: digest2}}})
	if len(pulls(fx)) != 0 {
		t.Fatalf("pulled outside the windows: %v", pulls(fx))
	}
	us := StatusOf(s.s, "h1", s.now).Fleets[0].Updates
	if len(us) != 1 || us[0].Waiting != "outside the sync windows" {
		t.Errorf("status %+v, want it waiting for a window", us)
	}
	if at := s.s.TimerAt; at.IsZero() || at.After(s.now.Add(time.Minute)) {
		t.Errorf("timer at %s, want the next minute (a window may open)", at)
	}
	open = true
	fx = s.after(time.Minute)
	if got := pulls(fx); len(got) != 1 || got[0] != (PullImage{Ref: regRef, Digest: digest2}) {
		t.Fatalf("window open: pulls %v", got)
	}
	if got := pulls(s.after(time.Minute)); len(got) != 0 {
		t.Errorf("pulled again while the pull runs: %v", got)
	}
	fx = s.in(ImagePulled{Ref: regRef, Digest: digest2})
	if got := applies(fx); !slices.Equal(got, []string{"a"}) {
		t.Errorf("after the pull: applies %v, want fleet a", got)
	}
	if st := s.s.Images[regRef]; st.available() {
		t.Errorf("after the pull the update is still available: %+v", st)
	}
}

func TestImageUpdatePullFailureWaitsForNextCheck(t *testing.T) {
	s := imageSim(t, regFleet("a", fleets.ImageUpdatesApply))
	if got := pulls(s.in(ImagesChecked{Results: []ImageCheck{{Ref: regRef, Running: digest1, Remote: digest2}}})); len(got) != 1 {
		t.Fatalf("pulls %v", got)
	}
	fx := s.in(ImagePulled{Ref: regRef, Digest: digest2, Err: "pull 127.0.0.1:5000/team/app:1: unauthorized"})
	if len(applies(fx)) != 0 || len(pulls(fx)) != 0 {
		t.Errorf("a failed pull acted: %v", fx)
	}
	if len(pulls(s.after(time.Minute))) != 0 {
		t.Errorf("a failed pull is retried before the next check")
	}
	if got := pulls(s.in(ImagesChecked{Results: []ImageCheck{{Ref: regRef, Running: digest1, Remote: digest2}}})); len(got) != 1 {
		t.Errorf("the next check does not pull again: %v", got)
	}
}

func TestImageUpdateMixedPoliciesDoNotPull(t *testing.T) {
	s := imageSim(t, regFleet("a", fleets.ImageUpdatesApply), regFleet("b", ""))
	fx := s.in(ImagesChecked{Results: []ImageCheck{{Ref: regRef, Running: digest1, Remote: digest2}}})
	if len(pulls(fx)) != 0 {
		t.Errorf("pulled a tag that a notify-only service also runs: %v", pulls(fx))
	}
	if got := notifications(fx); len(got) != 2 {
		t.Errorf("notifications %v, want one per fleet", got)
	}
	us := StatusOf(s.s, "h1", s.now).Fleets[0].Updates
	if len(us) != 1 || !strings.Contains(us[0].Waiting, "without image_updates: apply") {
		t.Errorf("status %+v", us)
	}
	if got := us[0].String(); !strings.Contains(got, "update available: image "+regRef+" (sha256:111111111111… → sha256:222222222222…)") {
		t.Errorf("text %q", got)
	}
}
