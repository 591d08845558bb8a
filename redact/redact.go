package redact

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Mask stands in for a redacted value, or the redacted part of a text.
const Mask = "***"

// minKnownLen keeps a short known value ("true", "1234") from masking
// every occurrence of a common word.
const minKnownLen = 6

// secretWords are the name fragments that mark a value as secret.
var secretWords = []string{"PASS", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE", "AUTH"}

// LooksSecret reports whether a key or word names a secret (PASSWORD,
// API_KEY, auth_token, --db-password, …), case-insensitively.
func LooksSecret(name string) bool {
	up := strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(up, w) {
			return true
		}
	}
	return false
}

// secretPairKey is LooksSecret, and signatures (sig=…) too: in free text
// a pair's key is all there is to judge it by.
func secretPairKey(k string) bool {
	return LooksSecret(k) || strings.Contains(strings.ToUpper(k), "SIG")
}

var (
	// userinfoRE matches the password of scheme://user:password@.
	userinfoRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*):[^/@\s]*@`)
	// bearerRE matches an Authorization scheme followed by its credential.
	bearerRE = regexp.MustCompile(`(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{6,}`)
	// pairRE matches KEY=value and key: value, also as URL query
	// parameters and --flag=value; the key decides whether the value is
	// masked.
	pairRE = regexp.MustCompile(`([A-Za-z0-9_.-]+)(=|:[ \t]*|":[ \t]*")("[^"]*"|'[^']*'|[^\s&,;"'<>]+)`)
	// flagRE matches a command-line flag followed by a separate value
	// (--password hunter2); the flag decides. The value stops at a quote,
	// so that masking it never breaks the JSON or YAML it sits in.
	flagRE = regexp.MustCompile(`(^|\s)(--?[A-Za-z0-9][A-Za-z0-9_.-]*)([ \t]+)([^\s"'<>-][^\s"'<>]*)`)
)

// Redactor masks secrets in text: the known secret values it was made
// with (and their URL-escaped forms), then the rules (URL passwords,
// Authorization credentials, values of secret-looking keys and flags).
// A nil *Redactor applies the rules only.
type Redactor struct {
	known []string // longest first
}

// New returns a redactor for the given known secret values; empty and
// short values (under 6 bytes) are ignored.
func New(known ...string) *Redactor {
	return (*Redactor)(nil).With(known...)
}

// With returns a redactor that also knows the given values; r is not
// changed.
func (r *Redactor) With(known ...string) *Redactor {
	out := &Redactor{}
	if r != nil {
		out.known = slices.Clone(r.known)
	}
	for _, v := range known {
		v = strings.TrimSpace(v)
		if len(v) < minKnownLen {
			continue
		}
		out.known = append(out.known, v)
		for _, esc := range []string{url.QueryEscape(v), url.PathEscape(v)} {
			if esc != v {
				out.known = append(out.known, esc)
			}
		}
	}
	// Longest first, so that a secret containing another is masked whole.
	slices.SortFunc(out.known, func(a, b string) int { return len(b) - len(a) })
	out.known = slices.Compact(out.known)
	return out
}

// String redacts one free text.
func (r *Redactor) String(v string) string {
	if v == "" {
		return v
	}
	if r != nil {
		for _, secret := range r.known {
			v = strings.ReplaceAll(v, secret, Mask)
		}
	}
	v = userinfoRE.ReplaceAllString(v, "${1}:"+Mask+"@")
	v = bearerRE.ReplaceAllString(v, "${1}${2}"+Mask)
	v = maskFlags(v)
	return maskPairs(v)
}

// Value redacts the value under a key (a label, a logging option, an
// environment variable): wholly when the key looks secret, else as text.
func (r *Redactor) Value(key, v string) string {
	if v != "" && LooksSecret(key) {
		return Mask
	}
	return r.String(v)
}

// Args redacts a command line given as words (command, entrypoint, a
// healthcheck's test): the word after a secret-looking flag
// ("--password", "x"), then each word as text ("--token=x", "KEY=x", URLs,
// "sh -c '… --password x'").
func (r *Redactor) Args(args []string) []string {
	if args == nil {
		return nil
	}
	out := make([]string, len(args))
	for i, a := range args {
		if i > 0 && isFlag(args[i-1]) && LooksSecret(args[i-1]) && !strings.Contains(args[i-1], "=") && !isFlag(a) {
			out[i] = Mask
			continue
		}
		out[i] = r.String(a)
	}
	return out
}

func isFlag(w string) bool { return len(w) > 1 && w[0] == '-' }

// Error redacts an error's text, keeping its chain for errors.Is and As;
// nil stays nil.
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	text := r.String(err.Error())
	if text == err.Error() {
		return err
	}
	return redactedError{text: text, err: err}
}

type redactedError struct {
	text string
	err  error
}

func (e redactedError) Error() string { return e.text }
func (e redactedError) Unwrap() error { return e.err }

// maskPairs masks the values of secret-looking keys. A pair whose key is
// not secret is scanned again from its value, which may hold one
// ("env: DB_PASSWORD=x", "https://h/?token=x").
func maskPairs(v string) string {
	var b strings.Builder
	pos := 0
	for pos < len(v) {
		loc := pairRE.FindStringSubmatchIndex(v[pos:])
		if loc == nil {
			break
		}
		key, sep, valStart, valEnd := v[pos+loc[2]:pos+loc[3]], v[pos+loc[4]:pos+loc[5]], pos+loc[6], pos+loc[7]
		if !secretPairKey(key) || proseKey(key, sep) || strings.HasPrefix(v[valStart:valEnd], Mask) {
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

// proseKey reports a pair that is prose about keys, not a key and its
// value: "unknown key: ingress takes …", "keys: a, b".
func proseKey(key, sep string) bool {
	return sep != "=" && (key == "key" || key == "keys")
}

// maskFlags masks the word after a secret-looking flag in a command line
// written as one text ("mysql --password hunter2 -h db").
func maskFlags(v string) string {
	return flagRE.ReplaceAllStringFunc(v, func(m string) string {
		sub := flagRE.FindStringSubmatch(m)
		if !LooksSecret(sub[2]) || strings.HasPrefix(sub[4], Mask) {
			return m
		}
		return sub[1] + sub[2] + sub[3] + Mask
	})
}
