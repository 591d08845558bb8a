// Package ingress holds the decisions of fleetd's ingress, as pure
// functions: the routing table the agent sends to the ingress (Table), its
// validation (Validate), how a table is built from the desired fleets and
// the containers the host runs (Build), and how a request finds its route
// (Match) and its backend (Pick). The data plane that serves a table is
// ingress/proxy; the adapter that runs the ingress container and sends it
// tables is engine/ingress.
package ingress

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Protocols a listener speaks.
const (
	ProtoHTTP = "http" // HTTP/1.1 with keep-alive and WebSocket upgrade; host and path rules
	ProtoTCP  = "tcp"  // bytes both ways; one route per listener
)

// Balancing policies.
const (
	RoundRobin = "round_robin"
	LeastConn  = "least_conn"
)

// Table is the whole routing state of one host's ingress. The agent sends
// it whole; the ingress swaps it in at once or refuses it whole.
type Table struct {
	// Version increases with every table the agent sends; the ingress
	// refuses one older than the one it serves.
	Version   uint64     `json:"version"`
	Listeners []Listener `json:"listeners"` // sorted by Port
}

// Listener is one port the ingress binds (and Docker publishes on the
// host, at HostIP if set).
type Listener struct {
	Port     uint16  `json:"port"`
	HostIP   string  `json:"host_ip,omitempty"`
	Protocol string  `json:"protocol"` // http | tcp
	TLS      *TLS    `json:"tls,omitempty"`
	Routes   []Route `json:"routes"` // http: most specific first (see Sort)
}

// TLS is a listener's certificate, as paths the ingress reads.
type TLS struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// Route is where a listener sends what matches it: one service's
// replicas.
type Route struct {
	Fleet   string `json:"fleet"`
	Service string `json:"service"`
	// Host and PathPrefix select HTTP requests; empty matches any.
	Host       string `json:"host,omitempty"`
	PathPrefix string `json:"path_prefix,omitempty"`
	Balance    string `json:"balance"` // round_robin | least_conn
	// HealthPath, if set, is checked actively on every backend (HTTP GET,
	// 2xx or 3xx is healthy).
	HealthPath string `json:"health_path,omitempty"`
	// Drain bounds how long a draining backend keeps its requests and
	// connections.
	Drain    time.Duration `json:"drain"`
	Backends []Backend     `json:"backends"` // sorted by ID
}

// Backend is one replica.
type Backend struct {
	ID   string `json:"id"`   // the container's ID
	Name string `json:"name"` // the container's name, for logs and metrics
	Addr string `json:"addr"` // ip:port on a network the ingress shares
	// Draining backends get no new requests or connections; the ones
	// they have finish, up to the route's Drain.
	Draining bool `json:"draining,omitempty"`
}

// Key names a route: fleet/service.
func (r Route) Key() string { return r.Fleet + "/" + r.Service }

// ErrInvalidTable wraps every reason Validate refuses a table.
var ErrInvalidTable = errors.New("invalid routing table")

