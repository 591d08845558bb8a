package fleets

import (
	"slices"

	"github.com/compose-spec/compose-go/v2/types"
)

func deployUpdate(s types.ServiceConfig, rollback bool) *types.UpdateConfig {
	if s.Deploy == nil {
		return nil
	}
	if rollback {
		return s.Deploy.RollbackConfig
	}
	return s.Deploy.UpdateConfig
}

// rollout applies Swarm's defaults to an update_config or rollback_config:
// parallelism 1, delay 0, failure_action pause, monitor 5s,
// max_failure_ratio 0, order stop-first. zeroMonitor says the file sets
// monitor to zero explicitly: no monitoring window (compose-go's model
// cannot tell it from an unset monitor, which keeps the default).
func rollout(u *types.UpdateConfig, zeroMonitor bool) Rollout {
	r := Rollout{
		Parallelism:   1,
		FailureAction: FailurePause,
		Monitor:       defaultMonitor,
		Order:         OrderStopFirst,
	}
	if u == nil {
		return r
	}
	if u.Parallelism != nil {
		r.Parallelism = int(min(*u.Parallelism, 1<<31-1))
	}
	r.Delay = durationOr(&u.Delay, 0)
	r.FailureAction = cmpOr(u.FailureAction, r.FailureAction)
	if u.Monitor != 0 || zeroMonitor {
		r.Monitor = durationOr(&u.Monitor, 0)
	}
	r.MaxFailureRatio = float64(u.MaxFailureRatio)
	r.Order = cmpOr(u.Order, r.Order)
	return r
}

func checkRollout(service string, r Rollout, field string, rep *report) {
	if !slices.Contains([]string{FailureRollback, FailurePause, FailureContinue}, r.FailureAction) {
		rep.servicef(service, field+".failure_action", "invalid value %q: use rollback, pause or continue", r.FailureAction)
	}
	if !slices.Contains([]string{OrderStopFirst, OrderStartFirst}, r.Order) {
		rep.servicef(service, field+".order", "invalid value %q: use stop-first or start-first", r.Order)
	}
	if r.MaxFailureRatio < 0 || r.MaxFailureRatio > 1 {
		rep.servicef(service, field+".max_failure_ratio", "must be between 0 and 1")
	}
}
