package proxy

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetd/fleetd/ingress"
)

// maxShutdown caps how long a listener drains when it is shut down.
const maxShutdown = 30 * time.Second

// Options configures a Server.
type Options struct {
	// StateDir holds table.json (the last table applied) and control.sock.
	// Empty means no persistence and no control socket (Serve fails).
	StateDir string
	// Log receives the proxy's logs; nil discards them.
	Log *slog.Logger
	// AccessLog logs one line per HTTP request and per TCP connection.
	AccessLog bool
	// Bind returns the address a listener binds for a port; nil binds
	// every interface (":port").
	Bind func(port uint16) string
	// CheckEvery is the period of the active health checks (default 1s).
	CheckEvery time.Duration
	// EjectAfter is how many consecutive passive failures (connect
	// errors, 502/503/504 answers) eject a backend (default 3).
	EjectAfter int
	// EjectFor is how long an ejected backend gets no new work
	// (default 5s).
	EjectFor time.Duration
}

// withDefaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Bind == nil {
		o.Bind = func(port uint16) string { return fmt.Sprintf(":%d", port) }
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = time.Second
	}
	if o.EjectAfter <= 0 {
		o.EjectAfter = 3
	}
	if o.EjectFor <= 0 {
		o.EjectFor = 5 * time.Second
	}
	return o
}

// ErrClosed is returned by Apply and Serve once the Server is shut down.
var ErrClosed = errors.New("fleetd ingress: server closed")

// Server serves an ingress.Table: its listeners, routes and backends,
// their health, and the control API the agent uses. Its methods are safe
// for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	errLog  *log.Logger      // for net/http's own logs, at debug level
	now     func() time.Time // the clock of eject and drain decisions; tests may replace it
	metrics *metrics

	transport *http.Transport // shared by every proxied HTTP request
	proxy     *httputil.ReverseProxy
	health    *http.Client
	dialer    *net.Dialer

	base context.Context // cancelled when the Server is shut down
	stop context.CancelFunc
	bg   sync.WaitGroup // health checkers and retiring listeners

	cur atomic.Pointer[snapshot] // the table and routes traffic sees

	mu        sync.Mutex // serializes Apply and shutdown
	closed    bool
	applied   bool                 // a table was applied since New
	listeners map[uint16]*listener // the listeners serving cur
	counters  map[string]*atomic.Uint64

	bmu      sync.Mutex // guards backends; taken before a backend's mu
	backends map[string]*backend
}

// New returns a Server configured by opts. If opts.StateDir holds a
// table.json, New applies it, so the ingress serves its last table after
// a restart; a saved table that cannot be applied is logged and the
// Server starts empty, ready for the agent's next table.
func New(opts Options) (*Server, error) {
	opts = opts.withDefaults()
	if opts.StateDir != "" {
		if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("fleetd ingress: state dir: %w", err)
		}
	}
	s := newServer(opts)
	s.restore()
	return s, nil
}

// newServer builds a Server with an empty table.
func newServer(opts Options) *Server {
	s := &Server{
		opts:      opts,
		log:       opts.Log,
		errLog:    slog.NewLogLogger(opts.Log.Handler(), slog.LevelDebug),
		now:       time.Now,
		dialer:    &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second},
		listeners: map[uint16]*listener{},
		counters:  map[string]*atomic.Uint64{},
		backends:  map[string]*backend{},
	}
	s.base, s.stop = context.WithCancel(context.Background())
	s.metrics = newMetrics(s)
	s.transport = newTransport(s.dialer)
	s.health = newHealthClient()
	s.proxy = newReverseProxy(s)
	s.cur.Store(&snapshot{ports: map[uint16]*portView{}})
	return s
}

// restore applies the table saved in the state directory, if any.
func (s *Server) restore() {
	t, found, err := loadTable(s.opts.StateDir)
	if err != nil {
		s.log.Error("ignoring the saved routing table", "error", err)
		return
	}
	if !found {
		return
	}
	if err := s.Apply(t); err != nil {
		s.log.Error("cannot serve the saved routing table", "version", t.Version, "error", err)
		return
	}
	s.log.Info("serving the saved routing table", "version", t.Version)
}

// Table returns a copy of the table the Server serves.
func (s *Server) Table() ingress.Table {
	return cloneTable(s.cur.Load().table)
}

// Serve answers ControlHandler on the unix socket StateDir/control.sock
// until ctx is done, then shuts every listener down gracefully, bounded
// by the longest route Drain (at most 30s), and returns.
func (s *Server) Serve(ctx context.Context) error {
	if s.opts.StateDir == "" {
		return errors.New("fleetd ingress: serve: no state dir for the control socket")
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	path := filepath.Join(s.opts.StateDir, "control.sock")
	ln, err := listenControl(path)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.ControlHandler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: s.errLog}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("control socket ready", "path", path)
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = srv.Shutdown(sctx)
	cancel()
	s.shutdown(min(longestDrain(s.cur.Load().table), maxShutdown))
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("fleetd ingress: control socket: %w", serveErr)
	}
	return nil
}

// listenControl binds the control socket at path, mode 0600, replacing
// a stale socket file but not a live one.
func listenControl(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		_ = c.Close()
		return nil, fmt.Errorf("fleetd ingress: control socket %s: another ingress answers on it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("fleetd ingress: remove stale control socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("fleetd ingress: control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("fleetd ingress: control socket: %w", err)
	}
	return ln, nil
}

// Close shuts the Server down at once: listeners stop, open requests and
// connections are cut, health checks stop. It is for embedders and tests
// that do not run Serve; calling it again does nothing.
func (s *Server) Close() error {
	s.shutdown(0)
	return nil
}

// shutdown stops every listener, each bounded by its longest route Drain
// and by bound, then stops the health checkers, the listeners still
// retiring from earlier tables and the drain timers.
func (s *Server) shutdown(bound time.Duration) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	ls := s.listeners
	s.listeners = map[uint16]*listener{}
	ports := s.cur.Load().ports
	s.mu.Unlock()

	var wg sync.WaitGroup
	for port, l := range ls {
		d := bound
		if pv := ports[port]; pv != nil {
			d = min(maxRouteDrain(pv.listener), bound)
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			l.shutdown(ctx)
		})
	}
	wg.Wait()
	s.stop()
	s.stopDrainTimers()
	s.bg.Wait()
	s.transport.CloseIdleConnections()
	s.health.CloseIdleConnections()
	s.log.Info("ingress stopped")
}

// longestDrain is the longest Drain of any route in t.
func longestDrain(t ingress.Table) time.Duration {
	var d time.Duration
	for _, l := range t.Listeners {
		d = max(d, maxRouteDrain(l))
	}
	return d
}

// maxRouteDrain is the longest Drain of l's routes.
func maxRouteDrain(l ingress.Listener) time.Duration {
	var d time.Duration
	for _, r := range l.Routes {
		d = max(d, r.Drain)
	}
	return d
}
