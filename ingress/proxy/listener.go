package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetd/fleetd/ingress"
)

// listener is one bound port: an http.Server for http listeners, an
// accept loop for tcp ones. It serves the routes of the current snapshot
// while it owns its port there, and its last ones while it retires.
type listener struct {
	s    *Server
	port uint16
	kind string // protocol and TLS; a change needs a new listener

	cert atomic.Pointer[tls.Certificate] // for TLS listeners
	last atomic.Pointer[portView]        // the routes it had when it left the table

	ctx    context.Context // cancelled to cut every request and connection
	cancel context.CancelFunc
	active *gate        // requests and connections in progress
	http   *http.Server // nil for tcp listeners

	mu     sync.Mutex
	ln     net.Listener  // the bound socket
	served chan struct{} // closed when the serving goroutine returns
}

// kindOf names what a listener must be to serve l.
func kindOf(l ingress.Listener) string {
	if l.TLS != nil {
		return l.Protocol + "+tls"
	}
	return l.Protocol
}

// newListener binds cfg's port; the listener serves once started.
func (s *Server) newListener(cfg ingress.Listener) (*listener, error) {
	ln, err := net.Listen("tcp", s.opts.Bind(cfg.Port))
	if err != nil {
		return nil, fmt.Errorf("%w: %w: port %d: %w", ingress.ErrInvalidTable, ErrBind, cfg.Port, err)
	}
	l := &listener{s: s, port: cfg.Port, kind: kindOf(cfg), active: newGate(), ln: ln}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	if cfg.Protocol == ingress.ProtoHTTP {
		l.http = &http.Server{
			Handler:           l,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       90 * time.Second,
			ErrorLog:          s.errLog,
			BaseContext:       func(net.Listener) context.Context { return l.ctx },
		}
	}
	return l, nil
}

// viewOf returns the routes l serves in snap: its port's, if l owns it
// there, else the ones it had when it left the table.
func (l *listener) viewOf(snap *snapshot) *portView {
	if pv := snap.ports[l.port]; pv != nil && pv.owner == l {
		return pv
	}
	return l.last.Load()
}

// choose finds the route of a request or connection on l with match,
// and picks a backend of it (nil when none is usable). When a table was
// swapped in meanwhile and no backend is usable, it looks again at the
// new one, so a swap never leaves traffic without a backend.
func (l *listener) choose(match func(*portView) (*routeView, bool)) (rv *routeView, b *backend, found bool) {
	for range 2 {
		snap := l.s.cur.Load()
		pv := l.viewOf(snap)
		if pv == nil {
			return nil, nil, false
		}
		if rv, found = match(pv); !found {
			return nil, nil, false
		}
		if b = l.s.pick(rv, nil); b != nil || l.s.cur.Load() == snap {
			return rv, b, true
		}
	}
	return rv, b, found
}

// start serves l's socket in the background.
func (l *listener) start() {
	served := make(chan struct{})
	l.mu.Lock()
	ln := l.ln
	l.served = served
	l.mu.Unlock()
	if l.kind == ingress.ProtoHTTP+"+tls" {
		ln = tls.NewListener(ln, l.tlsConfig())
	}
	go func() {
		defer close(served)
		if l.http != nil {
			err := l.http.Serve(ln)
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				l.s.log.Error("listener stopped", "port", l.port, "error", err)
			}
			return
		}
		l.serveTCP(ln)
	}()
}

// tlsConfig serves the certificate of the current table.
func (l *listener) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := l.cert.Load(); c != nil {
				return c, nil
			}
			return nil, errors.New("no certificate")
		},
	}
}

// closeSocket stops accepting; what was accepted goes on.
func (l *listener) closeSocket() {
	l.mu.Lock()
	ln := l.ln
	l.mu.Unlock()
	_ = ln.Close()
}

// waitServed waits for the serving goroutine, if l was started.
func (l *listener) waitServed() {
	l.mu.Lock()
	served := l.served
	l.mu.Unlock()
	if served != nil {
		<-served
	}
}

// pause releases l's port so another listener can bind it; resume binds
// it again if that fails.
func (l *listener) pause() {
	l.closeSocket()
	l.waitServed()
}

// resume binds l's port again and serves it, after pause.
func (l *listener) resume() error {
	ln, err := net.Listen("tcp", l.s.opts.Bind(l.port))
	if err != nil {
		return fmt.Errorf("port %d: %w", l.port, err)
	}
	l.mu.Lock()
	l.ln = ln
	l.mu.Unlock()
	l.start()
	return nil
}

// shutdown stops accepting, lets requests and connections finish until
// ctx is done, then cuts the rest and waits for them to unwind.
func (l *listener) shutdown(ctx context.Context) {
	if l.http != nil {
		_ = l.http.Shutdown(ctx) // also waits for plain requests
	} else {
		l.closeSocket()
	}
	l.active.wait(ctx) // upgraded connections and tcp connections
	l.cancel()
	if l.http != nil {
		_ = l.http.Close()
	}
	l.active.wait(context.Background())
	l.waitServed()
}

// serveTCP accepts connections until ln is closed.
func (l *listener) serveTCP(ln net.Listener) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.s.log.Warn("accept failed", "port", l.port, "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		l.active.enter()
		go func() {
			defer l.active.leave()
			l.s.serveConn(l, c)
		}()
	}
}

// gate counts work in progress and lets a caller wait until there is
// none.
type gate struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n is 0
}

// newGate returns an idle gate.
func newGate() *gate {
	idle := make(chan struct{})
	close(idle)
	return &gate{idle: idle}
}

// enter counts one more piece of work.
func (g *gate) enter() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == 0 {
		g.idle = make(chan struct{})
	}
	g.n++
}

// leave counts one piece of work less.
func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.n == 0 {
		close(g.idle)
	}
}

// wait returns true when no work is in progress, false if ctx ends
// first.
func (g *gate) wait(ctx context.Context) bool {
	g.mu.Lock()
	idle := g.idle
	g.mu.Unlock()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		return false
	}
}
