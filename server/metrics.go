package server

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds fleetd's Prometheus collectors and the registry /metrics
// serves. The daemon reports through its methods (it satisfies
// agent.Metrics); the server counts webhook requests itself. All
// methods are safe for concurrent use and do nothing on a nil *Metrics.
type Metrics struct {
	Registry *prometheus.Registry

	reconciles        *prometheus.CounterVec
	reconcileDuration *prometheus.HistogramVec
	drift             *prometheus.GaugeVec
	applied           *prometheus.GaugeVec
	fetchDuration     prometheus.Histogram
	fetchFailures     prometheus.Counter
	backoff           prometheus.Gauge
	rollouts          *prometheus.CounterVec
	webhooks          *prometheus.CounterVec
	dropped           prometheus.Counter
	deadLetters       *prometheus.CounterVec
	conditions        *prometheus.GaugeVec
	lastSuccess       *prometheus.GaugeVec
	buildInfo         *prometheus.GaugeVec
	imageUpdates      *prometheus.GaugeVec

	mu         sync.Mutex
	driftKinds map[string]bool      // every kind ever set, to reset to 0
	appliedRev map[string]string    // fleet -> revision label in use
	condReason map[[2]string]string // {fleet, type} -> reason label in use
	// Extra adds metric families gathered elsewhere (the ingress's) to
	// /metrics; set before the server starts.
	Extra prometheus.Gatherer
}

