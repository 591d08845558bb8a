package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/swarm"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// swarmApply is what `fleetd apply` does with the swarm fleets of the
// repository: it converges them through the swarm the local engine
// manages, holding the swarm's lease while it acts, as an agent would (so
// that it never acts alongside an agent); with dryRun it reports their
// drift only.
type swarmApply struct {
	dryRun, retry, allowMassPrune bool
	onEvent                       func(reconcile.Event)
}

// leaseWait bounds how long apply waits for the swarm's lease: long enough
// for a lease left by a stopped agent to expire, not for a running agent
// to let it go.
var leaseWait = swarm.DefaultLeaseParams.Duration + 2*swarm.DefaultLeaseParams.RetryPeriod

func (o swarmApply) run(ctx context.Context, w io.Writer, st *liveState) error {
	if st.scope != nil {
		return nil // --fleet names docker fleets only
	}
	var sw []fleets.Fleet
	for _, f := range st.desired {
		if f.Engine == fleets.EngineSwarm {
			sw = append(sw, f)
		}
	}
	if len(sw) == 0 {
		return nil
	}
	info, err := st.engine.Client().Info(ctx)
	if err != nil {
		return fmt.Errorf("engine info: %w", err)
	}
	if !info.Swarm.ControlAvailable {
		fmt.Fprintf(w, "note: %d swarm %s not applied: %v\n", len(sw), reconcile.Plural(len(sw), "fleet", "fleets"), swarm.ErrNotManager)
		return nil
	}
	d := swarm.New(st.engine.Client(), instanceName())
	var campaign *swarm.Campaign
	if !o.dryRun {
		campaign = swarm.NewCampaign(d.Lease(), "fleetd-apply-"+st.host.Name+"-"+randomSuffix(), swarm.DefaultLeaseParams, time.Now)
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { campaign.Run(cctx); close(done) }()
		defer func() { cancel(); <-done }() // releases the lease
		deadline := time.Now().Add(leaseWait)
		for !campaign.Leading() {
			if time.Now().After(deadline) {
				return fmt.Errorf("swarm fleets not applied: %s holds the swarm's lease (an agent acts for the swarm; ask it with fleetd sync)", campaign.Holder())
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	r := swarm.NewRunner(d, campaign, 10*time.Minute)
	r.AllowMassPrune = o.allowMassPrune
	var errs []error
	for _, f := range sw {
		res, err := r.Converge(ctx, f, reconcile.SwarmOptions{Dir: st.repoDir, ReportOnly: o.dryRun, Retry: o.retry, Desired: st.desired, OnEvent: o.onEvent})
		switch {
		case o.dryRun && len(res.Left) > 0:
			fmt.Fprintf(w, "swarm fleet %s: %d drift items\n%s", f.Name, len(res.Left), drift.Text(res.Left))
		case o.dryRun:
			fmt.Fprintf(w, "swarm fleet %s: in sync\n", f.Name)
		case res.Changes != "":
			fmt.Fprintf(w, "swarm fleet %s: %s\n", f.Name, res.Changes)
		default:
			fmt.Fprintf(w, "swarm fleet %s: nothing to do\n", f.Name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("swarm fleet %s: %w", f.Name, err))
		}
	}
	return errors.Join(errs...)
}
