package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/notify"
	"github.com/fleetd/fleetd/reconcile"
	"github.com/fleetd/fleetd/server"
)

// eventSink is what the agent notifies; Close flushes it.
type eventSink interface {
	agent.Notifier
	Close() error
}

// flushTimeout bounds how long a stopping daemon waits for notifications.
const flushTimeout = 10 * time.Second

// notifyClientTimeout bounds a request of a chat service on
// http.DefaultClient in the agent.
const notifyClientTimeout = 30 * time.Second

// dispatcherSink gives the dispatcher the agent's Close.
type dispatcherSink struct{ *notify.Dispatcher }

func (d dispatcherSink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	return d.Dispatcher.Close(ctx)
}

// newNotifier builds the configured notification sinks behind one
// dispatcher; with none configured, events go to the log only (the agent
// logs every event already).
func newNotifier(cfg daemonConfig, log *slog.Logger, metrics *server.Metrics) (eventSink, error) {
	opts, err := notifyOptions(cfg, log)
	if err != nil {
		return nil, err
	}
	if metrics != nil {
		opts.OnDropped = metrics.AddDropped
		opts.OnDeadLetter = metrics.AddDeadLetters
	}
	// Some shoutrrr services (Teams, Telegram, generic) send through
	// http.DefaultClient and take no context: an attempt that times out
	// leaves its request running. Bound it, so that a chat service that
	// never answers cannot pile up requests in the agent.
	if http.DefaultClient.Timeout == 0 {
		http.DefaultClient.Timeout = notifyClientTimeout
	}
	return dispatcherSink{notify.New(opts)}, nil
}

// notifyOptions reads the secret files of cfg.Notify and builds the sinks.
func notifyOptions(cfg daemonConfig, log *slog.Logger) (notify.Options, error) {
	opts := notify.Options{WebURL: cfg.Source.WebURL, StatusURL: cfg.Notify.StatusURL, Log: log}
	if cfg.Notify.FlapWindow != "" {
		d, err := time.ParseDuration(cfg.Notify.FlapWindow)
		if err != nil {
			return opts, fmt.Errorf("notify.flap_window: %w", err)
		}
		opts.FlapWindow = d
	}
	if cfg.Notify.QuietPeriod != "" {
		d, err := time.ParseDuration(cfg.Notify.QuietPeriod)
		if err != nil {
			return opts, fmt.Errorf("notify.quiet_period: %w", err)
		}
		opts.QuietPeriod = d
	}
	sc := cfg.Notify.Slack
	if sc.WebhookURLFile != "" || sc.TokenFile != "" {
		hookURL, err := readSecret(sc.WebhookURLFile)
		if err != nil {
			return opts, fmt.Errorf("notify.slack.webhook_url_file: %w", err)
		}
		token, err := readSecret(sc.TokenFile)
		if err != nil {
			return opts, fmt.Errorf("notify.slack.token_file: %w", err)
		}
		s, err := notify.NewSlack(notify.SlackConfig{WebhookURL: hookURL, Token: token, Channel: sc.Channel})
		if err != nil {
			return opts, fmt.Errorf("notify.slack: %w", err)
		}
		opts.Routes = append(opts.Routes, notify.Route{Sink: s, Filter: sc.sinkFilter.filter()})
		opts.Secrets = append(append(opts.Secrets, token), notify.URLSecrets(hookURL)...)
	}
	for i, wc := range cfg.Notify.Webhooks {
		secret, err := readSecret(wc.SecretFile)
		if err != nil {
			return opts, fmt.Errorf("notify.webhooks[%d].secret_file: %w", i, err)
		}
		w, err := notify.NewWebhook(notify.WebhookConfig{URL: wc.URL, Secret: secret})
		if err != nil {
			return opts, fmt.Errorf("notify.webhooks[%d]: %w", i, err)
		}
		opts.Routes = append(opts.Routes, notify.Route{Sink: w, Filter: wc.sinkFilter.filter()})
		opts.Secrets = append(opts.Secrets, wc.URL, secret)
	}
	for i, cc := range cfg.Notify.Chat {
		key := fmt.Sprintf("notify.chat[%d]", i)
		u, err := readSecret(cc.URLFile)
		if err != nil {
			return opts, fmt.Errorf("%s.url_file: %w", key, err)
		}
		s, err := notify.NewShoutrrr(notify.ShoutrrrConfig{URL: u})
		if err != nil {
			return opts, fmt.Errorf("%s: %w", key, err)
		}
		opts.Routes = append(opts.Routes, notify.Route{Sink: s, Filter: cc.sinkFilter.filter()})
		opts.Secrets = append(opts.Secrets, notify.URLSecrets(u)...)
	}
	// Other secrets of the configuration must not reach a message either.
	others := []string{cfg.Source.Auth.TokenFile, cfg.Source.Auth.PasswordFile, cfg.Webhook.SecretFile, cfg.API.TokenFile}
	if cs := cfg.Notify.CommitStatus; cs != nil {
		others = append(others, cs.TokenFile)
	}
	for _, path := range others {
		if v, err := readSecret(path); err == nil {
			opts.Secrets = append(opts.Secrets, v)
		}
	}
	return opts, nil
}

// checkChat validates notify.chat: a filter, and a URL file that holds a
// URL of a service shoutrrr knows (an unreadable file is reported with
// the other secret files).
func (n notifyConfig) checkChat() []error {
	var errs []error
	for i, cc := range n.Chat {
		key := fmt.Sprintf("notify.chat[%d]", i)
		if err := cc.sinkFilter.check(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		if cc.URLFile == "" {
			errs = append(errs, fmt.Errorf("%s.url_file: required", key))
			continue
		}
		u, err := readSecret(cc.URLFile)
		if err != nil {
			continue
		}
		if _, err := notify.NewShoutrrr(notify.ShoutrrrConfig{URL: u}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	return errs
}

// check validates a sink's filter: known event kinds and severity.
func (f sinkFilter) check() error {
	if _, err := notify.ParseSeverity(f.MinSeverity); err != nil {
		return fmt.Errorf("min_severity: %w", err)
	}
	for _, k := range f.Kinds {
		if !slices.Contains(eventKinds, reconcile.EventKind(k)) {
			return fmt.Errorf("kinds: unknown event kind %q", k)
		}
	}
	if slices.Contains(f.Fleets, "") {
		return errors.New("fleets: an empty fleet name")
	}
	return nil
}

// filter is the validated filter (check ran at start-up).
func (f sinkFilter) filter() notify.Filter {
	sev, _ := notify.ParseSeverity(f.MinSeverity)
	out := notify.Filter{MinSeverity: sev, Fleets: f.Fleets}
	for _, k := range f.Kinds {
		out.Kinds = append(out.Kinds, reconcile.EventKind(k))
	}
	return out
}

// eventKinds are the kinds a sink filter may name.
var eventKinds = []reconcile.EventKind{
	reconcile.EventRolloutStarted, reconcile.EventRolloutBatch, reconcile.EventRolloutSucceeded,
	reconcile.EventRolloutFailed, reconcile.EventRolloutRolledBack, reconcile.EventRolloutPaused,
	reconcile.EventRevisionApplied, reconcile.EventDriftDetected, reconcile.EventDriftResolved,
	reconcile.EventInvalidRevision, reconcile.EventSourceUnreachable, reconcile.EventSourceRecovered,
	reconcile.EventPruneRefused, reconcile.EventDaemonStarted, reconcile.EventImageUpdateAvailable,
	notify.KindFlapping, notify.KindFlapResolved,
}
