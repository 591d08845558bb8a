package server

import (
	"context"
	"io"
	"net/http"
	"strings"
)

// healthz answers while the process serves HTTP.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) error {
	return writeText(w, http.StatusOK, "ok")
}

// readyz asks the caller's Ready, bounded by readyTimeout.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			return errorf(http.StatusServiceUnavailable, "not ready: "+err.Error())
		}
	}
	return writeText(w, http.StatusOK, "ready")
}

// status serves the caller's status document.
func (s *Server) status(w http.ResponseWriter, _ *http.Request) error {
	if s.cfg.Status == nil {
		return errorf(http.StatusServiceUnavailable, "status is not available")
	}
	return writeJSON(w, http.StatusOK, s.cfg.Status())
}

// sync is the manual trigger, POST /v1/sync with the API bearer token.
func (s *Server) sync(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.APIToken == "" {
		return errorf(http.StatusForbidden, "sync is disabled: no API token is configured (api.token_file)")
	}
	if !bearerMatches(r.Header.Get("Authorization"), s.cfg.APIToken) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fleetd"`)
		return errorf(http.StatusUnauthorized, "missing or wrong bearer token")
	}
	coalesced := s.trigger.fire("manual sync (api)")
	s.log.Info("sync requested", "remote", r.RemoteAddr, "coalesced", coalesced)
	return writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted"})
}

// bearerMatches reports whether an Authorization header carries token, in
// constant time. The scheme is case-insensitive (RFC 9110).
func bearerMatches(header, token string) bool {
	scheme, got, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return equalSecret([]byte(token), []byte(strings.TrimSpace(got)))
}

// writeText writes a one-line plain-text body.
func writeText(w http.ResponseWriter, status int, text string) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text+"\n") // a failed write: the client went away
	return nil
}
