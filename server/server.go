package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultAddr is where the API listens unless told otherwise: loopback
// only, since /v1/status names fleets and revisions.
const DefaultAddr = "127.0.0.1:9750"

// MaxBodyBytes is the largest request body accepted; larger ones get 413.
const MaxBodyBytes = 1 << 20

// ShutdownTimeout bounds a graceful shutdown: requests still running after
// it are cut off.
const ShutdownTimeout = 5 * time.Second

// readyTimeout bounds one Ready call, so a hung engine does not hang probes.
const readyTimeout = 3 * time.Second

// Config is what the caller supplies. Funcs left nil disable their feature
// in the way each field says.
type Config struct {
	// Addr is the listen address; "" means DefaultAddr.
	Addr string
	// APIToken is the bearer token for POST /v1/sync; "" disables the
	// endpoint (403). It is accepted for reads too.
	APIToken string
	// ReadToken is the bearer token for GET /v1/* and /metrics; "" leaves
	// them open to whoever reaches Addr (loopback by default).
	ReadToken string
	// WebhookAddr, when set, is a second listener serving /hooks/* and
	// /healthz only; Addr then serves no /hooks/*. "" serves webhooks on
	// Addr.
	WebhookAddr string
	// WebhookSecret is the shared secret of /hooks/*; "" disables them (403).
	WebhookSecret string
	// Branch is the branch fleetd follows ("main" or "refs/heads/main").
	// Pushes to other refs are acknowledged (202) and ignored. "" accepts a
	// push to any ref (for a source that follows a tag or a commit).
	Branch string
	// Ready returns nil when fleetd is ready (the source synced once and
	// the engine is reachable: the caller decides). nil means always ready.
	Ready func(context.Context) error
	// Status returns the document served as JSON by GET /v1/status.
	Status func() any
	// Sync asks for a reconcile; reason says why. It is called from a
	// background goroutine, one call at a time, never from a request, but it
	// should return quickly: triggers that arrive meanwhile are coalesced
	// into one more call. nil disables /v1/sync and webhooks' effect (they
	// are still verified and answered).
	Sync func(reason string)
	// UI is the web dashboard, served at /ui/ on the API listener (never
	// the webhook listener); it checks its own logins (see server/ui.go).
	// nil serves no dashboard.
	UI http.Handler
	// Logger receives one line per failed request and per accepted trigger;
	// nil discards.
	Logger *slog.Logger
	// Now is the clock of the webhook replay cache; nil means time.Now.
	Now func() time.Time
}

// Server serves fleetd's HTTP API.
type Server struct {
	cfg     Config
	metrics *Metrics
	log     *slog.Logger
	trigger *trigger
	handler http.Handler // the API listener's
	hooks   http.Handler // the webhook listener's; nil without WebhookAddr

	replayMu sync.Mutex
	replay   *replayCache
}

// New returns a server for cfg. metrics may be nil; the server then keeps a
// registry of its own.
func New(cfg Config, metrics *Metrics) *Server {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if metrics == nil {
		metrics = NewMetrics()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, metrics: metrics, log: log, trigger: newTrigger(cfg.Sync),
		replay: newReplayCache(ReplayTTL, ReplayMaxEntries)}
	s.handler, s.hooks = s.routes()
	return s
}

// Handler returns the API listener's handler, for tests or another server.
func (s *Server) Handler() http.Handler { return s.handler }

// WebhookHandler returns the webhook listener's handler, nil when
// cfg.WebhookAddr is not set (the API listener serves webhooks then).
func (s *Server) WebhookHandler() http.Handler { return s.hooks }

// ListenAndServe listens on cfg.Addr, and on cfg.WebhookAddr when set, and
// serves until ctx ends, then shuts down gracefully within
// ShutdownTimeout.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if s.cfg.WebhookAddr == "" {
		return s.Serve(ctx, ln)
	}
	hookLn, err := net.Listen("tcp", s.cfg.WebhookAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("listen (webhooks): %w", err)
	}
	return s.ServeListeners(ctx, ln, hookLn)
}

