package server

import (
	"sync"
	"testing"
)

func TestTriggerCoalesces(t *testing.T) {
	var mu sync.Mutex
	var got []string
	started, release := make(chan struct{}, 1), make(chan struct{})
	tr := newTrigger(func(r string) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		started <- struct{}{}
		<-release
	})
	if tr.fire("a") {
		t.Error("first fire coalesced")
	}
	<-started
	if tr.fire("b") {
		t.Error("b coalesced, but nothing was pending")
	}
	if !tr.fire("c") {
		t.Error("c not coalesced into the pending b")
	}
	close(release)
	<-started
	tr.wait(t.Context())
	if len(got) != 2 || got[0] != "a" || got[1] != "c" {
		t.Errorf("calls %q, want [a c]", got)
	}

	// Idle again: the next fire makes a new call.
	tr.fire("d")
	<-started
	tr.wait(t.Context())
	if len(got) != 3 || got[2] != "d" {
		t.Errorf("calls %q, want d last", got)
	}
}

func TestTriggerNil(t *testing.T) {
	tr := newTrigger(nil)
	tr.fire("x")
	if !tr.wait(t.Context()) {
		t.Error("a trigger without a func is idle")
	}
}
