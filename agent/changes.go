package agent

import "sync"

// Changes is the agent's change feed: every subscriber hears, on a channel
// of size one, that the state may have changed since it last looked. Asks
// coalesce, and the agent never waits for a subscriber: a slow one sees
// one signal for many changes and reads the newest status.
type Changes struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// Subscribe returns a channel that receives after each change, and a
// function that ends the subscription (the channel is then never sent to
// again; it is not closed, so a reader never mistakes the end for a
// change).
func (c *Changes) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[chan struct{}]struct{}{}
	}
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}

// Signal tells every subscriber, without blocking.
func (c *Changes) Signal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Subscribers counts the subscriptions, for tests and metrics.
func (c *Changes) Subscribers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.subs)
}
