package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/fleetd/fleetd/drift"
)

// SignatureHeader carries the HMAC-SHA256 of the body, as
// "sha256=<hex>", when the webhook has a secret.
const SignatureHeader = "X-Fleetd-Signature"

// PayloadVersion is the version of Payload; a change that removes or
// retypes a field bumps it.
const PayloadVersion = 1

// Payload is the JSON body of a generic webhook, one per event
// (docs/notifications.md).
type Payload struct {
	Version  int              `json:"version"`
	Kind     string           `json:"kind"`
	Severity string           `json:"severity"`
	Time     time.Time        `json:"time"`
	Host     string           `json:"host,omitempty"`
	Fleet    string           `json:"fleet,omitempty"`
	Service  string           `json:"service,omitempty"`
	Revision *PayloadRevision `json:"revision,omitempty"`
	Message  string           `json:"message"`
	Reason   string           `json:"reason,omitempty"`
	Drift    []drift.Item     `json:"drift,omitempty"`
	// Repeat marks a reminder of an alert still true after the quiet
	// period; Since is when it was first reported (also on resolutions).
	Repeat     bool       `json:"repeat,omitempty"`
	Since      *time.Time `json:"since,omitempty"`
	Suppressed int        `json:"suppressed"`
	Dropped    int        `json:"dropped"`
	// Flap describes the flapping of a "flapping" or "flap-resolved"
	// event (added in version 1: absent on other kinds).
	Flap *PayloadFlap `json:"flap,omitempty"`
}

// PayloadFlap is a flapping alert key: incidents counted since it began
// to flap, the window, the first incident and the latest change.
type PayloadFlap struct {
	Count         int       `json:"count"`
	WindowSeconds int64     `json:"window_seconds"`
	First         time.Time `json:"first"`
	Last          time.Time `json:"last"`
	StatusURL     string    `json:"status_url,omitempty"`
}

// PayloadRevision is the commit an event is about.
type PayloadRevision struct {
	Commit  string `json:"commit"`
	Subject string `json:"subject,omitempty"`
	Author  string `json:"author,omitempty"`
	URL     string `json:"url,omitempty"`
}

// NewPayload is the webhook body of a message.
func NewPayload(m Message) Payload {
	p := Payload{Version: PayloadVersion, Kind: string(m.Kind), Severity: m.Severity.String(), Time: m.Time.UTC(),
		Host: m.Host, Fleet: m.Fleet, Service: m.Service, Message: m.Message, Reason: m.Reason, Drift: m.Drift,
		Repeat: m.Repeat, Suppressed: m.Suppressed, Dropped: m.Dropped}
	if m.Revision != nil {
		p.Revision = &PayloadRevision{Commit: m.Revision.Commit, Subject: m.Revision.Subject, Author: m.Revision.Author, URL: m.CommitURL}
	}
	if !m.Since.IsZero() {
		since := m.Since.UTC()
		p.Since = &since
	}
	if f := m.Flap; f != nil {
		p.Flap = &PayloadFlap{Count: f.Count, WindowSeconds: int64(f.Window / time.Second), First: f.First.UTC(), Last: f.Last.UTC(), StatusURL: m.StatusURL}
	}
	return p
}

// WebhookConfig configures a generic webhook sink.
type WebhookConfig struct {
	URL string
	// Secret signs the body (SignatureHeader); empty sends it unsigned.
	Secret     string
	HTTPClient *http.Client
	Retry      Retry
}

// Webhook is a sink that POSTs a Payload.
type Webhook struct {
	cfg  WebhookConfig
	name string
}

// NewWebhook returns a webhook sink.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhook: the URL is not an http(s) URL")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	// The path and query may hold a token: name the sink by its host.
	return &Webhook{cfg: cfg, name: "webhook " + u.Scheme + "://" + u.Host}, nil
}

// Name is the webhook's scheme and host.
func (w *Webhook) Name() string { return w.name }

// Send POSTs m's payload, retrying 5xx, 429 (after Retry-After) and
// network errors.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(NewPayload(m))
	if err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	if err := w.cfg.Retry.do(ctx, func(ctx context.Context) error { return w.post(ctx, body) }); err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	return nil
}

// Sign is the SignatureHeader value of body under secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (w *Webhook) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fleetd-notify/1")
	if w.cfg.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(w.cfg.Secret, body))
	}
	resp, err := w.cfg.HTTPClient.Do(req)
	if err != nil {
		return temporary(err, 0)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return temporary(fmt.Errorf("status %s", resp.Status), retryAfter(resp.Header, time.Now()))
	}
	return fmt.Errorf("status %s", resp.Status)
}
