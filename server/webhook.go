package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// provider is one webhook sender: how it signs and how it names events.
type provider struct {
	name string
	// verify checks the request's signature over body.
	verify func(secret, body []byte, h http.Header) error
	// event returns the event kind: "push", "ping", another name, or ""
	// when the sender did not say.
	event func(h http.Header) string
	// delivery returns the ID the sender gives a delivery, which a
	// redelivery or a replay of it carries again; "" when it sends none.
	delivery func(h http.Header) string
	// refOptional: a payload without a ref (or no payload) means "sync".
	refOptional bool
}

var providers = []provider{
	{
		name: "github",
		verify: func(secret, body []byte, h http.Header) error {
			return VerifyGitHub(secret, body, h.Get("X-Hub-Signature-256"))
		},
		event:    func(h http.Header) string { return h.Get("X-GitHub-Event") },
		delivery: func(h http.Header) string { return h.Get("X-GitHub-Delivery") },
	},
	{
		name: "gitlab",
		verify: func(secret, _ []byte, h http.Header) error {
			return VerifyGitLab(secret, h.Get("X-Gitlab-Token"))
		},
		event: gitlabEvent,
		// Idempotency-Key (GitLab 17.4+) stays the same across retries of
		// a delivery; X-Gitlab-Event-UUID names the event.
		delivery: func(h http.Header) string { return firstHeader(h, "Idempotency-Key", "X-Gitlab-Event-UUID") },
	},
	{
		name: "gitea",
		verify: func(secret, body []byte, h http.Header) error {
			return VerifyGitea(secret, body, firstHeader(h, "X-Gitea-Signature", "X-Forgejo-Signature"))
		},
		event: func(h http.Header) string { return firstHeader(h, "X-Gitea-Event", "X-Forgejo-Event", "X-Gogs-Event") },
		delivery: func(h http.Header) string {
			return firstHeader(h, "X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gogs-Delivery")
		},
	},
	{
		name: "generic",
		verify: func(secret, body []byte, h http.Header) error {
			return VerifyGeneric(secret, body, h.Get("X-Fleetd-Signature"))
		},
		event:       func(http.Header) string { return "push" },
		delivery:    func(http.Header) string { return "" }, // fleetd's format carries no ID
		refOptional: true,
	},
}

// gitlabEvent maps X-Gitlab-Event to an event kind; a tag push is a push
// (its ref is refs/tags/..., matched like any other).
func gitlabEvent(h http.Header) string {
	switch e := h.Get("X-Gitlab-Event"); e {
	case "Push Hook", "Tag Push Hook":
		return "push"
	default:
		return e
	}
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// reply is a webhook's successful answer.
type reply struct {
	status int
	result string // the metric label: accepted, ignored, pong, duplicate
	msg    string
}

// hook serves one provider's endpoint and counts every request by result.
func (s *Server) hook(p provider) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		rep, err := s.receive(p, w, r)
		if err != nil {
			status, _ := errorStatus(err)
			s.metrics.webhook(p.name, resultOf(status))
			return err
		}
		s.metrics.webhook(p.name, rep.result)
		return writeJSON(w, rep.status, map[string]string{"status": rep.msg})
	}
}

// receive checks, decodes and acts on one webhook delivery.
func (s *Server) receive(p provider, w http.ResponseWriter, r *http.Request) (reply, error) {
	secret := []byte(s.cfg.WebhookSecret)
	if len(secret) == 0 {
		return reply{}, errorf(http.StatusForbidden, "webhooks are disabled: no webhook secret is configured (webhook.secret_file)")
	}
	body, err := readBody(w, r)
	if err != nil {
		return reply{}, err
	}
	if err := p.verify(secret, body, r.Header); err != nil {
		return reply{}, errorf(http.StatusUnauthorized, "webhook "+err.Error())
	}
	switch ev := p.event(r.Header); ev {
	case "push":
	case "ping":
		return reply{http.StatusOK, "pong", "pong"}, nil
	case "":
		return reply{}, errorf(http.StatusBadRequest, "no event header: not a "+p.name+" webhook")
	default:
		return reply{http.StatusAccepted, "ignored", "ignored: event " + ev}, nil
	}
	return s.push(p, r, body)
}

// push triggers a sync for a push to the followed branch.
func (s *Server) push(p provider, r *http.Request, body []byte) (reply, error) {
	ev, err := parsePush(body, r.Header.Get("Content-Type"))
	if err != nil {
		return reply{}, errorf(http.StatusBadRequest, err.Error())
	}
	if ev.Ref == "" && !p.refOptional {
		return reply{}, errorf(http.StatusBadRequest, "push payload has no ref")
	}
	if ev.Ref != "" && !refMatches(ev.Ref, s.cfg.Branch) {
		return reply{http.StatusAccepted, "ignored", "ignored: push to " + strings.TrimPrefix(ev.Ref, "refs/heads/")}, nil
	}
	// Checked last, so that only a delivery that triggers a sync is
	// remembered: one refused or ignored may come again and be answered
	// the same way.
	if s.duplicate(p.name, p.delivery(r.Header)) {
		s.log.Info("webhook duplicate ignored", "provider", p.name, "ref", ev.Ref, "after", ev.After)
		return reply{http.StatusOK, "duplicate", "duplicate delivery, ignored"}, nil
	}
	reason := pushReason(p.name, ev.After)
	coalesced := s.trigger.fire(reason)
	s.log.Info("webhook accepted", "provider", p.name, "ref", ev.Ref, "after", ev.After, "coalesced", coalesced)
	return reply{http.StatusAccepted, "accepted", "accepted"}, nil
}

// readBody reads at most MaxBodyBytes. A larger body is refused with 413:
// up front when Content-Length says so, otherwise as soon as the limit is
// passed, without reading the rest.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, tooLarge)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, errorf(http.StatusRequestEntityTooLarge, tooLarge)
	case err != nil:
		return nil, errorf(http.StatusBadRequest, "read body: "+err.Error())
	}
	return body, nil
}

const tooLarge = "request body over 1 MiB"

// pushEvent is the part of a push payload fleetd reads; GitHub, GitLab and
// Gitea/Forgejo all name these fields the same.
type pushEvent struct {
	Ref   string `json:"ref"`
	After string `json:"after"`
}

// parsePush decodes a push payload: JSON, or GitHub's and Gitea's form
// encoding (payload=<json>). An empty body is an empty event.
func parsePush(body []byte, contentType string) (pushEvent, error) {
	var ev pushEvent
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return ev, fmt.Errorf("decode form payload: %w", err)
		}
		body = []byte(form.Get("payload"))
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return ev, nil
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return ev, fmt.Errorf("decode push payload: %w", err)
	}
	return ev, nil
}

// refMatches reports whether a pushed ref is the followed branch. branch
// may be a short name ("main") or a full ref; "" matches every ref.
func refMatches(ref, branch string) bool {
	if branch == "" {
		return true
	}
	if !strings.HasPrefix(branch, "refs/") {
		branch = "refs/heads/" + branch
	}
	return ref == branch
}

// pushReason is the reason handed to Sync: "webhook github push 1a2b3c4".
func pushReason(provider, after string) string {
	reason := "webhook " + provider + " push"
	if after != "" {
		reason += " " + after[:min(len(after), 7)]
	}
	return reason
}

// resultOf is the metric label for a refused webhook.
func resultOf(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "disabled"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusBadRequest:
		return "bad_request"
	default:
		return "error"
	}
}
