package server

import (
	"context"
	"sync"
)

// trigger calls fn off the request path. At most one call runs at a time;
// a trigger that arrives during a call is kept (the latest reason wins) and
// causes exactly one more call after it, so no push is lost and a burst
// costs at most two calls. It holds no goroutine while idle.
type trigger struct {
	fn func(reason string)

	mu      sync.Mutex
	running bool
	pending string // reason of a trigger that came during a call; "" none
	idle    chan struct{}
}

func newTrigger(fn func(string)) *trigger {
	t := &trigger{fn: fn, idle: make(chan struct{})}
	close(t.idle)
	return t
}

// fire asks for a call with reason and returns at once. It reports whether
// the trigger was coalesced into one already pending.
func (t *trigger) fire(reason string) (coalesced bool) {
	if t.fn == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running {
		coalesced = t.pending != ""
		t.pending = reason
		return coalesced
	}
	t.running = true
	t.idle = make(chan struct{})
	go t.run(reason, t.idle)
	return false
}

// run calls fn until no trigger is pending.
func (t *trigger) run(reason string, idle chan struct{}) {
	for {
		t.fn(reason)
		t.mu.Lock()
		if t.pending == "" {
			t.running = false
			close(idle)
			t.mu.Unlock()
			return
		}
		reason, t.pending = t.pending, ""
		t.mu.Unlock()
	}
}

// wait waits until no call runs, or ctx ends; it reports whether it is idle.
func (t *trigger) wait(ctx context.Context) bool {
	t.mu.Lock()
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		return false
	}
}
