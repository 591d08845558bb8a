package ingress

import (
	"context"
	"fmt"
	"time"

	"github.com/docker/docker/client"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fleetd/fleetd/ingress/proxy"
)

// Status is the ingress as `fleetd status` and /v1/status show it.
type Status struct {
	Container string `json:"container"`
	State     string `json:"state"` // running, exited, …, or absent
	Image     string `json:"image,omitempty"`
	Ports     string `json:"ports,omitempty"` // the published listeners
	Table     uint64 `json:"table_version,omitempty"`
	Backends  int    `json:"backends"`
	Draining  int    `json:"draining"`
	Down      int    `json:"down"` // ejected or failing their active check
	Error     string `json:"error,omitempty"`
}

// Status reports the ingress, or nil when no service goes through it and
// there is none (then it costs no call).
func (r *Router) Status(ctx context.Context) *Status {
	r.mu.Lock()
	absent := r.absent || !needed(r.desired())
	r.mu.Unlock()
	st := &Status{Container: r.name(), State: "absent"}
	c, err := r.cli.ContainerInspect(ctx, r.name())
	switch {
	case client.IsErrNotFound(err) && absent:
		return nil
	case client.IsErrNotFound(err):
		return st
	case err != nil:
		st.Error = err.Error()
		return st
	}
	st.State, st.Image, st.Ports = c.State.Status, c.Config.Image, c.Config.Labels[LabelPorts]
	ps, err := proxy.Client{Socket: r.socket()}.State(ctx)
	if err != nil {
		st.Error = fmt.Sprintf("control socket: %v", err)
		return st
	}
	st.Table = ps.Version
	for _, b := range ps.Backends {
		if b.Removed {
			continue
		}
		st.Backends++
		if b.Draining {
			st.Draining++
		}
		if b.Ejected || !b.Healthy {
			st.Down++
		}
	}
	return st
}

// Gatherer serves the ingress's metrics (fleetd_ingress_*) through the
// agent's /metrics; nothing while there is no ingress.
func (r *Router) Gatherer() prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		r.mu.Lock()
		absent := r.absent || r.version == 0
		r.mu.Unlock()
		if absent {
			return nil, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), metricsTimeout)
		defer cancel()
		return proxy.Client{Socket: r.socket()}.Metrics(ctx)
	})
}

// Keep heals the ingress every period while some service goes through
// it: a stopped or removed ingress container is started or created again,
// and the table follows replicas whose health changed, even when no fleet
// has anything to apply. It returns when ctx ends.
func (r *Router) Keep(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		var err error
		if !r.absent && needed(r.desired()) {
			err = r.sync(ctx, nil)
		}
		r.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			r.opts.Log.Warn("ingress", "err", err)
		}
	}
}