// Serve serves the API on ln until ctx ends, then shuts down gracefully
// within ShutdownTimeout: no new connections, running requests finish, a
// running Sync call is waited for. It returns nil after a clean shutdown.
// With cfg.WebhookAddr set, use ServeListeners.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.ServeListeners(ctx, ln, nil)
}

// ServeListeners is Serve with the webhook listener too: hookLn must be
// non-nil exactly when cfg.WebhookAddr is set. When one listener fails,
// both are shut down.
func (s *Server) ServeListeners(ctx context.Context, ln, hookLn net.Listener) error {
	if (hookLn != nil) != (s.hooks != nil) {
		closeAll(ln, hookLn)
		return errors.New("serve: a webhook listener is needed exactly when WebhookAddr is set")
	}
	srvs := []*http.Server{s.httpServer(s.handler)}
	lns := []net.Listener{ln}
	if hookLn != nil {
		srvs, lns = append(srvs, s.httpServer(s.hooks)), append(lns, hookLn)
	}
	served := make(chan error, len(srvs))
	for i, srv := range srvs {
		go func() { served <- srv.Serve(lns[i]) }()
	}
	var err error
	running := len(srvs)
	select {
	case serr := <-served:
		err, running = fmt.Errorf("serve: %w", serr), running-1
	case <-ctx.Done():
	}
	if serr := s.shutdown(srvs, served, running); err == nil {
		err = serr
	}
	return err
}

func closeAll(lns ...net.Listener) {
	for _, ln := range lns {
		if ln != nil {
			ln.Close()
		}
	}
}

// httpServer serves h with fleetd's timeouts.
func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// shutdown stops srvs within ShutdownTimeout; running of them have yet to
// report on served.
func (s *Server) shutdown(srvs []*http.Server, served <-chan error, running int) error {
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	s.closeUI()
	var err error
	for _, srv := range srvs {
		if serr := srv.Shutdown(sctx); serr != nil {
			_ = srv.Close()
			if err == nil {
				err = fmt.Errorf("shutdown: %w", serr)
			}
		}
	}
	for range running {
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = fmt.Errorf("serve: %w", serr)
		}
	}
	if !s.trigger.wait(sctx) && err == nil {
		err = errors.New("shutdown: sync still running")
	}
	return err
}

// routes registers every endpoint on the listeners placement puts it on,
// guarding reads as accessOf says; it returns the webhook listener's
// handler only when cfg.WebhookAddr is set. Methods are part of the
// patterns, so a wrong method gets 405 from the mux.
func (s *Server) routes() (api, hooks http.Handler) {
	endpoints := map[string]http.Handler{
		"GET /healthz":   s.handle(s.healthz),
		"GET /readyz":    s.handle(s.readyz),
		"GET /metrics":   s.metrics.handler(s.log),
		"GET /v1/status": s.handle(s.status),
		"POST /v1/sync":  s.handle(s.sync),
	}
	for _, p := range providers {
		endpoints["POST /hooks/"+p.name] = s.handle(s.hook(p))
	}
	s.uiRoutes(endpoints)
	split := s.cfg.WebhookAddr != ""
	apiMux, hookMux := http.NewServeMux(), http.NewServeMux()
	for pattern, h := range endpoints {
		if accessOf(pattern) == read {
			h = s.guardRead(h)
		}
		onAPI, onHooks := placement(pattern, split)
		if onAPI {
			apiMux.Handle(pattern, h)
		}
		if onHooks {
			hookMux.Handle(pattern, h)
		}
	}
	if !split {
		return apiMux, nil
	}
	return apiMux, hookMux
}

// guardRead lets a read through when readAllowed says so, else answers 401.
func (s *Server) guardRead(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if readAllowed(r.Header.Get("Authorization"), s.cfg.ReadToken, s.cfg.APIToken) {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="fleetd"`)
		s.serveError(w, r, errorf(http.StatusUnauthorized, "missing or wrong bearer token"))
	})
}
