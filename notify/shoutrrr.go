package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/router"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/discord"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/ntfy"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"

	"github.com/fleetd/fleetd/redact"
)

// ShoutrrrConfig configures a chat sink built from one shoutrrr URL
// (https://shoutrrr.nickfedor.com/): Discord, Teams, Telegram, Matrix,
// SMTP, ntfy, Gotify, generic webhooks and the other services shoutrrr
// knows.
type ShoutrrrConfig struct {
	// URL is the service URL; it holds the service's tokens.
	URL string
	// HTTPClient's Transport carries the requests of the services that
	// accept a client (Discord, ntfy, Gotify, Mattermost, PagerDuty);
	// default: the service's own, or http.DefaultTransport.
	HTTPClient *http.Client
	// Timeout bounds one delivery attempt (default 10s).
	Timeout time.Duration
	Retry   Retry
}

// Shoutrrr is a sink that posts plain text through shoutrrr. Each attempt
// builds the service afresh, with a transport that sees the HTTP status
// and Retry-After, and does the retrying itself (Retry): shoutrrr's own
// retries are cut short.
type Shoutrrr struct {
	cfg    ShoutrrrConfig
	scheme string
	title  bool
	red    *redact.Redactor
}

// titled are the services whose "title" parameter shows as a headline.
var titled = map[string]bool{
	"discord": true, "teams": true, "telegram": true, "matrix": true, "smtp": true, "ntfy": true,
	"gotify": true, "generic": true,
}

// dialsAtStart are the services whose set-up talks to the server (Matrix
// logs in); start-up checks only their scheme.
var dialsAtStart = map[string]bool{"matrix": true}

// NewShoutrrr checks the URL with shoutrrr's own parser and returns the
// sink. Errors name the scheme, never the URL.
func NewShoutrrr(cfg ShoutrrrConfig) (*Shoutrrr, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	scheme, err := shoutrrrScheme(cfg.URL)
	if err != nil {
		return nil, err
	}
	s := &Shoutrrr{cfg: cfg, scheme: scheme, title: titled[scheme], red: redact.New(URLSecrets(cfg.URL)...)}
	var r router.ServiceRouter
	if _, err := r.NewService(scheme); err != nil {
		return nil, fmt.Errorf("unknown chat service %q (see shoutrrr's list of services)", scheme)
	}
	if !dialsAtStart[scheme] {
		if _, err := r.Locate(cfg.URL); err != nil {
			return nil, fmt.Errorf("%s: invalid URL: %w", scheme, s.red.Error(err))
		}
	}
	return s, nil
}

// shoutrrrScheme is the service of a shoutrrr URL ("discord", or "teams"
// for "teams+https://…"), lower case.
func shoutrrrScheme(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme == "" {
		return "", errors.New("not a shoutrrr URL (service://…)")
	}
	scheme, _, _ := strings.Cut(strings.ToLower(u.Scheme), "+")
	return scheme, nil
}

// URLSecrets are the parts of a service URL that must never show: the
// whole URL, its password (or its user when it has no password: Discord
// and Telegram carry their token there), long path segments (webhook
// tokens) and the values of query keys that look secret.
func URLSecrets(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return out
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		} else {
			out = append(out, u.User.Username())
		}
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 16 {
			out = append(out, seg)
		}
	}
	for k, vs := range u.Query() {
		if redact.LooksSecret(k) {
			out = append(out, vs...)
		}
	}
	return out
}

// Name is the service's scheme: the URL holds tokens.
func (s *Shoutrrr) Name() string { return s.scheme }

// Send delivers m's text, retrying 429 (after Retry-After), 5xx, network
// errors and timeouts; other 4xx fail at once.
func (s *Shoutrrr) Send(ctx context.Context, m Message) error {
	params := types.Params{}
	if s.title {
		params.SetTitle(title(m))
	}
	text := chatText(m)
	err := s.cfg.Retry.do(ctx, func(ctx context.Context) error { return s.attempt(ctx, text, params) })
	if err != nil {
		return fmt.Errorf("%s: %w", s.scheme, s.red.Error(err))
	}
	return nil
}

// attempt builds the service with a recording transport and sends once.
func (s *Shoutrrr) attempt(ctx context.Context, text string, params types.Params) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var r router.ServiceRouter
	svc, err := r.Locate(s.cfg.URL)
	if err != nil { // only a service that dials at set-up fails here
		return temporary(err, 0)
	}
	rt := &attemptTransport{ctx: ctx}
	s.useTransport(svc, rt)
	p := maps.Clone(params)
	done := make(chan error, 1)
	// shoutrrr takes no context: a service on http.DefaultClient may
	// outlive the attempt, which no longer waits for it.
	go func() { done <- svc.Send(text, &p) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = fmt.Errorf("no answer within %s: %w", s.cfg.Timeout, ctx.Err())
		rt.fail(0, 0, err)
	}
	return rt.classify(err)
}

