package agent

import (
	"encoding/binary"
	"hash/fnv"
	"time"
)

// Backoff is an exponential backoff: Floor after the first failure,
// doubling, at most Ceil, jittered by ±10%.
type Backoff struct{ Floor, Ceil time.Duration }

// after is the wait after the n-th failure in a row (n ≥ 1) of key.
func (b Backoff) after(n int, key string, seed uint64) time.Duration {
	d := b.Floor
	for i := 1; i < n && d < b.Ceil; i++ {
		d *= 2
	}
	return jitter(min(d, b.Ceil), key, n, seed)
}

// jitter spreads d by ±10%, deterministically for one (key, n, seed):
// hosts with different seeds, and fleets with different names, do not
// retry in step, and Next stays a pure function.
func jitter(d time.Duration, key string, n int, seed uint64) time.Duration {
	if d <= 0 {
		return d
	}
	h := fnv.New64a()
	var buf [16]byte
	binary.LittleEndian.PutUint64(buf[:8], seed)
	binary.LittleEndian.PutUint64(buf[8:], uint64(n))
	h.Write(buf[:])
	h.Write([]byte(key))
	spread := int64(d / 5)
	if spread == 0 {
		return d
	}
	return d - d/10 + time.Duration(h.Sum64()%uint64(spread+1))
}