// Validate checks a table whole: every port once, a known protocol, TCP
// listeners with one route and no rules, HTTP rules unique per listener,
// balance policies known, backends with a parseable address and unique
// IDs per route. It is pure.
func Validate(t Table) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidTable}, args...)...))
	}
	ports := map[uint16]bool{}
	for _, l := range t.Listeners {
		if l.Port == 0 {
			bad("listener without a port")
		}
		if ports[l.Port] {
			bad("port %d: listed twice", l.Port)
		}
		ports[l.Port] = true
		if l.HostIP != "" {
			if _, err := netip.ParseAddr(l.HostIP); err != nil {
				bad("port %d: host_ip %q: not an IP address", l.Port, l.HostIP)
			}
		}
		switch l.Protocol {
		case ProtoHTTP:
		case ProtoTCP:
			if len(l.Routes) != 1 {
				bad("port %d: a tcp listener has exactly one route, not %d", l.Port, len(l.Routes))
			}
			if l.TLS != nil {
				bad("port %d: tls is for http listeners", l.Port)
			}
		default:
			bad("port %d: protocol %q: want http or tcp", l.Port, l.Protocol)
		}
		if l.TLS != nil && (l.TLS.CertFile == "" || l.TLS.KeyFile == "") {
			bad("port %d: tls needs cert_file and key_file", l.Port)
		}
		rules := map[string]string{}
		for _, r := range l.Routes {
			if l.Protocol == ProtoTCP && (r.Host != "" || r.PathPrefix != "") {
				bad("port %d: route %s: host and path rules need http", l.Port, r.Key())
			}
			if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
				bad("port %d: route %s: path %q must start with /", l.Port, r.Key(), r.PathPrefix)
			}
			if r.Fleet == "" || r.Service == "" {
				bad("port %d: a route without its fleet and service", l.Port)
			}
			if r.Drain < 0 {
				bad("port %d: route %s: negative drain %s", l.Port, r.Key(), r.Drain)
			}
			// As Match sees it: hosts without case, paths without a
			// trailing slash.
			rule := strings.ToLower(r.Host) + " " + strings.TrimSuffix(r.PathPrefix, "/")
			if other, ok := rules[rule]; ok {
				bad("port %d: %s and %s both route %s", l.Port, other, r.Key(), describeRule(r))
			}
			rules[rule] = r.Key()
			switch r.Balance {
			case RoundRobin, LeastConn:
			default:
				bad("port %d: route %s: balance %q: want round_robin or least_conn", l.Port, r.Key(), r.Balance)
			}
			ids := map[string]bool{}
			for _, b := range r.Backends {
				if _, err := netip.ParseAddrPort(b.Addr); err != nil {
					bad("port %d: route %s: backend %s: address %q: %v", l.Port, r.Key(), b.Name, b.Addr, err)
				}
				if b.ID == "" {
					bad("port %d: route %s: backend %s without an ID", l.Port, r.Key(), b.Addr)
				}
				if ids[b.ID] {
					bad("port %d: route %s: backend %s listed twice", l.Port, r.Key(), b.ID)
				}
				ids[b.ID] = true
			}
		}
	}
	return errors.Join(errs...)
}

func describeRule(r Route) string {
	if r.Host == "" && r.PathPrefix == "" {
		return "every request (no host or path rule)"
	}
	return fmt.Sprintf("host %q path %q", r.Host, cmp.Or(r.PathPrefix, "/"))
}

// Sort puts a table in its canonical order: listeners by port, HTTP
// routes most specific first (a host before none, a longer path before a
// shorter), backends by ID. Two tables that route alike are then equal.
func Sort(t *Table) {
	slices.SortFunc(t.Listeners, func(a, b Listener) int { return cmp.Compare(a.Port, b.Port) })
	for i := range t.Listeners {
		slices.SortFunc(t.Listeners[i].Routes, func(a, b Route) int {
			if (a.Host == "") != (b.Host == "") {
				if a.Host != "" {
					return -1
				}
				return 1
			}
			if c := cmp.Compare(len(b.PathPrefix), len(a.PathPrefix)); c != 0 {
				return c
			}
			return cmp.Or(strings.Compare(a.Host, b.Host), strings.Compare(a.PathPrefix, b.PathPrefix), strings.Compare(a.Key(), b.Key()))
		})
		for j := range t.Listeners[i].Routes {
			slices.SortFunc(t.Listeners[i].Routes[j].Backends, func(a, b Backend) int { return strings.Compare(a.ID, b.ID) })
		}
	}
}

// Match finds the route of an HTTP request on a listener whose routes are
// sorted (Sort): the first whose host equals the request's (without port,
// case-insensitive; empty matches any) and whose path prefix starts the
// path on a segment boundary. ok is false when none does. It is pure.
func Match(l Listener, host, path string) (r Route, ok bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	for _, r := range l.Routes {
		if r.Host != "" && !strings.EqualFold(r.Host, host) {
			continue
		}
		if p := strings.TrimSuffix(r.PathPrefix, "/"); p != "" && path != p && !strings.HasPrefix(path, p+"/") {
			continue
		}
		return r, true
	}
	return Route{}, false
}

// Candidate is a backend as the proxy sees it at a pick: whether it may
// take new work and how much it has.
type Candidate struct {
	Usable   bool // not draining, not found unhealthy, not ejected
	InFlight int  // requests or connections it serves now
}

// Pick chooses a backend among cands for the next request: round robin
// from next (the route's counter), or the one with the fewest in flight
// (ties to the lowest index after next, so equal backends take turns).
// It returns -1 when none is usable. It is pure.
func Pick(cands []Candidate, balance string, next uint64) int {
	n := len(cands)
	best := -1
	for k := range n {
		i := int((next + uint64(k)) % uint64(n))
		if !cands[i].Usable {
			continue
		}
		if balance != LeastConn {
			return i
		}
		if best < 0 || cands[i].InFlight < cands[best].InFlight {
			best = i
		}
	}
	return best
}
