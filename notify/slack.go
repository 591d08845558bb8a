package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/fleetd/fleetd/reconcile"
)

// SlackConfig configures the Slack sink: an incoming webhook URL, or a bot
// token with a default channel. Only the bot token threads rollouts and
// routes fleets to their own channel (an incoming webhook posts to the one
// channel it was made for).
type SlackConfig struct {
	WebhookURL string
	Token      string
	Channel    string
	// APIURL is Slack's Web API base (tests point it at a local server).
	APIURL     string
	HTTPClient *http.Client
	Retry      Retry
}

// Slack is a sink posting Block Kit messages.
type Slack struct {
	cfg    SlackConfig
	client *slack.Client
	http   *http.Client

	mu      sync.Mutex
	threads map[threadKey]thread
	// flaps are the flapping messages, by Flap.ID, for their updates.
	flaps map[string]thread
}

// threadKey names one service's rollout; the event does not carry the
// target hash, so a new rollout-started of the service starts a new thread.
type threadKey struct{ host, fleet, service string }

type thread struct{ channel, ts string }

// maxThreads bounds the remembered rollout threads.
const maxThreads = 1024

// NewSlack returns a Slack sink.
func NewSlack(cfg SlackConfig) (*Slack, error) {
	if (cfg.WebhookURL == "") == (cfg.Token == "") {
		return nil, errors.New("slack: set either a webhook URL or a bot token")
	}
	if cfg.Token != "" && cfg.Channel == "" {
		return nil, errors.New("slack: a bot token needs a channel")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Slack{cfg: cfg, http: cfg.HTTPClient, threads: map[threadKey]thread{}, flaps: map[string]thread{}}
	if cfg.Token != "" {
		opts := []slack.Option{slack.OptionHTTPClient(cfg.HTTPClient)}
		if cfg.APIURL != "" {
			opts = append(opts, slack.OptionAPIURL(cfg.APIURL))
		}
		s.client = slack.New(cfg.Token, opts...)
	}
	return s, nil
}

// Name says which Slack sink this is, without its secrets.
func (s *Slack) Name() string {
	if s.client != nil {
		return "slack " + s.cfg.Channel
	}
	return "slack webhook"
}

// CanUpdate says whether flapping messages can be updated in place: with
// a bot token (chat.update), not with an incoming webhook.
func (s *Slack) CanUpdate() bool { return s.client != nil }

// Send posts m, retrying rate limits (after Retry-After), 5xx and network
// errors.
func (s *Slack) Send(ctx context.Context, m Message) error {
	blocks := slackBlocks(m)
	text := plainText(m)
	if s.client == nil {
		msg := &slack.WebhookMessage{Text: text, Blocks: &slack.Blocks{BlockSet: blocks}}
		err := s.cfg.Retry.do(ctx, func(ctx context.Context) error {
			return classifySlack(slack.PostWebhookCustomHTTPContext(ctx, s.cfg.WebhookURL, s.http, msg))
		})
		if err != nil {
			return fmt.Errorf("slack webhook: %w", err)
		}
		return nil
	}
	channel := s.cfg.Channel
	if m.SlackChannel != "" {
		channel = m.SlackChannel
	}
	opts := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...), slack.MsgOptionDisableLinkUnfurl()}
	if m.Flap != nil {
		if t, ok := s.flap(m.Flap.ID); ok {
			return s.sendFlap(ctx, t, m, opts)
		}
		if m.Update {
			return nil // its message is gone (never sent, or forgotten): nothing to update
		}
	}
	key := threadKey{m.Host, m.Fleet, m.Service}
	if t, ok := s.thread(key); ok && inThread(m.Kind) && t.channel == channel {
		opts = append(opts, slack.MsgOptionTS(t.ts))
		if m.Severity >= Error {
			opts = append(opts, slack.MsgOptionBroadcast()) // failures show in the channel too
		}
	}
	var ts string
	err := s.cfg.Retry.do(ctx, func(ctx context.Context) error {
		var err error
		_, ts, err = s.client.PostMessageContext(ctx, channel, opts...)
		return classifySlack(err)
	})
	if err != nil {
		return fmt.Errorf("slack %s: %w", channel, err)
	}
	if m.Kind == reconcile.EventRolloutStarted && m.Service != "" {
		// The channel as asked, not the ID Slack answers with: later
		// events of the fleet name it the same way.
		s.remember(key, thread{channel: channel, ts: ts})
	}
	if m.Kind == reconcile.EventRolloutSucceeded {
		s.forget(key)
	}
	if m.Kind == KindFlapping && m.Flap != nil {
		s.mu.Lock()
		remember(s.flaps, m.Flap.ID, thread{channel: channel, ts: ts})
		s.mu.Unlock()
	}
	return nil
}

// sendFlap updates the flapping message t in place; the end of the
// flapping also gets a reply in its thread.
func (s *Slack) sendFlap(ctx context.Context, t thread, m Message, opts []slack.MsgOption) error {
	err := s.cfg.Retry.do(ctx, func(ctx context.Context) error {
		_, _, _, err := s.client.UpdateMessageContext(ctx, t.channel, t.ts, opts...)
		return classifySlack(err)
	})
	if err != nil {
		return fmt.Errorf("slack %s: update: %w", t.channel, err)
	}
	if m.Kind != KindFlapResolved {
		return nil
	}
	s.mu.Lock()
	delete(s.flaps, m.Flap.ID)
	s.mu.Unlock()
	err = s.cfg.Retry.do(ctx, func(ctx context.Context) error {
		_, _, err := s.client.PostMessageContext(ctx, t.channel, append(opts, slack.MsgOptionTS(t.ts))...)
		return classifySlack(err)
	})
	if err != nil {
		return fmt.Errorf("slack %s: %w", t.channel, err)
	}
	return nil
}

func (s *Slack) flap(id string) (thread, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.flaps[id]
	return t, ok
}

// inThread reports whether an event continues a rollout's thread.
func inThread(k reconcile.EventKind) bool {
	switch k {
	case reconcile.EventRolloutBatch, reconcile.EventRolloutSucceeded, reconcile.EventRolloutFailed,
		reconcile.EventRolloutRolledBack, reconcile.EventRolloutPaused:
		return true
	}
	return false
}

func (s *Slack) thread(k threadKey) (thread, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.threads[k]
	return t, ok
}

func (s *Slack) remember(k threadKey, t thread) {
	s.mu.Lock()
	defer s.mu.Unlock()
	remember(s.threads, k, t)
}

// remember puts t in m, which holds at most maxThreads messages; s.mu is
// held.
func remember[K comparable](m map[K]thread, k K, t thread) {
	if _, ok := m[k]; !ok && len(m) >= maxThreads {
		for old := range m { // any one: a message this old is over
			delete(m, old)
			break
		}
	}
	m[k] = t
}

func (s *Slack) forget(k threadKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.threads, k)
}

// classifySlack marks the errors worth retrying.
func classifySlack(err error) error {
	if err == nil {
		return nil
	}
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return temporary(err, rl.RetryAfter)
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) && (sc.Code >= 500 || sc.Code == http.StatusTooManyRequests) {
		return temporary(err, 0)
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return temporary(err, 0)
	}
	return err
}
