package notify

import (
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/fleetd/fleetd/drift"
)

// Mask stands in for a scrubbed value.
const Mask = "***"

// minSecretLen keeps a short configured secret from masking common words.
const minSecretLen = 4

var (
	// userinfoRE matches the password of scheme://user:password@.
	userinfoRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*):[^/@\s]*@`)
	// bearerRE matches an Authorization scheme followed by its credential.
	bearerRE = regexp.MustCompile(`(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{6,}`)
	// pairRE matches KEY=value and key: value, also as URL query
	// parameters; the key decides whether the value is scrubbed.
	pairRE = regexp.MustCompile(`([A-Za-z0-9_.-]+)(=|:[ \t]*|":[ \t]*")("[^"]*"|'[^']*'|[^\s&,;"'<>]+)`)
)

// Scrubber removes secret values from text: the configured secrets (and
// their URL-escaped forms), URL passwords, Authorization credentials, and
// the values of KEY=value pairs whose key looks secret (drift.LooksSecret:
// PASSWORD, SECRET, TOKEN, KEY, CREDENTIAL, AUTH, …; and signatures).
type Scrubber struct {
	secrets []string
}

// NewScrubber returns a scrubber for the given secret values; empty and
// very short values are ignored.
func NewScrubber(secrets ...string) *Scrubber {
	s := &Scrubber{}
	for _, v := range secrets {
		v = strings.TrimSpace(v)
		if len(v) < minSecretLen {
			continue
		}
		s.secrets = append(s.secrets, v)
		for _, esc := range []string{url.QueryEscape(v), url.PathEscape(v)} {
			if esc != v {
				s.secrets = append(s.secrets, esc)
			}
		}
	}
	// Longest first, so that a secret containing another is masked whole.
	slices.SortFunc(s.secrets, func(a, b string) int { return len(b) - len(a) })
	s.secrets = slices.Compact(s.secrets)
	return s
}

// String scrubs one text.
func (s *Scrubber) String(v string) string {
	if v == "" {
		return v
	}
	for _, secret := range s.secrets {
		v = strings.ReplaceAll(v, secret, Mask)
	}
	v = userinfoRE.ReplaceAllString(v, "${1}:"+Mask+"@")
	v = bearerRE.ReplaceAllString(v, "${1}${2}"+Mask)
	return scrubPairs(v)
}

// scrubPairs masks the values of secret-looking keys. A pair whose key is
// not secret is scanned again from its value, which may hold one
// ("env: DB_PASSWORD=x", "https://h/?token=x").
func scrubPairs(v string) string {
	var b strings.Builder
	pos := 0
	for pos < len(v) {
		loc := pairRE.FindStringSubmatchIndex(v[pos:])
		if loc == nil {
			break
		}
		key, valStart, valEnd := v[pos+loc[2]:pos+loc[3]], pos+loc[6], pos+loc[7]
		if !secretKey(key) || strings.HasPrefix(v[valStart:valEnd], Mask) {
			b.WriteString(v[pos:valStart])
			pos = valStart
			continue
		}
		b.WriteString(v[pos:valStart])
		b.WriteString(Mask)
		pos = valEnd
	}
	b.WriteString(v[pos:])
	return b.String()
}

func secretKey(k string) bool {
	return drift.LooksSecret(k) || strings.Contains(strings.ToUpper(k), "SIG")
}

// Error scrubs an error's text; nil stays nil.
func (s *Scrubber) Error(err error) error {
	if err == nil {
		return nil
	}
	return scrubbedError{text: s.String(err.Error()), err: err}
}

// scrubbedError keeps the chain for errors.Is/As but prints scrubbed text.
type scrubbedError struct {
	text string
	err  error
}

func (e scrubbedError) Error() string { return e.text }
func (e scrubbedError) Unwrap() error { return e.err }

// Message scrubs every free text of a message: message, reason, the
// commit's subject and author, and the drift values. Names (host, fleet,
// service, container) and kinds are left as they are.
func (s *Scrubber) Message(m Message) Message {
	m.Message = s.String(m.Message)
	m.Reason = s.String(m.Reason)
	m.CommitURL = s.String(m.CommitURL)
	if m.Revision != nil {
		r := *m.Revision
		r.Subject, r.Author, r.Dir = s.String(r.Subject), s.String(r.Author), ""
		m.Revision = &r
	}
	m.Drift = s.drift(m.Drift)
	return m
}

func (s *Scrubber) drift(items []drift.Item) []drift.Item {
	if items == nil {
		return nil
	}
	out := make([]drift.Item, len(items))
	for i, it := range items {
		it.Detail = s.String(it.Detail)
		if it.Fields != nil {
			fields := make([]drift.Field, len(it.Fields))
			for j, f := range it.Fields {
				fields[j] = drift.Field{Field: f.Field, Want: s.String(f.Want), Have: s.String(f.Have)}
			}
			it.Fields = fields
		}
		out[i] = it
	}
	return out
}
