package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetd/fleetd/ingress"
)

// Kinds of backend errors, the kind label of fleetd_ingress_errors_total.
const (
	kindConnect   = "connect"    // the dial failed
	kindUpstream  = "upstream"   // failed after connecting, or answered 502/503/504
	kindNoBackend = "no_backend" // the route had no usable backend
)

// backendInfo is what the table says of a backend, merged over every
// route that lists it.
type backendInfo struct {
	route      string // route key, fleet/service
	name       string
	addr       string
	healthPath string        // the first one set among its routes
	drain      time.Duration // the longest among its routes
	draining   bool          // draining in any of its routes, or gone
}

// backendInfos merges what t says of each backend, by ID.
func backendInfos(t ingress.Table) map[string]backendInfo {
	out := map[string]backendInfo{}
	for _, l := range t.Listeners {
		for _, r := range l.Routes {
			for _, b := range r.Backends {
				info, seen := out[b.ID]
				if !seen {
					info = backendInfo{route: r.Key(), name: b.Name, addr: b.Addr}
				}
				if info.healthPath == "" {
					info.healthPath = r.HealthPath
				}
				info.drain = max(info.drain, r.Drain)
				info.draining = info.draining || b.Draining
				out[b.ID] = info
			}
		}
	}
	return out
}

// backend is the live state of one replica, by ID. It survives table
// swaps, so a backend that starts draining keeps its counts.
type backend struct {
	id string
	s  *Server

	info         atomic.Pointer[backendInfo]
	inFlight     atomic.Int64
	requests     atomic.Uint64
	errors       atomic.Uint64
	fails        atomic.Int64 // consecutive passive failures
	ejectedUntil atomic.Int64 // unix nanoseconds; in the past when not ejected
	healthy      atomic.Bool  // the last active check passed (or none ran)
	drainAt      atomic.Int64 // unix nanoseconds of the drain deadline; 0 when not draining

	// Guarded by s.bmu.
	stopCheck context.CancelFunc
	checking  string // the URL its checker probes

	mu            sync.Mutex
	labels        [2]string // route and name of its metric series
	live          bool      // its metric series may be written
	gone          bool      // it left the table
	drainingSince time.Time
	timer         *time.Timer       // fires at the drain deadline
	work          map[uint64]func() // stops each request and connection it serves
	nextWork      uint64
}

// newBackend returns a healthy backend with no work.
func newBackend(s *Server, id string) *backend {
	b := &backend{id: id, s: s, work: map[uint64]func(){}}
	b.healthy.Store(true)
	b.info.Store(&backendInfo{})
	return b
}

// ensureBackends returns the backends of infos by ID, before the swap:
// it creates the new ones and revives the ones that left an earlier
// table, with their info. Backends the served table uses keep their
// info until syncBackends, after the swap, so that traffic still on the
// served table never finds its backends draining on account of the next.
func (s *Server) ensureBackends(infos map[string]backendInfo) map[string]*backend {
	now := s.now()
	s.bmu.Lock()
	defer s.bmu.Unlock()
	out := map[string]*backend{}
	for id, info := range infos {
		b := s.backends[id]
		if b == nil {
			b = newBackend(s, id)
			s.backends[id] = b
		}
		if b.fresh() {
			b.update(info, now)
			s.syncChecker(b, info)
		}
		out[id] = b
	}
	return out
}

// syncBackends makes the registry match infos, after the swap: every
// backend of infos takes its info, the others retire.
func (s *Server) syncBackends(infos map[string]backendInfo) {
	now := s.now()
	s.bmu.Lock()
	defer s.bmu.Unlock()
	for id, b := range s.backends {
		info, ok := infos[id]
		if !ok {
			s.retireBackend(b, now)
			continue
		}
		b.update(info, now)
		s.syncChecker(b, info)
	}
}

// fresh reports whether no table in use lists b: it was just created,
// or it left the table.
func (b *backend) fresh() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.live || b.gone
}

