package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/reconcile"
	"github.com/fleetd/fleetd/redact"
)

// Remote is the Backend of `fleetd dashboard`: several agents, read over
// their HTTP API. Poll reads every agent's /v1/status and its dashboard's
// event log; the pages of this process still get each change pushed
// (Server-Sent Events), the polling is between the servers.
type Remote struct {
	// Get reads a path of the agent at addr (its token added by the
	// caller); Trigger asks it for a manual sync (POST /v1/sync).
	Get     func(ctx context.Context, addr, path string) ([]byte, error)
	Trigger func(ctx context.Context, addr string) error
	Now     func() time.Time

	mu      sync.Mutex
	hosts   []Host
	events  [][]reconcile.Event
	changes agent.Changes
}

// NewRemote is the backend of the agents at addrs (URLs), none read yet.
func NewRemote(addrs []string, get func(ctx context.Context, addr, path string) ([]byte, error), trigger func(ctx context.Context, addr string) error) *Remote {
	r := &Remote{Get: get, Trigger: trigger, Now: time.Now, events: make([][]reconcile.Event, len(addrs))}
	for _, a := range addrs {
		r.hosts = append(r.hosts, Host{Name: a, URL: a})
	}
	return r
}

// Run polls every interval until ctx ends.
func (r *Remote) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll reads every agent once, all at once, and signals when anything
// changed. An agent that does not answer keeps its last status and the
// time it was seen, with the error.
func (r *Remote) Poll(ctx context.Context) {
	r.mu.Lock()
	addrs := make([]string, len(r.hosts))
	for i, h := range r.hosts {
		addrs[i] = h.URL
	}
	r.mu.Unlock()
	type read struct {
		st     agent.Status
		err    error
		events []reconcile.Event
		evErr  error
	}
	reads := make([]read, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			rd := &reads[i]
			rd.err = r.getJSON(rctx, addr, "/v1/status", &rd.st)
			if rd.err == nil {
				rd.evErr = r.getJSON(rctx, addr, "/ui/api/events", &rd.events)
			}
		})
	}
	wg.Wait()
	now := r.Now()
	r.mu.Lock()
	before, _ := json.Marshal([]any{r.hosts, r.events})
	for i, rd := range reads {
		h := &r.hosts[i]
		if rd.err != nil {
			h.Err = redact.New().String(rd.err.Error())
			continue
		}
		h.Name, h.Status, h.Seen, h.Err = rd.st.Host, rd.st, now, ""
		if rd.evErr == nil {
			r.events[i] = rd.events
		}
	}
	after, _ := json.Marshal([]any{r.hosts, r.events})
	r.mu.Unlock()
	if !bytes.Equal(before, after) {
		r.changes.Signal()
	}
}

func (r *Remote) getJSON(ctx context.Context, addr, path string, v any) error {
	body, err := r.Get(ctx, addr, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func (r *Remote) Hosts() []Host {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hosts)
}

func (r *Remote) Subscribe() (<-chan struct{}, func()) { return r.changes.Subscribe() }

// Events merges the agents' event logs by time.
func (r *Remote) Events() []reconcile.Event {
	r.mu.Lock()
	var out []reconcile.Event
	for _, evs := range r.events {
		out = append(out, evs...)
	}
	r.mu.Unlock()
	slices.SortStableFunc(out, func(a, b reconcile.Event) int { return a.Time.Compare(b.Time) })
	return out
}

// addr is the URL of the agent named host.
func (r *Remote) addr(host string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.hosts {
		if h.Name == host || h.URL == host {
			return h.URL, nil
		}
	}
	return "", fmt.Errorf("host %q: %w", host, errUnknownHost)
}

func (r *Remote) Sync(ctx context.Context, host string) error {
	addr, err := r.addr(host)
	if err != nil {
		return err
	}
	return r.Trigger(ctx, addr)
}

func (r *Remote) Containers(ctx context.Context, host, fleet string) ([]ContainerRow, error) {
	addr, err := r.addr(host)
	if err != nil {
		return nil, err
	}
	var rows []ContainerRow
	return rows, r.getJSON(ctx, addr, "/ui/api/containers?"+url.Values{"fleet": {fleet}}.Encode(), &rows)
}

func (r *Remote) Preview(ctx context.Context, host string) (string, error) {
	addr, err := r.addr(host)
	if err != nil {
		return "", err
	}
	var p struct {
		Plan string `json:"plan"`
	}
	return p.Plan, r.getJSON(ctx, addr, "/ui/api/plan", &p)
}
