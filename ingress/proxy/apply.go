package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"sync/atomic"

	"github.com/fleetd/fleetd/ingress"
)

// ErrStale is returned by Apply (and by Client.Push) for a table older
// than the one served, or as old with other content.
var ErrStale = errors.New("stale routing table")

// ErrBind is wrapped, along with ingress.ErrInvalidTable, by Apply's
// error when a listener's port cannot be bound.
var ErrBind = errors.New("cannot bind listener")

// snapshot is a table as traffic sees it: per port, its routes and their
// backends. A snapshot never changes once stored.
type snapshot struct {
	table ingress.Table
	ports map[uint16]*portView
}

// portView is one listener of a snapshot.
type portView struct {
	owner    *listener // the listener serving this port for this snapshot
	listener ingress.Listener
	routes   map[string]*routeView // by ruleKey
	tcp      *routeView            // the only route of a tcp listener
}

// routeView is one route of a snapshot with its backends' live state.
type routeView struct {
	route    ingress.Route
	key      string
	backends []*backend     // in the order of route.Backends
	next     *atomic.Uint64 // round robin position, kept across tables
}

// ruleKey names a route by its rule, unique per listener (Validate).
func ruleKey(r ingress.Route) string { return r.Host + " " + r.PathPrefix }

// match finds the route of an HTTP request.
func (pv *portView) match(host, path string) (*routeView, bool) {
	r, ok := ingress.Match(pv.listener, host, path)
	if !ok {
		return nil, false
	}
	rv, ok := pv.routes[ruleKey(r)]
	return rv, ok
}

// plan is how the listeners change from the served table to the next.
type plan struct {
	keep    map[uint16]*listener // same port, protocol and TLS: keep running
	open    []ingress.Listener   // ports not bound yet
	replace []ingress.Listener   // ports bound with another protocol or TLS
	retire  []*listener          // removed or replaced: shut down after the swap
	opened  map[uint16]*listener // bound for the next table, not serving yet
	paused  []*listener          // replaced listeners whose socket is closed
}

// Apply swaps t in, or refuses it whole and keeps serving the current
// table. It sorts a copy of t and refuses it if it is invalid, older than
// the served table (ErrStale; the same version with the same content is
// a no-op), names TLS files that do not load, or needs a port that cannot
// be bound (ErrBind). Listeners whose port, protocol and TLS are
// unchanged keep running and see the new routes at once; removed ones
// drain in the background. The table is then saved in StateDir.
func (s *Server) Apply(t ingress.Table) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	next := cloneTable(t)
	ingress.Sort(&next)
	if err := ingress.Validate(next); err != nil {
		return fmt.Errorf("refuse table version %d: %w", next.Version, err)
	}
	if noop, err := s.checkVersion(next); err != nil || noop {
		return err
	}
	certs, err := s.loadCerts(next)
	if err != nil {
		return fmt.Errorf("refuse table version %d: %w", next.Version, err)
	}
	p := s.plan(next)
	if err := s.bind(p); err != nil {
		return fmt.Errorf("refuse table version %d: %w", next.Version, err)
	}
	s.swap(next, p, certs)
	if err := saveTable(s.opts.StateDir, next); err != nil {
		s.log.Error("cannot save the routing table", "version", next.Version, "error", err)
	}
	return nil
}

// checkVersion refuses a table older than the served one, or as old with
// other content; noop is true for the served table itself.
func (s *Server) checkVersion(next ingress.Table) (noop bool, err error) {
	if !s.applied {
		return false, nil
	}
	cur := s.cur.Load().table
	switch {
	case next.Version < cur.Version:
		return false, fmt.Errorf("%w: version %d is older than the served version %d", ErrStale, next.Version, cur.Version)
	case next.Version > cur.Version:
		return false, nil
	case reflect.DeepEqual(next, cur):
		return true, nil
	default:
		return false, fmt.Errorf("%w: version %d is served already, with other content", ErrStale, next.Version)
	}
}

