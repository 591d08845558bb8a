package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fleetd/fleetd/ingress"
)

// metrics holds the Server's collectors, in its own registry. Series are
// labelled by route (fleet/service) and backend (container name); the
// backend label is empty for what happens before a backend is chosen.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec   // route, backend, code
	errors   *prometheus.CounterVec   // route, backend, kind
	duration *prometheus.HistogramVec // route, backend
	conns    *prometheus.CounterVec   // route, backend
	version  prometheus.Gauge
}

// newMetrics registers the Server's collectors, the gauges read from
// its backends at scrape time, and the Go and process collectors.
func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fleetd_ingress_requests_total", Help: "HTTP requests answered, by route, backend and status class.",
	}, []string{"route", "backend", "code"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fleetd_ingress_errors_total",
		Help: "Backend errors by kind: connect (dial failed), upstream (failed after connecting, or answered 502/503/504), no_backend (no usable backend).",
	}, []string{"route", "backend", "kind"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "fleetd_ingress_request_duration_seconds", Help: "Time to answer an HTTP request, upgraded connections included.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "backend"})
	m.conns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fleetd_ingress_connections_total", Help: "TCP connections proxied to a backend.",
	}, []string{"route", "backend"})
	m.version = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "fleetd_ingress_table_version", Help: "Version of the routing table served.",
	})
	m.reg.MustRegister(m.requests, m.errors, m.duration, m.conns, m.version,
		&backendCollector{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// forgetBackend deletes the series of a backend.
func (m *metrics) forgetBackend(route, name string) {
	labels := prometheus.Labels{"route": route, "backend": name}
	m.requests.DeletePartialMatch(labels)
	m.errors.DeletePartialMatch(labels)
	m.duration.DeletePartialMatch(labels)
	m.conns.DeletePartialMatch(labels)
}

// tableSwapped sets the version gauge and deletes the route-level series
// of routes that left the table.
func (m *metrics) tableSwapped(old, next ingress.Table) {
	m.version.Set(float64(next.Version))
	keep := routeKeys(next)
	for key := range routeKeys(old) {
		if !keep[key] {
			m.forgetBackend(key, "")
		}
	}
}

// routeKeys lists the route keys of t.
func routeKeys(t ingress.Table) map[string]bool {
	keys := map[string]bool{}
	for _, l := range t.Listeners {
		for _, r := range l.Routes {
			keys[r.Key()] = true
		}
	}
	return keys
}

var (
	inFlightDesc = prometheus.NewDesc("fleetd_ingress_in_flight",
		"Requests and connections a backend serves now.", []string{"route", "backend"}, nil)
	drainingDesc = prometheus.NewDesc("fleetd_ingress_backend_draining",
		"1 while a backend drains (marked draining, or left the table), else 0.", []string{"route", "backend"}, nil)
)

// backendCollector reads the in-flight and draining gauges from the
// backends at scrape time, so backends that left have no series.
type backendCollector struct{ s *Server }

// Describe sends the descriptions of the backend gauges.
func (c *backendCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- inFlightDesc
	ch <- drainingDesc
}

// Collect sends the backend gauges of every backend known.
func (c *backendCollector) Collect(ch chan<- prometheus.Metric) {
	var out []prometheus.Metric
	c.s.bmu.Lock()
	for _, b := range c.s.backends {
		draining := 0.0
		if b.info.Load().draining {
			draining = 1
		}
		b.observe(func(route, name string) {
			out = append(out,
				prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(b.inFlight.Load()), route, name),
				prometheus.MustNewConstMetric(drainingDesc, prometheus.GaugeValue, draining, route, name))
		})
	}
	c.s.bmu.Unlock()
	for _, m := range out {
		ch <- m
	}
}
