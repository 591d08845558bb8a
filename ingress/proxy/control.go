package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fleetd/fleetd/ingress"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"maps"
	"slices"
)

// maxTableBytes bounds the body of PUT /v1/table.
const maxTableBytes = 16 << 20

// State is what a Server serves now, as GET /v1/state answers it.
type State struct {
	Version  uint64                  `json:"version"`
	Backends map[string]BackendState `json:"backends"` // by backend ID
}

// BackendState is the live state of one backend.
type BackendState struct {
	Route    string `json:"route"` // fleet/service
	Name     string `json:"name"`
	Addr     string `json:"addr"`
	InFlight int64  `json:"in_flight"` // requests and connections open now
	Requests uint64 `json:"requests"`  // HTTP requests answered and TCP connections opened
	Errors   uint64 `json:"errors"`    // connect and upstream errors
	Draining bool   `json:"draining"`
	Healthy  bool   `json:"healthy"` // the last active check passed, or none ran
	Ejected  bool   `json:"ejected"` // out after passive failures, for now
	Removed  bool   `json:"removed"` // left the table; what it serves is finishing
}

// State reports the served table's version and every known backend,
// those still finishing after they left the table included.
func (s *Server) State() State {
	now := s.now()
	st := State{Version: s.cur.Load().table.Version, Backends: map[string]BackendState{}}
	s.bmu.Lock()
	defer s.bmu.Unlock()
	for id, b := range s.backends {
		st.Backends[id] = b.state(now)
	}
	return st
}

// ControlHandler is the API the agent uses: PUT /v1/table applies a JSON
// Table (200; 409 when stale; 400 when invalid or a port cannot be bound;
// the body is the error's text), GET /v1/state answers State as JSON,
// GET /metrics the Server's own Prometheus registry, GET /healthz "ok".
func (s *Server) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/table", s.putTable)
	mux.HandleFunc("GET /v1/state", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.State())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	return mux
}

// putTable applies the table in the request's body.
func (s *Server) putTable(w http.ResponseWriter, r *http.Request) {
	var t ingress.Table
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTableBytes)).Decode(&t); err != nil {
		http.Error(w, fmt.Sprintf("%v: decode: %v", ingress.ErrInvalidTable, err), http.StatusBadRequest)
		return
	}
	err := s.Apply(t)
	if err == nil {
		_, _ = io.WriteString(w, "ok")
		return
	}
	http.Error(w, err.Error(), applyStatus(err))
}

// applyStatus is the HTTP status of an Apply error.
func applyStatus(err error) int {
	switch {
	case errors.Is(err, ErrStale):
		return http.StatusConflict
	case errors.Is(err, ErrBind):
		return http.StatusUnprocessableEntity // the table is good; the host's port is taken
	case errors.Is(err, ingress.ErrInvalidTable):
		return http.StatusBadRequest
	case errors.Is(err, ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Client talks to a Server's control API over its unix socket.
type Client struct {
	Socket string // path of control.sock
}

// Push sends t to the Server. The error wraps ErrStale when the Server
// serves a newer table, ErrBind when a port of t could not be bound,
// ingress.ErrInvalidTable when it refused t.
func (c Client) Push(ctx context.Context, t ingress.Table) error {
	body, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("push table version %d: %w", t.Version, err)
	}
	status, msg, err := c.do(ctx, http.MethodPut, "/v1/table", body)
	if err != nil {
		return fmt.Errorf("push table version %d: %w", t.Version, err)
	}
	switch status {
	case http.StatusOK:
		return nil
	case http.StatusConflict:
		return fmt.Errorf("push table version %d: %w", t.Version, &remoteError{msg: msg, kind: ErrStale})
	case http.StatusBadRequest:
		return fmt.Errorf("push table version %d: %w", t.Version, &remoteError{msg: msg, kind: ingress.ErrInvalidTable})
	case http.StatusUnprocessableEntity:
		return fmt.Errorf("push table version %d: %w", t.Version, &remoteError{msg: msg, kind: ErrBind})
	}
	return fmt.Errorf("push table version %d: ingress answered %d: %s", t.Version, status, msg)
}

// State asks the Server for its State.
func (c Client) State(ctx context.Context) (State, error) {
	var st State
	status, msg, err := c.do(ctx, http.MethodGet, "/v1/state", nil)
	if err != nil {
		return st, fmt.Errorf("ingress state: %w", err)
	}
	if status != http.StatusOK {
		return st, fmt.Errorf("ingress state: ingress answered %d: %s", status, msg)
	}
	if err := json.Unmarshal([]byte(msg), &st); err != nil {
		return st, fmt.Errorf("ingress state: %w", err)
	}
	return st, nil
}

// do sends one request on the socket and reads the answer.
func (c Client) do(ctx context.Context, method, path string, body []byte) (status int, msg string, err error) {
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.Socket)
		},
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, method, "http://fleetd-ingress"+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTableBytes))
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, strings.TrimSpace(string(data)), nil
}

// remoteError is an error the Server answered: its text, and the
// sentinel it stands for.
type remoteError struct {
	msg  string
	kind error
}

// Error returns the Server's text.
func (e *remoteError) Error() string { return e.msg }

// Unwrap returns the sentinel the error stands for.
func (e *remoteError) Unwrap() error { return e.kind }

// Metrics gathers the ingress's own metric families (fleetd_ingress_*)
// from its control socket, for the agent's /metrics to serve along with
// its own.
func (c Client) Metrics(ctx context.Context) ([]*dto.MetricFamily, error) {
	status, msg, err := c.do(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("ingress metrics: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("ingress metrics: %d %s", status, msg)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(msg + "\n"))
	if err != nil {
		return nil, fmt.Errorf("ingress metrics: %w", err)
	}
	var out []*dto.MetricFamily
	for _, name := range slices.Sorted(maps.Keys(fams)) {
		if strings.HasPrefix(name, "fleetd_ingress_") {
			out = append(out, fams[name])
		}
	}
	return out, nil
}