// NewMetrics returns fleetd's collectors registered in a new registry,
// along with the Go runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry:   prometheus.NewRegistry(),
		driftKinds: map[string]bool{},
		appliedRev: map[string]string{},
		condReason: map[[2]string]string{},
	}
	m.reconciles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fleetd_reconcile_total", Help: "Reconciles by fleet and result.",
	}, []string{"fleet", "result"})
	m.reconcileDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "fleetd_reconcile_duration_seconds", Help: "Time to reconcile a fleet.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 12), // 50ms .. ~100s
	}, []string{"fleet"})
	m.drift = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fleetd_drift_items", Help: "Drift items on this host by kind.",
	}, []string{"kind"})
	m.applied = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fleetd_applied_revision_info", Help: "The revision applied per fleet (always 1).",
	}, []string{"fleet", "revision"})
	m.fetchDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "fleetd_git_fetch_duration_seconds", Help: "Time to ask the Git remote and fetch.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12), // 10ms .. ~20s
	})
	m.fetchFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fleetd_git_fetch_failures_total", Help: "Failed Git fetches.",
	})
	m.backoff = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "fleetd_git_backoff_seconds", Help: "Current wait before the next Git attempt after failures (0: none).",
	})
	m.rollouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fleetd_rollouts_total", Help: "Finished rollouts by outcome.",
	}, []string{"outcome"})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fleetd_webhook_requests_total", Help: "Webhook requests by provider and result.",
	}, []string{"provider", "result"})
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fleetd_notifications_dropped_total", Help: "Notifications dropped because a sink was slow or down.",
	})
	m.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fleetd_notify_dead_letters_total", Help: "Notifications a sink lost (queue full, or delivery failed after its retries), by sink.",
	}, []string{"sink"})
	m.lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fleetd_last_success_timestamp_seconds", Help: "When a fleet's apply last succeeded (Unix time): alert on it growing old.",
	}, []string{"fleet"})
	m.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fleetd_build_info", Help: "fleetd's build (always 1): version, VCS revision and Go version.",
	}, []string{"version", "revision", "goversion"})
	m.conditions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fleetd_fleet_condition", Help: "A fleet's conditions (Ready, Progressing, Degraded, Stalled): 1 when True, 0 when False, with the current reason.",
	}, []string{"fleet", "type", "reason"})
	m.imageUpdates = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fleetd_image_update_available", Help: "1 when a service's image tag names a new digest at its registry, 0 when it runs the tag's digest.",
	}, []string{"fleet", "service", "image"})
	m.Registry.MustRegister(m.imageUpdates)
	m.Registry.MustRegister(
		m.reconciles, m.reconcileDuration, m.drift, m.applied,
		m.fetchDuration, m.fetchFailures, m.backoff, m.rollouts, m.webhooks, m.dropped, m.deadLetters, m.conditions, m.lastSuccess, m.buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// ObserveReconcile counts one reconcile of fleet with result and its
// duration.
func (m *Metrics) ObserveReconcile(fleet, result string, d time.Duration) {
	if m == nil {
		return
	}
	m.reconciles.WithLabelValues(fleet, result).Inc()
	m.reconcileDuration.WithLabelValues(fleet).Observe(d.Seconds())
	if result == "ok" {
		m.lastSuccess.WithLabelValues(fleet).Set(float64(time.Now().Unix()))
	}
}

// SetBuildInfo sets fleetd_build_info to this build.
func (m *Metrics) SetBuildInfo(version, revision, goVersion string) {
	if m == nil {
		return
	}
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(version, revision, goVersion).Set(1)
}

// SetDrift sets the drift items by kind; kinds seen before and absent now
// go to 0.
func (m *Metrics) SetDrift(byKind map[string]int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for kind := range m.driftKinds {
		if _, ok := byKind[kind]; !ok {
			m.drift.WithLabelValues(kind).Set(0)
		}
	}
	for kind, n := range byKind {
		m.driftKinds[kind] = true
		m.drift.WithLabelValues(kind).Set(float64(n))
	}
}

// SetApplied records the revision applied to fleet, replacing the
// previous one's series.
func (m *Metrics) SetApplied(fleet, revision string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, ok := m.appliedRev[fleet]; ok && prev != revision {
		m.applied.DeleteLabelValues(fleet, prev)
	}
	m.appliedRev[fleet] = revision
	m.applied.WithLabelValues(fleet, revision).Set(1)
}

// SetCondition sets one condition of a fleet: its series carries the
// current reason (the previous reason's series is removed), valued 1 when
// the condition is True.
func (m *Metrics) SetCondition(fleet, typ string, status bool, reason string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [2]string{fleet, typ}
	if prev, ok := m.condReason[key]; ok && prev != reason {
		m.conditions.DeleteLabelValues(fleet, typ, prev)
	}
	m.condReason[key] = reason
	v := 0.0
	if status {
		v = 1
	}
	m.conditions.WithLabelValues(fleet, typ, reason).Set(v)
}

// SetImageUpdate sets whether a service's image tag names a new digest at
// its registry.
func (m *Metrics) SetImageUpdate(fleet, service, image string, available bool) {
	if m == nil {
		return
	}
	v := 0.0
	if available {
		v = 1
	}
	m.imageUpdates.WithLabelValues(fleet, service, image).Set(v)
}

// ForgetFleet removes the series of a fleet that is no longer on the host.
func (m *Metrics) ForgetFleet(fleet string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.conditions.DeletePartialMatch(prometheus.Labels{"fleet": fleet})
	m.imageUpdates.DeletePartialMatch(prometheus.Labels{"fleet": fleet})
	m.lastSuccess.DeleteLabelValues(fleet)
	for key := range m.condReason {
		if key[0] == fleet {
			delete(m.condReason, key)
		}
	}
	if prev, ok := m.appliedRev[fleet]; ok {
		m.applied.DeleteLabelValues(fleet, prev)
		delete(m.appliedRev, fleet)
	}
}

// ObserveFetch records one Git fetch (or head check) and whether it failed.
func (m *Metrics) ObserveFetch(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.fetchDuration.Observe(d.Seconds())
	if err != nil {
		m.fetchFailures.Inc()
	}
}

// SetBackoff sets the current Git backoff; 0 when fetching works.
func (m *Metrics) SetBackoff(d time.Duration) {
	if m == nil {
		return
	}
	m.backoff.Set(d.Seconds())
}

// ObserveRollout counts a finished rollout by outcome.
func (m *Metrics) ObserveRollout(outcome string) {
	if m == nil {
		return
	}
	m.rollouts.WithLabelValues(outcome).Inc()
}

// AddDropped counts n dropped notifications.
func (m *Metrics) AddDropped(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.dropped.Add(float64(n))
}

// AddDeadLetters counts n notifications the sink lost; the sink is its
// name (a service scheme, a webhook's host), never a URL.
func (m *Metrics) AddDeadLetters(sink string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.deadLetters.WithLabelValues(sink).Add(float64(n))
}

// webhook counts one webhook request.
func (m *Metrics) webhook(provider, result string) {
	if m == nil {
		return
	}
	m.webhooks.WithLabelValues(provider, result).Inc()
}

// handler serves the registry in the Prometheus text format.
func (m *Metrics) handler(log *slog.Logger) http.Handler {
	var g prometheus.Gatherer = m.Registry
	if m.Extra != nil {
		g = prometheus.Gatherers{m.Registry, m.Extra}
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
}
