package server

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// ReplayTTL is how long a delivery ID is remembered: GitHub lets a person
// redeliver a delivery, with its ID, for 3 days.
const ReplayTTL = 72 * time.Hour

// ReplayMaxEntries bounds the replay cache (about 2 MB when full); when it
// is full the oldest ID is forgotten first.
const ReplayMaxEntries = 10000

// maxIDLen is the longest delivery ID kept as sent; a longer one (forges
// send 36-character UUIDs) is kept as its SHA-256, so no sender can make
// an entry large.
const maxIDLen = 64

// replayCache remembers the delivery IDs that triggered a sync, for ttl
// and at most max of them. It has no clock and no lock: the caller passes
// the time and serializes calls.
type replayCache struct {
	ttl   time.Duration
	max   int
	at    map[string]time.Time // key -> when it was first seen
	order []string             // keys, oldest first
}

func newReplayCache(ttl time.Duration, max int) *replayCache {
	return &replayCache{ttl: ttl, max: max, at: map[string]time.Time{}}
}

// seen reports whether key was recorded less than ttl before now, and
// records it when it was not. A repeat does not extend the first sighting:
// an ID is forgotten ttl after it was first seen, or earlier when max newer
// ones push it out.
func (c *replayCache) seen(key string, now time.Time) bool {
	c.expire(now)
	if _, ok := c.at[key]; ok {
		return true
	}
	for len(c.order) >= c.max {
		c.dropOldest()
	}
	c.at[key] = now
	c.order = append(c.order, key)
	return false
}

// expire forgets the keys seen ttl or longer before now. Keys are in the
// order they were recorded, so it stops at the first one still fresh.
func (c *replayCache) expire(now time.Time) {
	for len(c.order) > 0 && now.Sub(c.at[c.order[0]]) >= c.ttl {
		c.dropOldest()
	}
}

func (c *replayCache) dropOldest() {
	delete(c.at, c.order[0])
	c.order[0] = ""
	c.order = c.order[1:]
}

func (c *replayCache) len() int { return len(c.order) }

// deliveryKey is the cache key of a provider's delivery ID; "" when the
// delivery carries none.
func deliveryKey(provider, id string) string {
	if id == "" {
		return ""
	}
	if len(id) > maxIDLen {
		sum := sha256.Sum256([]byte(id))
		id = "sha256:" + hex.EncodeToString(sum[:])
	}
	return provider + " " + id
}

// duplicate reports whether a delivery of provider with id was already
// taken, recording it if not. A delivery without an ID is never a
// duplicate.
func (s *Server) duplicate(provider, id string) bool {
	key := deliveryKey(provider, id)
	if key == "" {
		return false
	}
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	return s.replay.seen(key, s.cfg.Now())
}
