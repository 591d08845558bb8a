package ui

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/reconcile"
)

//go:embed assets
var assets embed.FS

// Prefix is where the dashboard is mounted.
const Prefix = "/ui/"

// CSP is the pages' Content-Security-Policy: no inline script or style,
// nothing from elsewhere, never framed.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"

// Config wires the dashboard.
type Config struct {
	Backend Backend
	Tokens  Tokens
	// Title names the page ("fleetd" or "fleetd dashboard").
	Title string
	// SecureCookie marks the session cookie Secure even on plain HTTP
	// (fleetd behind a TLS proxy); requests over TLS always get it.
	SecureCookie bool
	// Retry is the EventSource's reconnection delay (retry:); 0 means 2s.
	Retry time.Duration
	// KeepAlive is the interval of SSE comments that keep proxies from
	// closing an idle stream; 0 means 25s.
	KeepAlive time.Duration
	Now       func() time.Time
	Log       *slog.Logger
}

// Handler serves the dashboard under Prefix.
type Handler struct {
	cfg   Config
	pages map[string]*template.Template
	mux   *http.ServeMux

	closing sync.Once
	done    chan struct{} // closed by Close: the streams end
}

// Close ends the open streams, so that a server shutting down does not
// wait on them; the browsers reconnect to the next process.
func (h *Handler) Close() { h.closing.Do(func() { close(h.done) }) }

// New builds the dashboard's handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Title = cmp.Or(cfg.Title, "fleetd")
	cfg.Retry = cmp.Or(cfg.Retry, 2*time.Second)
	cfg.KeepAlive = cmp.Or(cfg.KeepAlive, 25*time.Second)
	h := &Handler{cfg: cfg, pages: map[string]*template.Template{}, done: make(chan struct{})}
	for _, name := range []string{"overview", "fleet", "rollouts", "events", "plan", "login", "confirm", "message"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /ui/login", h.loginPage)
	mux.HandleFunc("POST /ui/login", h.login)
	mux.HandleFunc("POST /ui/logout", h.logout)
	mux.HandleFunc("GET /ui/stream", h.read(h.stream))
	mux.HandleFunc("GET /ui/confirm", h.read(h.confirm))
	mux.HandleFunc("POST /ui/action", h.read(h.action))
	mux.HandleFunc("GET /ui/api/hosts", h.read(h.apiHosts))
	mux.HandleFunc("GET /ui/api/events", h.read(h.apiEvents))
	mux.HandleFunc("GET /ui/api/containers", h.read(h.apiContainers))
	mux.HandleFunc("GET /ui/api/plan", h.read(h.apiPlan))
	for _, p := range []string{"/ui/{$}", "/ui/fleet", "/ui/rollouts", "/ui/events", "/ui/plan"} {
		mux.HandleFunc("GET "+p, h.read(h.page))
	}
	h.mux = mux
	return h, nil
}

// ServeHTTP sets the security headers on every answer and serves.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// visitor is who asks: what they may do and, when logged in, their
// session.
type visitor struct {
	Level   Level
	session *session
	CSRF    string
}

func (h *Handler) visitor(r *http.Request) visitor {
	level, s := h.cfg.Tokens.access(r, h.cfg.Now())
	v := visitor{Level: level, session: s}
	if s != nil {
		v.CSRF = s.csrf(h.cfg.Tokens.key())
	}
	return v
}