// loadCerts reads the certificate of every TLS listener of t; relative
// paths are in the state directory.
func (s *Server) loadCerts(t ingress.Table) (map[uint16]*tls.Certificate, error) {
	certs := map[uint16]*tls.Certificate{}
	for _, l := range t.Listeners {
		if l.TLS == nil {
			continue
		}
		c, err := tls.LoadX509KeyPair(s.statePath(l.TLS.CertFile), s.statePath(l.TLS.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("%w: port %d: tls certificate: %w", ingress.ErrInvalidTable, l.Port, err)
		}
		certs[l.Port] = &c
	}
	return certs, nil
}

// plan compares t's listeners with the running ones.
func (s *Server) plan(t ingress.Table) *plan {
	p := &plan{keep: map[uint16]*listener{}, opened: map[uint16]*listener{}}
	for _, l := range t.Listeners {
		old := s.listeners[l.Port]
		switch {
		case old == nil:
			p.open = append(p.open, l)
		case old.kind == kindOf(l):
			p.keep[l.Port] = old
		default:
			p.replace = append(p.replace, l)
		}
	}
	for port, old := range s.listeners {
		if p.keep[port] == nil {
			p.retire = append(p.retire, old)
		}
	}
	return p
}

// bind opens the sockets of the new and replaced listeners of p. On a
// failure it closes what it opened, rebinds what it paused, and returns
// an error naming the port.
func (s *Server) bind(p *plan) error {
	for _, cfg := range p.open {
		l, err := s.newListener(cfg)
		if err != nil {
			s.unbind(p)
			return err
		}
		p.opened[cfg.Port] = l
	}
	for _, cfg := range p.replace {
		old := s.listeners[cfg.Port]
		old.pause()
		p.paused = append(p.paused, old)
		l, err := s.newListener(cfg)
		if err != nil {
			s.unbind(p)
			return err
		}
		p.opened[cfg.Port] = l
	}
	return nil
}

// unbind undoes bind after a failure.
func (s *Server) unbind(p *plan) {
	for _, l := range p.opened {
		l.closeSocket()
		l.cancel()
	}
	for _, l := range p.paused {
		if err := l.resume(); err != nil {
			s.log.Error("cannot rebind a listener after refusing a table", "port", l.port, "error", err)
		}
	}
}

// swap makes t the served table: backends first, then the snapshot
// traffic sees, then the listeners start and retire.
func (s *Server) swap(t ingress.Table, p *plan, certs map[uint16]*tls.Certificate) {
	old := s.cur.Load()
	owners := maps.Clone(p.keep)
	maps.Copy(owners, p.opened)
	infos := backendInfos(t)
	next := s.buildSnapshot(t, owners, s.ensureBackends(infos))
	for port, c := range certs {
		owners[port].cert.Store(c)
	}
	for _, pv := range old.ports {
		pv.owner.last.Store(pv)
	}
	s.cur.Store(next)
	s.syncBackends(infos)
	s.listeners = owners
	s.applied = true
	for _, l := range p.opened {
		l.start()
	}
	for _, l := range p.retire {
		s.retire(l, old.ports[l.port])
	}
	s.metrics.tableSwapped(old.table, t)
	s.log.Info("routing table applied", "version", t.Version, "listeners", len(t.Listeners),
		"opened", len(p.opened), "closed", len(p.retire))
}

// retire shuts a listener that left the table down in the background,
// bounded by its longest route Drain (at most 30s) and by the Server's
// own shutdown.
func (s *Server) retire(l *listener, pv *portView) {
	d := maxShutdown
	if pv != nil {
		d = min(maxRouteDrain(pv.listener), maxShutdown)
	}
	s.bg.Go(func() {
		ctx, cancel := context.WithTimeout(s.base, d)
		defer cancel()
		l.shutdown(ctx)
		s.log.Info("listener closed", "port", l.port)
	})
}

// buildSnapshot builds what traffic sees of t.
func (s *Server) buildSnapshot(t ingress.Table, owners map[uint16]*listener, backends map[string]*backend) *snapshot {
	snap := &snapshot{table: t, ports: map[uint16]*portView{}}
	counters := map[string]*atomic.Uint64{}
	for _, l := range t.Listeners {
		pv := &portView{owner: owners[l.Port], listener: l, routes: map[string]*routeView{}}
		for _, r := range l.Routes {
			ck := fmt.Sprintf("%d %s", l.Port, ruleKey(r))
			c := s.counters[ck]
			if c == nil {
				c = new(atomic.Uint64)
			}
			counters[ck] = c
			rv := &routeView{route: r, key: r.Key(), next: c}
			for _, b := range r.Backends {
				rv.backends = append(rv.backends, backends[b.ID])
			}
			pv.routes[ruleKey(r)] = rv
			if l.Protocol == ingress.ProtoTCP {
				pv.tcp = rv
			}
		}
		snap.ports[l.Port] = pv
	}
	s.counters = counters
	return snap
}

// cloneTable deep-copies t, with empty lists as nil so that equal tables
// compare equal however they were decoded.
func cloneTable(t ingress.Table) ingress.Table {
	out := ingress.Table{Version: t.Version}
	for _, l := range t.Listeners {
		nl := l
		if l.TLS != nil {
			tl := *l.TLS
			nl.TLS = &tl
		}
		nl.Routes = nil
		for _, r := range l.Routes {
			nr := r
			nr.Backends = nil
			if len(r.Backends) > 0 {
				nr.Backends = slices.Clone(r.Backends)
			}
			nl.Routes = append(nl.Routes, nr)
		}
		out.Listeners = append(out.Listeners, nl)
	}
	return out
}

// statePath resolves a path of the table: a relative one is in the state
// directory (where the agent writes certificates for the ingress).
func (s *Server) statePath(p string) string {
	if filepath.IsAbs(p) || s.opts.StateDir == "" {
		return p
	}
	return filepath.Join(s.opts.StateDir, p)
}