// useTransport makes svc send through rt where svc accepts a client; rt
// carries the configured client's transport, or the service's own.
func (s *Shoutrrr) useTransport(svc types.Service, rt *attemptTransport) {
	if s.cfg.HTTPClient != nil {
		rt.base = s.cfg.HTTPClient.Transport
	}
	client := &http.Client{Transport: rt, Timeout: s.cfg.Timeout}
	switch v := svc.(type) {
	case *discord.Service:
		v.HTTPClient, v.Sleeper = client, noSleep{}
	case *ntfy.Service:
		if rt.base == nil && v.Config.DisableTLSVerification {
			rt.base = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // asked for in the URL
		}
		v.SetHTTPClient(client)
	case interface{ SetHTTPClient(*http.Client) }:
		v.SetHTTPClient(client)
	case interface{ GetHTTPClient() *http.Client }: // Gotify, Mattermost: keep their TLS settings
		if c := v.GetHTTPClient(); c != nil {
			if rt.base == nil {
				rt.base = c.Transport
			}
			c.Transport, c.Timeout = rt, s.cfg.Timeout
		}
	}
	if rt.base == nil {
		rt.base = http.DefaultTransport
	}
}

type noSleep struct{}

func (noSleep) Sleep(time.Duration) {}

// errAttemptOver refuses a service's own retry within one attempt.
var errAttemptOver = errors.New("attempt over")

// attemptTransport carries one attempt's requests under its context and
// records the first failure: a network error, or a 429 or 5xx status
// with its Retry-After. After one, it refuses further requests, so that
// the retrying is Retry's. A 4xx goes through to the service, recorded.
type attemptTransport struct {
	base http.RoundTripper
	ctx  context.Context

	mu     sync.Mutex
	failed bool
	status int
	after  time.Duration
	err    error
}

func (t *attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	over := t.failed
	t.mu.Unlock()
	if over {
		return nil, errAttemptOver
	}
	resp, err := t.base.RoundTrip(req.WithContext(t.ctx))
	if err != nil {
		t.fail(0, 0, err)
		return nil, err
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		t.fail(resp.StatusCode, retryAfter(resp.Header, time.Now()), nil)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	if resp.StatusCode >= 400 {
		t.mu.Lock()
		t.status = resp.StatusCode
		t.mu.Unlock()
	}
	return resp, nil
}

func (t *attemptTransport) fail(status int, after time.Duration, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.failed {
		t.failed, t.status, t.after, t.err = true, status, after, err
	}
}

// classify marks err temporary or not from what the transport saw, or,
// for a service that did not use it, from the error.
func (t *attemptTransport) classify(err error) error {
	if err == nil {
		return nil
	}
	t.mu.Lock()
	failed, status, after := t.failed, t.status, t.after
	t.mu.Unlock()
	switch {
	case failed:
		return temporary(err, after)
	case status != 0:
		return err // a 4xx other than 429
	}
	return classifyText(err)
}

var (
	// statusRE finds an HTTP status in an error's text ("429 Too Many
	// Requests"); retryAfterRE, Telegram's "retry after 5".
	statusRE     = regexp.MustCompile(`\b([45]\d\d) [A-Z][A-Za-z]`)
	retryAfterRE = regexp.MustCompile(`(?i)retry after (\d+)`)
)

// classifyText is the last resort for services on http.DefaultClient
// (Teams, Telegram, generic, Matrix) and SMTP: a network error, an SMTP
// 4xx, or an HTTP 429 or 5xx named in the text is temporary; an HTTP or
// SMTP rejection is not; anything else is tried again.
func classifyText(err error) error {
	var ne net.Error
	if errors.As(err, &ne) {
		return temporary(err, 0)
	}
	var tp *textproto.Error
	if errors.As(err, &tp) {
		if tp.Code >= 500 {
			return err
		}
		return temporary(err, 0)
	}
	text := err.Error()
	var after time.Duration
	if m := retryAfterRE.FindStringSubmatch(text); m != nil {
		n, _ := strconv.Atoi(m[1])
		after = time.Duration(n) * time.Second
	}
	if m := statusRE.FindStringSubmatch(text); m != nil {
		code, _ := strconv.Atoi(m[1])
		if code != http.StatusTooManyRequests && code < 500 {
			return err
		}
	}
	return temporary(err, after)
}

// chatText is what a chat service shows: the plain text every sink
// shares, then the revision, the drift and the small print, a line each.
func chatText(m Message) string {
	lines := []string{plainText(m)}
	if m.Reason != "" && m.Reason != m.Message {
		lines = append(lines, m.Reason)
	}
	if r := m.Revision; r != nil && r.Commit != "" {
		rev := "commit " + shortHash(r.Commit)
		if r.Subject != "" {
			rev += " " + clip(r.Subject, 120)
		}
		if r.Author != "" {
			rev += " — " + r.Author
		}
		lines = append(lines, rev)
	}
	if m.CommitURL != "" {
		lines = append(lines, m.CommitURL)
	}
	lines = append(lines, driftRows(m.Drift)...)
	if n := notes(m); len(n) > 0 {
		lines = append(lines, strings.Join(n, " · "))
	}
	return strings.Join(lines, "\n")
}