// update sets what the table says of b.
func (b *backend) update(info backendInfo, now time.Time) {
	b.info.Store(&info)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gone = false
	b.relabelLocked(info.route, info.name)
	b.setDrainingLocked(info.draining, info.drain, now)
}

// relabelLocked moves b's metric series to new labels if they changed.
func (b *backend) relabelLocked(route, name string) {
	labels := [2]string{route, name}
	if b.live && b.labels == labels {
		return
	}
	if b.live {
		b.s.metrics.forgetBackend(b.labels[0], b.labels[1])
	}
	b.labels, b.live = labels, true
}

// setDrainingLocked starts or stops b's drain. A drain starts when the
// proxy first sees b draining and ends, cutting what b still serves,
// drain later.
func (b *backend) setDrainingLocked(draining bool, drain time.Duration, now time.Time) {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if !draining {
		b.drainingSince = time.Time{}
		b.drainAt.Store(0)
		return
	}
	if b.drainingSince.IsZero() {
		b.drainingSince = now
	}
	at := b.drainingSince.Add(drain).UnixNano()
	b.drainAt.Store(at)
	b.armLocked(at, now)
}

// armLocked sets b's timer to fire at the drain deadline at.
func (b *backend) armLocked(at int64, now time.Time) {
	b.timer = time.AfterFunc(max(0, time.Unix(0, at).Sub(now)), func() { b.drainExpired(at) })
}

// retireBackend drains a backend that left the table; it leaves the
// registry when its drain ends or its work is done. s.bmu is held.
func (s *Server) retireBackend(b *backend, now time.Time) {
	if b.stopCheck != nil {
		b.stopCheck()
		b.stopCheck, b.checking = nil, ""
	}
	info := *b.info.Load()
	info.draining = true
	b.info.Store(&info)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gone {
		return
	}
	b.gone = true
	b.setDrainingLocked(true, info.drain, now)
	if len(b.work) == 0 {
		s.dropLocked(b)
	}
}

// drainExpired cuts what b still serves once its drain deadline at
// passed; it does nothing if the drain ended or moved meanwhile.
func (b *backend) drainExpired(at int64) {
	b.mu.Lock()
	if b.drainAt.Load() != at {
		b.mu.Unlock()
		return
	}
	if now := b.s.now(); now.Before(time.Unix(0, at)) { // the clock moved back
		b.armLocked(at, now)
		b.mu.Unlock()
		return
	}
	stops := make([]func(), 0, len(b.work))
	for _, stop := range b.work {
		stops = append(stops, stop)
	}
	gone := b.gone
	b.mu.Unlock()
	if len(stops) > 0 {
		info := b.info.Load()
		b.s.log.Info("drain over, closing what is left", "route", info.route, "backend", info.name, "open", len(stops))
	}
	for _, stop := range stops {
		stop()
	}
	if gone {
		b.s.finalize(b)
	}
}

// finalize forgets a backend that left the table, unless it came back.
func (s *Server) finalize(b *backend) {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gone {
		s.dropLocked(b)
	}
}

// dropLocked removes b from the registry and deletes its metric series;
// s.bmu and b.mu are held.
func (s *Server) dropLocked(b *backend) {
	if s.backends[b.id] != b {
		return
	}
	delete(s.backends, b.id)
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if b.live {
		s.metrics.forgetBackend(b.labels[0], b.labels[1])
		b.live = false
	}
}

// stopDrainTimers stops every drain timer, at shutdown.
func (s *Server) stopDrainTimers() {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	for _, b := range s.backends {
		b.mu.Lock()
		if b.timer != nil {
			b.timer.Stop()
		}
		b.mu.Unlock()
	}
}

// isUsable decides whether a backend may take new work at now. It is
// pure.
func isUsable(draining, healthy bool, ejectedUntil, now time.Time) bool {
	return !draining && healthy && !now.Before(ejectedUntil)
}

