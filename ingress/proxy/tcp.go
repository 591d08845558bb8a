package proxy

import (
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// serveConn proxies one connection accepted by a tcp listener to a
// backend of its route, until both sides are done, the backend's drain
// ends or the listener is cut.
func (s *Server) serveConn(l *listener, c net.Conn) {
	start := time.Now()
	rv, first, ok := l.choose(func(pv *portView) (*routeView, bool) { return pv.tcp, pv.tcp != nil })
	if !ok {
		_ = c.Close()
		return
	}
	b, up := s.dialTCP(l.ctx, rv, first)
	if up == nil {
		_ = c.Close()
		s.logConn(l, rv, nil, start, 0, 0)
		return
	}
	b.begin()
	defer b.end()
	b.requests.Add(1)
	b.observe(func(route, name string) { s.metrics.conns.WithLabelValues(route, name).Inc() })
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			_ = c.Close()
			_ = up.Close()
		})
	}
	untrack := b.track(closeBoth)
	defer untrack()
	stop := context.AfterFunc(l.ctx, closeBoth)
	defer stop()
	sent, received := pipe(c, up, closeBoth)
	closeBoth()
	s.logConn(l, rv, b, start, sent, received)
}

// dialTCP connects to b, the backend picked first, then to the other
// usable backends of rv while dials fail. It returns a nil conn when
// none answers.
func (s *Server) dialTCP(ctx context.Context, rv *routeView, b *backend) (*backend, net.Conn) {
	if b == nil {
		s.metrics.errors.WithLabelValues(rv.key, "", kindNoBackend).Inc()
		return nil, nil
	}
	tried := map[string]bool{}
	for ; b != nil; b = s.pick(rv, tried) {
		tried[b.id] = true
		info := b.info.Load()
		up, err := s.dialer.DialContext(ctx, "tcp", info.addr)
		if err == nil {
			b.passiveSuccess()
			return b, up
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		s.passiveFailure(b, kindConnect)
		s.log.Warn("backend connect failed", "route", rv.key, "backend", info.name, "detail", errDetail(err))
	}
	return nil, nil
}

// pipe copies client to up and up to client, half-closing each side
// when the other is done sending. It returns the bytes each way.
func pipe(client, up net.Conn, closeBoth func()) (sent, received int64) {
	done := make(chan int64, 1)
	go func() { done <- copyHalf(up, client, closeBoth) }()
	received = copyHalf(client, up, closeBoth)
	sent = <-done
	return sent, received
}

// copyHalf copies src to dst, then closes dst for writing; an error, or
// a dst that cannot half-close, closes both sides.
func copyHalf(dst, src net.Conn, closeBoth func()) int64 {
	n, err := io.Copy(dst, src)
	if err != nil {
		closeBoth()
		return n
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return n
	}
	closeBoth()
	return n
}

// logConn writes the access log line of a tcp connection.
func (s *Server) logConn(l *listener, rv *routeView, b *backend, start time.Time, sent, received int64) {
	if !s.opts.AccessLog {
		return
	}
	name := ""
	if b != nil {
		name = b.info.Load().name
	}
	s.log.Info("tcp connection", "port", l.port, "route", rv.key, "backend", name,
		"duration", time.Since(start), "bytes_sent", sent, "bytes_received", received)
}