// read guards a handler: a visitor who may not read is sent to the login
// page (an API or stream request gets 401).
func (h *Handler) read(next func(http.ResponseWriter, *http.Request, visitor)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := h.visitor(r)
		if v.Level < Read {
			if strings.HasPrefix(r.URL.Path, "/ui/api/") || r.URL.Path == "/ui/stream" || r.Method != http.MethodGet {
				http.Error(w, "log in first", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next(w, r, v)
	}
}

// pageData is what every page's layout shows.
type pageData struct {
	Title   string
	Page    string
	Path    string // the page's path and query, for its live stream
	Visitor visitor
	CanAct  bool
	NoLogin bool // no token is set: nobody logs in
	Now     time.Time
	View    any
	Err     string
}

// page serves one of the live pages.
func (h *Handler) page(w http.ResponseWriter, r *http.Request, v visitor) {
	name, view, err := h.view(r.Context(), r.URL.Path, r.URL.Query())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, name, v, view)
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, code int, name string, v visitor, view any) {
	d := pageData{Title: h.cfg.Title, Page: name, Path: r.URL.RequestURI(), Visitor: v, CanAct: v.Level >= Act,
		NoLogin: h.cfg.Tokens.key() == nil, Now: h.cfg.Now(), View: view}
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "layout.html", d); err != nil {
		h.cfg.Log.Error("render page", "page", name, "err", err)
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// statusError is an error with the HTTP status it answers.
type statusError struct {
	code int
	msg  string
}

func (e statusError) Error() string { return e.msg }

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	var se statusError
	switch {
	case errors.As(err, &se):
		code = se.code
	case errors.Is(err, errUnknownHost):
		code = http.StatusNotFound
	}
	h.render(w, r, code, "message", h.visitor(r), err.Error())
}

// view computes a live page's template and data from its path and query:
// the pages and their streams share it.
func (h *Handler) view(ctx context.Context, path string, q url.Values) (string, any, error) {
	b := h.cfg.Backend
	now := h.cfg.Now()
	switch path {
	case "/ui/", "/ui":
		hosts := b.Hosts()
		return "overview", overviewView{Rows: Overview(hosts), Hosts: HostLines(hosts, now), Paused: Paused(hosts)}, nil
	case "/ui/fleet":
		return "fleet", h.fleetView(ctx, q.Get("host"), q.Get("name")), nil
	case "/ui/rollouts":
		hosts := b.Hosts()
		return "rollouts", rolloutsView{Entries: Timeline(hosts, b.Events()), Paused: Paused(hosts)}, nil
	case "/ui/events":
		f := EventFilter{Fleet: q.Get("fleet"), Kind: q.Get("kind"), Host: q.Get("host"), Text: q.Get("q")}
		return "events", eventsView{Filter: f, Kinds: EventKinds, Events: FilterEvents(b.Events(), f)}, nil
	case "/ui/plan":
		pv := planView{Hosts: HostLines(b.Hosts(), now), Host: q.Get("host")}
		if pv.Host == "" && len(pv.Hosts) > 0 {
			pv.Host = pv.Hosts[0].Name
		}
		if q.Get("run") != "" {
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			text, err := b.Preview(pctx, pv.Host)
			pv.Ran, pv.Text = true, text
			if err != nil {
				pv.Err = err.Error()
			}
		}
		return "plan", pv, nil
	}
	return "", nil, statusError{http.StatusNotFound, "no such page: " + path}
}

type overviewView struct {
	Rows   []FleetRow
	Hosts  []HostLine
	Paused []PausedRollout
}

type rolloutsView struct {
	Entries []TimelineEntry
	Paused  []PausedRollout
}

type eventsView struct {
	Filter EventFilter
	Kinds  []string
	Events []reconcile.Event
}

type planView struct {
	Hosts []HostLine
	Host  string
	Ran   bool
	Text  string
	Err   string
}

// fleetView is a fleet's detail: its status on host and its containers.
type fleetView struct {
	Host, Name string
	Found      bool
	Row        FleetRow
	Status     agent.FleetStatus
	Containers []ContainerRow
	ObserveErr string
}

func (h *Handler) fleetView(ctx context.Context, host, name string) fleetView {
	fv := fleetView{Host: host, Name: name}
	for _, hs := range h.cfg.Backend.Hosts() {
		if host != "" && hs.Name != host {
			continue
		}
		for _, f := range hs.Status.Fleets {
			if f.Name == name {
				fv.Found, fv.Host, fv.Status, fv.Row = true, hs.Name, f, rowOf(hs, f)
				break
			}
		}
		if fv.Found {
			break
		}
	}
	if !fv.Found {
		return fv
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := h.cfg.Backend.Containers(octx, fv.Host, name)
	fv.Containers = rows
	if err != nil {
		fv.ObserveErr = err.Error()
	}
	return fv
}

// stream is the live pages' Server-Sent Events: after each change it
// renders the page's live part again and sends it (event "status") when
// it differs from what it sent last. The browser's EventSource
// reconnects after retry: by itself, an agent restart included.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, v visitor) {
	page, err := url.Parse(r.URL.Query().Get("page"))
	if err != nil || page.Scheme != "" || page.Host != "" || !strings.HasPrefix(page.Path, Prefix) {
		http.Error(w, "stream: page must be a path under /ui/", http.StatusBadRequest)
		return
	}
	name, _, err := h.view(r.Context(), page.Path, nil)
	if err != nil || name == "plan" {
		http.Error(w, "stream: not a live page: "+page.Path, http.StatusBadRequest)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // the stream outlives the server's timeouts
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	changed, stop := h.cfg.Backend.Subscribe()
	defer stop()
	fmt.Fprintf(w, "retry: %d\n\n", h.cfg.Retry.Milliseconds())
	keep := time.NewTicker(h.cfg.KeepAlive)
	defer keep.Stop()
	var last string
	for {
		html, err := h.fragment(r, page, v)
		if err != nil {
			h.cfg.Log.Error("render stream", "page", page.Path, "err", err)
			return
		}
		if html != last {
			last = html
			if writeEvent(w, "status", html) != nil {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		case <-changed:
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		}
	}
}

// fragment renders the live part of page.
func (h *Handler) fragment(r *http.Request, page *url.URL, v visitor) (string, error) {
	name, view, err := h.view(r.Context(), page.Path, page.Query())
	if err != nil {
		return "", err
	}
	d := pageData{Title: h.cfg.Title, Page: name, Path: page.RequestURI(), Visitor: v, CanAct: v.Level >= Act, Now: h.cfg.Now(), View: view}
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "live", d); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// writeEvent writes one SSE event; every line of data gets its own data:
// field, as the format wants.
func writeEvent(w http.ResponseWriter, event, data string) error {
	var b strings.Builder
	b.WriteString("event: " + event + "\n")
	for line := range strings.SplitSeq(data, "\n") {
		b.WriteString("data: " + strings.TrimSuffix(line, "\r") + "\n")
	}
	b.WriteString("\n")
	_, err := fmt.Fprint(w, b.String())
	return err
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