// usable reports whether b may take new work at now.
func (b *backend) usable(now time.Time) bool {
	return isUsable(b.info.Load().draining, b.healthy.Load(), time.Unix(0, b.ejectedUntil.Load()), now)
}

// ejected reports whether b is ejected at now.
func (b *backend) ejected(now time.Time) bool {
	return now.Before(time.Unix(0, b.ejectedUntil.Load()))
}

// begin counts a request or connection in flight on b; end uncounts it.
func (b *backend) begin() { b.inFlight.Add(1) }

// end uncounts a request or connection counted by begin.
func (b *backend) end() { b.inFlight.Add(-1) }

// track registers stop, which cuts one request or connection of b when
// its drain ends; the returned func unregisters it. Work that arrives
// past the deadline is stopped at once.
func (b *backend) track(stop func()) (untrack func()) {
	b.mu.Lock()
	id := b.nextWork
	b.nextWork++
	b.work[id] = stop
	b.mu.Unlock()
	if at := b.drainAt.Load(); at != 0 && !b.s.now().Before(time.Unix(0, at)) {
		stop()
	}
	return func() {
		b.mu.Lock()
		delete(b.work, id)
		idle := b.gone && len(b.work) == 0
		b.mu.Unlock()
		if idle {
			b.s.finalize(b)
		}
	}
}

// observe calls fn with b's metric labels unless its series were
// deleted.
func (b *backend) observe(fn func(route, name string)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.live {
		fn(b.labels[0], b.labels[1])
	}
}

// shouldEject decides whether fails consecutive passive failures eject
// a backend. It is pure.
func shouldEject(fails int64, ejectAfter int) bool {
	return fails >= int64(ejectAfter)
}

// passiveFailure counts a failure of kind on b and ejects b after
// EjectAfter in a row.
func (s *Server) passiveFailure(b *backend, kind string) {
	s.countError(b, kind)
	n := b.fails.Add(1)
	if !shouldEject(n, s.opts.EjectAfter) {
		return
	}
	b.fails.Store(0)
	b.ejectedUntil.Store(s.now().Add(s.opts.EjectFor).UnixNano())
	info := b.info.Load()
	s.log.Warn("backend ejected", "route", info.route, "backend", info.name, "failures", n, "for", s.opts.EjectFor)
}

// passiveSuccess resets b's count of consecutive failures.
func (b *backend) passiveSuccess() { b.fails.Store(0) }

// countError counts an error of kind on b.
func (s *Server) countError(b *backend, kind string) {
	b.errors.Add(1)
	b.observe(func(route, name string) {
		s.metrics.errors.WithLabelValues(route, name, kind).Inc()
	})
}

// state reports b for State.
func (b *backend) state(now time.Time) BackendState {
	info := b.info.Load()
	b.mu.Lock()
	gone := b.gone
	b.mu.Unlock()
	return BackendState{
		Route:    info.route,
		Name:     info.name,
		Addr:     info.addr,
		InFlight: b.inFlight.Load(),
		Requests: b.requests.Load(),
		Errors:   b.errors.Load(),
		Draining: info.draining,
		Healthy:  b.healthy.Load(),
		Ejected:  b.ejected(now),
		Removed:  gone,
	}
}

// pick chooses a usable backend of rv not in tried with ingress.Pick; nil
// if there is none.
func (s *Server) pick(rv *routeView, tried map[string]bool) *backend {
	now := s.now()
	cands := make([]ingress.Candidate, len(rv.backends))
	for i, b := range rv.backends {
		cands[i] = ingress.Candidate{
			Usable:   !tried[b.id] && b.usable(now),
			InFlight: int(b.inFlight.Load()),
		}
	}
	i := ingress.Pick(cands, rv.route.Balance, rv.next.Add(1)-1)
	if i < 0 {
		return nil
	}
	return rv.backends[i]
}
