package ui

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// loginView is the login page's.
type loginView struct {
	Next, Err string
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "login", h.visitor(r), loginView{Next: safeNext(r.URL.Query().Get("next"))})
}

// login takes a token from the form: the API token logs in to act, the
// read token to look. The session cookie is HttpOnly, SameSite=Strict,
// and Secure over TLS (or when told).
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := safeNext(r.FormValue("next"))
	if !sameOrigin(r) {
		http.Error(w, "login from another origin", http.StatusForbidden)
		return
	}
	level := h.cfg.Tokens.login(strings.TrimSpace(r.FormValue("token")))
	if level == None {
		h.cfg.Log.Warn("dashboard login refused", "remote", r.RemoteAddr)
		h.render(w, r, http.StatusUnauthorized, "login", h.visitor(r), loginView{Next: next, Err: "wrong token"})
		return
	}
	s := newSession(level, h.cfg.Now())
	http.SetCookie(w, h.cookie(r, s.encode(h.cfg.Tokens.key()), s.Expires))
	h.cfg.Log.Info("dashboard login", "remote", r.RemoteAddr, "act", level == Act)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "logout from another origin", http.StatusForbidden)
		return
	}
	http.SetCookie(w, h.cookie(r, "", time.Unix(1, 0)))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

func (h *Handler) cookie(r *http.Request, value string, expires time.Time) *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: value, Path: Prefix, Expires: expires, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || h.cfg.SecureCookie}
}

// safeNext keeps a redirect after login on the dashboard.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, Prefix) || strings.HasPrefix(next, "//") {
		return Prefix
	}
	return u.RequestURI()
}

// actions are the dashboard's two actions; both are a manual sync of a
// host's agent, which also resumes its paused rollouts (reconcile.Retry
// forgets paused and rolled-back records, as POST /v1/sync does).
var actions = map[string]string{
	"sync":   "Sync now: ask the source for news and apply every fleet",
	"resume": "Resume paused rollouts: retry the failed specs (a manual sync)",
}

// confirmView is the confirmation step of an action.
type confirmView struct {
	Action, Text, Host, Back string
}

func (h *Handler) confirm(w http.ResponseWriter, r *http.Request, v visitor) {
	q := r.URL.Query()
	text, ok := actions[q.Get("action")]
	if !ok {
		h.fail(w, r, statusError{http.StatusBadRequest, "no such action: " + q.Get("action")})
		return
	}
	if v.Level < Act {
		h.fail(w, r, statusError{http.StatusForbidden, "log in with the API token (api.token_file) to act"})
		return
	}
	h.render(w, r, http.StatusOK, "confirm", v, confirmView{Action: q.Get("action"), Text: text, Host: q.Get("host"), Back: safeNext(q.Get("back"))})
}

// action runs a confirmed action: a logged-in session that may act, the
// session's CSRF token (constant time) and a same-origin request.
func (h *Handler) action(w http.ResponseWriter, r *http.Request, v visitor) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if v.session == nil || v.Level < Act {
		h.fail(w, r, statusError{http.StatusForbidden, "log in with the API token (api.token_file) to act"})
		return
	}
	if !sameOrigin(r) || !equal(r.FormValue("csrf"), v.CSRF) || v.CSRF == "" {
		h.cfg.Log.Warn("dashboard action refused: CSRF check failed", "remote", r.RemoteAddr)
		h.fail(w, r, statusError{http.StatusForbidden, "refused: the form is stale or from another site (CSRF check failed)"})
		return
	}
	name := r.FormValue("action")
	if _, ok := actions[name]; !ok {
		h.fail(w, r, statusError{http.StatusBadRequest, "no such action: " + name})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := h.cfg.Backend.Sync(ctx, r.FormValue("host")); err != nil {
		h.fail(w, r, err)
		return
	}
	h.cfg.Log.Info("dashboard action", "action", name, "host", r.FormValue("host"), "remote", r.RemoteAddr)
	http.Redirect(w, r, safeNext(r.FormValue("back")), http.StatusSeeOther)
}

// The JSON API: what `fleetd dashboard` reads from each agent with a
// bearer token.

func (h *Handler) apiHosts(w http.ResponseWriter, _ *http.Request, _ visitor) {
	writeJSON(w, h.cfg.Backend.Hosts())
}

func (h *Handler) apiEvents(w http.ResponseWriter, _ *http.Request, _ visitor) {
	writeJSON(w, h.cfg.Backend.Events())
}

func (h *Handler) apiContainers(w http.ResponseWriter, r *http.Request, _ visitor) {
	rows, err := h.cfg.Backend.Containers(r.Context(), r.URL.Query().Get("host"), r.URL.Query().Get("fleet"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	writeJSON(w, rows)
}

func (h *Handler) apiPlan(w http.ResponseWriter, r *http.Request, _ visitor) {
	text, err := h.cfg.Backend.Preview(r.Context(), r.URL.Query().Get("host"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	writeJSON(w, map[string]string{"plan": text})
}
