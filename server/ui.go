package server

import "net/http"

// uiPrefix is where Config.UI is mounted.
const uiPrefix = "/ui/"

// uiRoutes adds the dashboard to the endpoints: GET and POST under /ui/.
// accessOf leaves them open, for the dashboard has a login of its own (a
// session cookie from the same tokens, and a CSRF token on its actions):
// a browser sends no bearer token. placement keeps them on the API
// listener: the webhook listener, the one exposed, never serves it.
func (s *Server) uiRoutes(endpoints map[string]http.Handler) {
	if s.cfg.UI == nil {
		return
	}
	endpoints["GET "+uiPrefix] = s.cfg.UI
	endpoints["POST "+uiPrefix] = http.MaxBytesHandler(s.cfg.UI, MaxBodyBytes)
}

// closeUI ends the dashboard's open streams (Server-Sent Events never go
// idle, so a graceful shutdown would wait for them until its timeout),
// when the dashboard can.
func (s *Server) closeUI() {
	if c, ok := s.cfg.UI.(interface{ Close() }); ok {
		c.Close()
	}
}
