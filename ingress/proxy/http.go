package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"
)

// exchangeKey finds a request's exchange in its context.
type exchangeKey struct{}

// exchange is one proxied HTTP request: its route, the backend serving
// it (counted in flight and tracked for its drain), the backends tried.
// Only the request's handler goroutine touches it.
type exchange struct {
	start   time.Time
	rv      *routeView
	cur     *backend
	tried   map[string]bool
	cancel  context.CancelFunc // cuts the request when cur's drain ends
	untrack func()
	status  int // the backend's answer, seen by ModifyResponse
}

// exchangeOf returns the exchange of a proxied request's context.
func exchangeOf(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// use makes b the backend of ex, moving the in-flight count to it.
func (ex *exchange) use(b *backend) {
	ex.release()
	ex.cur = b
	ex.tried[b.id] = true
	b.begin()
	ex.untrack = b.track(ex.cancel)
}

// release uncounts ex from its backend; it does nothing twice.
func (ex *exchange) release() {
	if ex.untrack == nil {
		return
	}
	ex.untrack()
	ex.untrack = nil
	ex.cur.end()
}

// target is req sent to ex's current backend, with its body lent to
// this attempt.
func (ex *exchange) target(req *http.Request) (*http.Request, *lentBody) {
	out := new(http.Request)
	*out = *req
	u := *req.URL
	u.Host = ex.cur.info.Load().addr
	out.URL = &u
	if !hasBody(req) {
		return out, nil
	}
	lent := &lentBody{body: req.Body}
	out.Body = lent
	return out, lent
}

// lentBody lends a request's body to one attempt. The transport closes
// it when the attempt ends, which leaves the body open, so that after a
// failed dial (nothing read) another attempt can send it whole. The
// proxy closes the body itself when the request is done.
type lentBody struct {
	body io.ReadCloser
	read atomic.Bool
}

// Read reads the body, noting that the attempt consumed some of it.
func (b *lentBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.body.Read(p)
}

// Close ends the loan; the body stays open.
func (b *lentBody) Close() error { return nil }

// untouched reports whether an attempt with body b sent none of it.
func untouched(b *lentBody) bool { return b == nil || !b.read.Load() }

// dialError marks a failure to connect to a backend: nothing was sent.
type dialError struct{ err error }

// Error returns the dial's error text.
func (e *dialError) Error() string { return e.err.Error() }

// Unwrap returns the dial's error.
func (e *dialError) Unwrap() error { return e.err }

// newTransport returns the transport every proxied request shares.
func newTransport(d *net.Dialer) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, &dialError{err: err}
			}
			return c, nil
		},
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       60 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// newReverseProxy returns the proxy of every HTTP listener; the request's
// exchange says where it goes.
func newReverseProxy(s *Server) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			ex := exchangeOf(pr.In.Context())
			pr.SetURL(&url.URL{Scheme: "http", Host: ex.cur.info.Load().addr})
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:      &retryTransport{s: s, base: s.transport},
		ModifyResponse: s.observeResponse,
		ErrorHandler:   s.proxyError,
		ErrorLog:       s.errLog,
	}
}

// ServeHTTP routes a request on l to a backend of its route.
func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.active.enter()
	defer l.active.leave()
	s := l.s
	rec := &recorder{ResponseWriter: w}
	ex := &exchange{start: time.Now(), tried: map[string]bool{}}
	defer s.finishHTTP(rec, r, ex)
	rv, b, ok := l.choose(func(pv *portView) (*routeView, bool) { return pv.match(r.Host, r.URL.Path) })
	if !ok {
		http.Error(rec, fmt.Sprintf("fleetd ingress: no route for host %s path %s", r.Host, r.URL.Path), http.StatusNotFound)
		return
	}
	ex.rv = rv
	if b == nil {
		s.metrics.errors.WithLabelValues(ex.rv.key, "", kindNoBackend).Inc()
		http.Error(rec, "fleetd ingress: no healthy backend for "+ex.rv.key, http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ex.cancel = cancel
	ex.use(b)
	defer ex.release()
	s.proxy.ServeHTTP(rec, r.WithContext(context.WithValue(ctx, exchangeKey{}, ex)))
}

// finishHTTP counts and logs a finished request.
func (s *Server) finishHTTP(rec *recorder, r *http.Request, ex *exchange) {
	status := cmp.Or(rec.status, ex.status, http.StatusOK)
	d := time.Since(ex.start)
	route, name := "", ""
	if ex.rv != nil {
		route = ex.rv.key
	}
	switch {
	case ex.cur != nil:
		name = ex.cur.info.Load().name
		s.countRequest(ex.cur, status, d)
	case ex.rv != nil:
		s.metrics.requests.WithLabelValues(route, "", codeClass(status)).Inc()
	}
	if s.opts.AccessLog {
		s.log.Info("http request", "method", r.Method, "host", r.Host, "path", r.URL.Path,
			"status", status, "duration", d, "route", route, "backend", name)
	}
}

// countRequest counts a finished request or connection of b.
func (s *Server) countRequest(b *backend, status int, d time.Duration) {
	b.requests.Add(1)
	b.observe(func(route, name string) {
		s.metrics.requests.WithLabelValues(route, name, codeClass(status)).Inc()
		s.metrics.duration.WithLabelValues(route, name).Observe(d.Seconds())
	})
}

// codeClass is the code label of a status: "1xx" to "5xx". It is pure.
func codeClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return fmt.Sprintf("%dxx", status/100)
}

