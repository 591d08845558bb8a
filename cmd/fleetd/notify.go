package main

import (
	"log/slog"

	"github.com/fleetd/fleetd/reconcile"
	"github.com/fleetd/fleetd/server"
)

// eventSink is what the agent notifies; Close flushes it.
type eventSink interface {
	reconcile.Notifier
	Close() error
}

// logSink sends events nowhere but the log (the agent logs every event
// already); it stands in while no chat or webhook sink is configured.
type logSink struct{}

func (logSink) Notify(reconcile.Event) {}
func (logSink) Close() error           { return nil }

// newNotifier builds the configured notification sinks.
func newNotifier(cfg daemonConfig, log *slog.Logger, metrics *server.Metrics) (eventSink, error) {
	if cfg.Notify.Slack.WebhookURLFile != "" || cfg.Notify.Slack.TokenFile != "" || len(cfg.Notify.Webhooks) > 0 {
		log.Warn("notify: Slack and webhook sinks are not implemented in this build; events go to the log only")
	}
	return logSink{}, nil
}
