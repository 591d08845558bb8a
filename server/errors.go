package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
)

// httpError is an error with the status code and message a client sees.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// errorf returns an error that maps to status with msg as the body.
func errorf(status int, msg string) error { return &httpError{status: status, msg: msg} }

// handlerFunc is an HTTP handler that returns its failure instead of
// writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// errorStatus is the one place that maps an error to a status and the
// message a client sees. Unknown errors are 500s and their text is not
// shown.
func errorStatus(err error) (int, string) {
	var he *httpError
	if errors.As(err, &he) {
		return he.status, he.msg
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, "request body too large"
	}
	return http.StatusInternalServerError, "internal error"
}

// handle adapts h to an http.Handler, mapping its error to a response.
func (s *Server) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.serveError(w, r, err)
		}
	})
}

// serveError writes err as {"error": msg} and logs it, once.
func (s *Server) serveError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := errorStatus(err)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.log.Log(r.Context(), level, "http request failed",
		"method", r.Method, "path", r.URL.Path, "status", status, "remote", r.RemoteAddr, "err", err)
	_ = writeJSON(w, status, map[string]string{"error": msg})
}

// writeJSON writes v as JSON with status. It encodes before writing
// anything, so a value that cannot be encoded is an error the caller can
// still answer with a 500.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // a failed write: the client went away
	return nil
}