// retryTransport sends a request to its exchange's backend and, when
// the dial fails and the request may be sent again, to another one.
type retryTransport struct {
	s    *Server
	base http.RoundTripper
}

// RoundTrip sends req, retrying on other backends after a failed dial.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ex := exchangeOf(req.Context())
	if ex == nil {
		return nil, errors.New("fleetd ingress: request without a backend")
	}
	for {
		out, body := ex.target(req)
		resp, err := t.base.RoundTrip(out)
		if err == nil {
			return resp, nil
		}
		if !t.s.backendFailed(ex, req, err) || !retryable(req.Method, hasBody(req)) || !untouched(body) {
			return nil, err
		}
		next := t.s.pick(ex.rv, ex.tried)
		if next == nil {
			return nil, err
		}
		t.s.log.Debug("retrying on another backend", "route", ex.rv.key,
			"failed", ex.cur.info.Load().name, "next", next.info.Load().name)
		ex.use(next)
	}
}

// backendFailed counts a transport error of ex's backend. It reports
// whether the dial failed (so nothing was sent) while the request was
// still wanted.
func (s *Server) backendFailed(ex *exchange, req *http.Request, err error) (dialFailed bool) {
	if req.Context().Err() != nil {
		return false
	}
	var de *dialError
	if errors.As(err, &de) {
		s.passiveFailure(ex.cur, kindConnect)
		return true
	}
	s.countError(ex.cur, kindUpstream)
	return false
}

// hasBody reports whether an outgoing request carries a body.
func hasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody
}

// retryable decides whether a request whose dial failed may go to
// another backend: idempotent methods, and anything without a body. It
// is pure.
func retryable(method string, body bool) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return !body
}

// answerVerdict decides what a backend's answer says of its health:
// 502, 503 and 504 are passive failures, anything below 500 a success.
// It is pure.
func answerVerdict(status int) (failure, success bool) {
	switch status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true, false
	}
	return false, status < 500
}

// observeResponse records a backend's answer; it passes it on as is.
func (s *Server) observeResponse(resp *http.Response) error {
	ex := exchangeOf(resp.Request.Context())
	if ex == nil {
		return nil
	}
	ex.status = resp.StatusCode
	switch failure, success := answerVerdict(resp.StatusCode); {
	case failure:
		s.passiveFailure(ex.cur, kindUpstream)
	case success:
		ex.cur.passiveSuccess()
	}
	return nil
}

// proxyError answers 502 when no backend could answer.
func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	name := "unknown"
	reason := shortReason(err)
	if ex := exchangeOf(r.Context()); ex != nil && ex.cur != nil {
		name = ex.cur.info.Load().name
		if r.Context().Err() == nil {
			s.log.Warn("backend request failed", "route", ex.rv.key, "backend", name, "reason", reason, "detail", errDetail(err))
		}
	}
	http.Error(w, fmt.Sprintf("fleetd ingress: backend %s: %s", name, reason), http.StatusBadGateway)
}

// errDetail is the text of a network error, safe to log (no header
// values, no query strings); other errors are summed up.
func errDetail(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	return shortReason(err)
}

// recorder remembers the status a handler wrote.
type recorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the first final status and writes it.
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 and writes p.
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (flush,
// hijack for upgrades).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
