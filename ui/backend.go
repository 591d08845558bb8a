package ui

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/reconcile"
)

// Backend is what the pages show and what their actions do.
type Backend interface {
	// Hosts is every agent with its last status.
	Hosts() []Host
	// Subscribe signals after a change of Hosts or Events.
	Subscribe() (<-chan struct{}, func())
	// Events is the recent events of every agent, oldest first.
	Events() []reconcile.Event
	// Sync asks host's agent for a manual sync, which also resumes its
	// paused rollouts (reconcile.Retry).
	Sync(ctx context.Context, host string) error
	// Containers observes the containers of a fleet on host.
	Containers(ctx context.Context, host, fleet string) ([]ContainerRow, error)
	// Preview is what host's agent would do now (`fleetd plan --live`).
	Preview(ctx context.Context, host string) (string, error)
}

// Agent is the agent serving the page (agent.Agent).
type Agent interface {
	Status() agent.Status
	Subscribe() (<-chan struct{}, func())
	Preview(ctx context.Context) (string, error)
}

// Observer observes the engine (the engine adapter, which ui must not
// import).
type Observer interface {
	Observe(ctx context.Context, opts drift.ObserveOptions) (drift.Observed, error)
}

// Local is the Backend of the agent serving the page.
type Local struct {
	Agent    Agent
	Observer Observer
	// Sync is the agent's manual sync (what POST /v1/sync calls).
	RequestSync func(reason string)
	// Log is the event log in front of the agent's notifier; nil shows
	// no events.
	Log *EventLog
	Now func() time.Time
}

// errUnknownHost answers a request for a host the backend does not know.
var errUnknownHost = errors.New("no such host")

func (l *Local) Hosts() []Host {
	st := l.Agent.Status()
	return []Host{{Name: st.Host, Status: st, Seen: l.now()}}
}

func (l *Local) now() time.Time {
	if l.Now == nil {
		return time.Now()
	}
	return l.Now()
}

// Subscribe merges the agent's change feed and the event log's.
func (l *Local) Subscribe() (<-chan struct{}, func()) {
	a, stopA := l.Agent.Subscribe()
	var e <-chan struct{}
	stopE := func() {}
	if l.Log != nil {
		e, stopE = l.Log.Subscribe()
	}
	out := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-a:
			case <-e:
			case <-done:
				return
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out, func() { stopA(); stopE(); close(done) }
}

func (l *Local) Events() []reconcile.Event {
	if l.Log == nil {
		return nil
	}
	return l.Log.Events()
}

func (l *Local) check(host string) error {
	if host != "" && host != l.Agent.Status().Host {
		return fmt.Errorf("host %q: %w", host, errUnknownHost)
	}
	return nil
}

func (l *Local) Sync(_ context.Context, host string) error {
	if err := l.check(host); err != nil {
		return err
	}
	if l.RequestSync == nil {
		return errors.New("sync is not wired")
	}
	l.RequestSync("manual sync (dashboard)")
	return nil
}

func (l *Local) Containers(ctx context.Context, host, fleet string) ([]ContainerRow, error) {
	if err := l.check(host); err != nil {
		return nil, err
	}
	// One fleet's containers, inspected (uptime, restarts): not a list and
	// an inspect of every container of the host on each push of the page.
	opts := drift.ObserveOptions{Fleet: fleet}
	if fleet == "" {
		opts.InspectAll = true
	}
	obs, err := l.Observer.Observe(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("observe: %w", err)
	}
	return Containers(obs.Containers, fleet, l.now()), nil
}

func (l *Local) Preview(ctx context.Context, host string) (string, error) {
	if err := l.check(host); err != nil {
		return "", err
	}
	return l.Agent.Preview(ctx)
}
