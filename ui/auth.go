package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Level is what a visitor may do.
type Level int

const (
	// None may see the login page only.
	None Level = iota
	// Read may see every page (the read token, or no read token set).
	Read
	// Act may also sync and resume (the API token).
	Act
)

// Tokens are the agent's API tokens (api.read_token_file and
// api.token_file), which the login takes: the read token lets one look,
// the API token also act. Without a read token the pages are as open as
// /v1/status; without an API token nobody acts.
type Tokens struct {
	Read, API string
}

// SessionTTL is how long a login lasts.
const SessionTTL = 12 * time.Hour

// cookieName is the session cookie's.
const cookieName = "fleetd_session"

// session is a login: what it may do, until when, and the nonce its CSRF
// token is derived from. It lives in the cookie only, signed with a key
// derived from the tokens, so that an agent restart keeps its visitors
// logged in (the page's EventSource reconnects) and a changed token logs
// everyone out.
type session struct {
	Level   Level
	Expires time.Time
	Nonce   string
}

// key is the signing key of sessions: nil when no token is set (nobody
// can log in).
func (t Tokens) key() []byte {
	if t.Read == "" && t.API == "" {
		return nil
	}
	m := hmac.New(sha256.New, []byte("fleetd ui session v1"))
	m.Write([]byte(t.Read))
	m.Write([]byte{0})
	m.Write([]byte(t.API))
	return m.Sum(nil)
}

// login decides what a token given at the login page allows, in constant
// time.
func (t Tokens) login(token string) Level {
	switch {
	case t.API != "" && equal(token, t.API):
		return Act
	case t.Read != "" && equal(token, t.Read):
		return Read
	}
	return None
}

// bearer decides a request with an Authorization header, as the API does
// (server.readAllowed): the read or the API token.
func (t Tokens) bearer(header string) Level {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return None
	}
	return t.login(strings.TrimSpace(tok))
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// newSession starts a session of level at now.
func newSession(level Level, now time.Time) session {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand does not fail (Go 1.24)
	return session{Level: level, Expires: now.Add(SessionTTL), Nonce: hex.EncodeToString(b)}
}

// encode is the cookie value: the fields and their MAC.
func (s session) encode(key []byte) string {
	payload := strconv.Itoa(int(s.Level)) + "." + strconv.FormatInt(s.Expires.Unix(), 10) + "." + s.Nonce
	return payload + "." + base64.RawURLEncoding.EncodeToString(mac(key, "session", payload))
}

// decodeSession checks a cookie value at now: the MAC in constant time,
// then the expiry.
func decodeSession(key []byte, v string, now time.Time) (session, bool) {
	if key == nil {
		return session{}, false
	}
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return session{}, false
	}
	sum, err := base64.RawURLEncoding.DecodeString(v[i+1:])
	if err != nil || !hmac.Equal(sum, mac(key, "session", v[:i])) {
		return session{}, false
	}
	parts := strings.Split(v[:i], ".")
	if len(parts) != 3 {
		return session{}, false
	}
	level, err1 := strconv.Atoi(parts[0])
	exp, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || level < int(Read) || level > int(Act) {
		return session{}, false
	}
	s := session{Level: Level(level), Expires: time.Unix(exp, 0), Nonce: parts[2]}
	if !now.Before(s.Expires) {
		return session{}, false
	}
	return s, true
}

// csrf is the session's CSRF token: a MAC of its nonce, so it needs no
// storage and changes with every login.
func (s session) csrf(key []byte) string {
	return base64.RawURLEncoding.EncodeToString(mac(key, "csrf", s.Nonce))
}

func mac(key []byte, purpose, v string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(v))
	return m.Sum(nil)
}

// sameOrigin reports whether a state-changing request comes from a page
// of this server: its Origin header, when the browser sent one, must name
// the host the request was sent to. Browsers send it with every POST;
// clients without one still need the CSRF token.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Host == r.Host && u.Scheme == scheme
}

// access is what a request may do: a bearer token (for the dashboard
// reading agents), a valid session cookie, or Read when no read token is
// set. It returns the session too, when there is one.
func (t Tokens) access(r *http.Request, now time.Time) (Level, *session) {
	level := None
	if t.Read == "" {
		level = Read
	}
	if h := r.Header.Get("Authorization"); h != "" {
		return max(level, t.bearer(h)), nil
	}
	c, err := r.Cookie(cookieName)
	if err != nil {
		return level, nil
	}
	s, ok := decodeSession(t.key(), c.Value, now)
	if !ok {
		return level, nil
	}
	return max(level, s.Level), &s
}
