package engine

import (
	"maps"
	"net/http"
	"strings"
	"sync"
)

// Calls returns the number of Docker API requests made since New or the
// last ResetCalls, per normalised operation: "GET /containers/json",
// "GET /containers/{id}/json", "POST /networks/create", ...
func (d *Docker) Calls() map[string]int { return d.calls.snapshot() }

// ResetCalls zeroes the counts Calls returns.
func (d *Docker) ResetCalls() { d.calls.reset() }

type callCounter struct {
	mu      sync.Mutex
	counts  map[string]int
	lastErr error
}

func newCallCounter() *callCounter { return &callCounter{counts: map[string]int{}} }

func (c *callCounter) add(op string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[op]++
	if err != nil {
		c.lastErr = err
	}
}

func (c *callCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

func (c *callCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.counts)
	c.lastErr = nil
}

// lastError is the last transport-level error, which carries the cause
// (ENOENT, EACCES) that the SDK replaces with a generic message.
func (c *callCounter) lastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// countingTransport counts requests by normalised operation.
type countingTransport struct {
	next  http.RoundTripper
	calls *callCounter
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	t.calls.add(req.Method+" "+normalisePath(req.URL.Path), err)
	return resp, err
}

// Collection-level path segments that are not object IDs.
var collectionVerbs = map[string]bool{
	"json": true, "create": true, "prune": true, "load": true,
	"search": true, "get": true,
}

// Trailing segments of image paths, whose names may contain slashes.
var imageVerbs = map[string]bool{
	"json": true, "history": true, "push": true, "tag": true, "get": true,
}

// normalisePath drops the /v1.xx prefix and replaces object IDs and names
// with {id} (containers, networks, volumes, exec, plugins) or {name}
// (images, distribution; their names may contain slashes).
func normalisePath(p string) string {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	if len(segs) > 0 && strings.HasPrefix(segs[0], "v1.") {
		segs = segs[1:]
	}
	if len(segs) < 2 || collectionVerbs[segs[1]] && len(segs) == 2 {
		return "/" + strings.Join(segs, "/")
	}
	switch segs[0] {
	case "images", "distribution":
		if last := segs[len(segs)-1]; imageVerbs[last] {
			return "/" + segs[0] + "/{name}/" + last
		}
		return "/" + segs[0] + "/{name}"
	default:
		segs[1] = "{id}"
		return "/" + strings.Join(segs, "/")
	}
}
