package server

import (
	"net"
	"strings"
)

// access is who may call an endpoint, once it is reachable on a listener.
type access int

const (
	// open: anyone who reaches the listener (/healthz, /readyz).
	open access = iota
	// read: with Config.ReadToken set, a bearer token that is the read
	// token or the API token; without it, anyone (GET /v1/*, /metrics).
	read
	// syncToken: the API token, checked by the handler (POST /v1/sync).
	syncToken
	// signed: the webhook secret, checked by the handler (/hooks/*).
	signed
)

func (a access) String() string {
	return [...]string{"open", "read", "sync-token", "signed"}[a]
}

// accessOf says who may call the endpoint registered with pattern
// ("METHOD /path"). Every GET under /v1/ is a read, so an endpoint added
// there is guarded without anyone remembering to.
func accessOf(pattern string) access {
	method, path, _ := strings.Cut(pattern, " ")
	switch {
	case strings.HasPrefix(path, "/hooks/"):
		return signed
	case method == "GET" && (path == "/metrics" || strings.HasPrefix(path, "/v1/")):
		return read
	case strings.HasPrefix(path, "/v1/"):
		return syncToken
	default:
		return open
	}
}

// placement says which listeners serve the endpoint registered with
// pattern. With one listener (split false) it serves everything. With a
// webhook listener, /hooks/* move there, and only /healthz joins them (for
// a load balancer's probe: it tells nothing); status, metrics, sync and
// /readyz (whose 503 carries an error text) stay on the API listener.
func placement(pattern string, split bool) (onAPI, onHooks bool) {
	_, path, _ := strings.Cut(pattern, " ")
	switch {
	case !split:
		return true, false
	case strings.HasPrefix(path, "/hooks/"):
		return false, true
	case path == "/healthz":
		return true, true
	default:
		return true, false
	}
}

// readAllowed decides a read request from its Authorization header: every
// request when no read token is configured, else a bearer token equal to
// the read token or to the API token (whoever may sync may read), compared
// in constant time.
func readAllowed(authorization, readToken, apiToken string) bool {
	if readToken == "" {
		return true
	}
	okRead := bearerMatches(authorization, readToken)
	okAPI := apiToken != "" && bearerMatches(authorization, apiToken)
	return okRead || okAPI
}

// Warnings names what in cfg an operator most likely did not mean: status
// and metrics without a token on an address other hosts can reach, a
// webhook listener with no secret (it refuses every delivery). The caller
// logs them at start.
func (c Config) Warnings() []string {
	var warns []string
	addr := c.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	if c.ReadToken == "" && !isLoopback(addr) {
		warns = append(warns, "GET /v1/status and /metrics are served without a token on "+addr+
			": set api.read_token_file, or keep listen on 127.0.0.1 and expose only webhook.listen")
	}
	if c.WebhookAddr != "" && c.WebhookSecret == "" {
		warns = append(warns, "webhook.listen is set but webhook.secret_file is not: every webhook is refused (403)")
	}
	return warns
}

// isLoopback reports whether a listen address accepts loopback
// connections only: 127.0.0.0/8, ::1 or localhost. An empty host (":9750")
// listens on every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
