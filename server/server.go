package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	// endpoint (403).
	APIToken string
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
	// Logger receives one line per failed request and per accepted trigger;
	// nil discards.
	Logger *slog.Logger
}

// Server serves fleetd's HTTP API.
type Server struct {
	cfg     Config
	metrics *Metrics
	log     *slog.Logger
	trigger *trigger
	handler http.Handler
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
	s := &Server{cfg: cfg, metrics: metrics, log: log, trigger: newTrigger(cfg.Sync)}
	s.handler = s.routes()
	return s
}

// Handler returns the API's handler, for tests or another server.
func (s *Server) Handler() http.Handler { return s.handler }

// ListenAndServe listens on cfg.Addr and serves until ctx ends, then shuts
// down gracefully within ShutdownTimeout.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down gracefully within
// ShutdownTimeout: no new connections, running requests finish, a running
// Sync call is waited for. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	return s.shutdown(srv, served)
}

// shutdown stops srv within ShutdownTimeout.
func (s *Server) shutdown(srv *http.Server, served <-chan error) error {
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
		err = fmt.Errorf("shutdown: %w", err)
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("serve: %w", serr)
	}
	if !s.trigger.wait(sctx) && err == nil {
		err = errors.New("shutdown: sync still running")
	}
	return err
}

// routes registers every endpoint. Methods are part of the patterns, so a
// wrong method gets 405 from the mux.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", s.handle(s.healthz))
	mux.Handle("GET /readyz", s.handle(s.readyz))
	mux.Handle("GET /metrics", s.metrics.handler(s.log))
	mux.Handle("GET /v1/status", s.handle(s.status))
	mux.Handle("POST /v1/sync", s.handle(s.sync))
	for _, p := range providers {
		mux.Handle("POST /hooks/"+p.name, s.handle(s.hook(p)))
	}
	return mux
}
