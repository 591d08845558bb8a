package redact

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Mask stands in for a redacted value, or the redacted part of a text.
const Mask = "***"

// minKnownLen keeps a short known value ("true", "1234") from masking
// every occurrence of a common word.
const minKnownLen = 6

// secretSegments are the words that mark a name as secret when one of its
// segments (split at _ - . and camelCase) is exactly one of them: AUTH
// must not catch OAUTH2, AUTHELIA or AUTHOR, KEY not KEYCLOAK.
var secretSegments = []string{
	"PASS", "PWD", "KEY", "KEYS", "AUTH", "AUTHORIZATION", "CREDS", "PRIVATE", "APIKEY",
}

// secretInfixes are the words that mark a name as secret wherever they
// occur in a segment (DBPASSWORD, MYSECRET, GITHUBTOKEN): long enough that
// no ordinary word holds them.
var secretInfixes = []string{"PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "APIKEY", "PRIVATEKEY", "CREDENTIAL"}

// LooksSecret reports whether a key or word names a secret (PASSWORD,
// API_KEY, auth_token, --db-password, MYSQL_PWD, apiKey, …),
// case-insensitively. It judges whole segments of the name, not
// substrings: "oauth2-proxy", "keycloak" and "unauthorized" are not
// secret names.
func LooksSecret(name string) bool {
	return anySegment(name, func(seg string) bool {
		if slices.Contains(secretSegments, seg) {
			return true
		}
		return slices.ContainsFunc(secretInfixes, func(w string) bool { return strings.Contains(seg, w) })
	})
}

// anySegment reports whether f holds for one upper-cased segment of name.
func anySegment(name string, f func(string) bool) bool {
	for _, seg := range segments(name) {
		if f(strings.ToUpper(seg)) {
			return true
		}
	}
	return false
}

// segments splits a name at _ - . / and where camelCase turns upper
// (dbPassword → db, Password).
func segments(name string) []string {
	var out []string
	start := 0
	rs := []rune(name)
	for i, c := range rs {
		switch {
		case c == '_' || c == '-' || c == '.' || c == '/':
			if i > start {
				out = append(out, string(rs[start:i]))
			}
			start = i + 1
		case i > start && unicode.IsUpper(c) && unicode.IsLower(rs[i-1]):
			out = append(out, string(rs[start:i]))
			start = i
		}
	}
	if start < len(rs) {
		out = append(out, string(rs[start:]))
	}
	return out
}

// secretPairKey is LooksSecret, and signatures (sig=…) too: in free text
// a pair's key is all there is to judge it by.
func secretPairKey(k string) bool {
	return LooksSecret(k) || anySegment(k, func(seg string) bool { return seg == "SIG" || seg == "SIGNATURE" })
}

var (
	// userinfoRE matches the userinfo of scheme://userinfo@: a password
	// (which may hold an unescaped /, not ? or #) up to the first @, or a
	// user name alone.
	userinfoRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)([^/@\s:]*)(:[^@\s?#]*)?@`)
	// authorizationRE matches an Authorization header's credential, with or
	// without its scheme (Bearer, Basic, token, …): only after the word
	// Authorization, so that "basic authentication" and "invalid token
	// provided" stay.
	authorizationRE = regexp.MustCompile(`(?i)(\bauthorization["']?[ \t]*[:=][ \t]*["']?)((?:bearer|basic|token|digest|negotiate)[ \t]+)?[A-Za-z0-9._~+/=:-]+`)
	// pairRE matches KEY=value and key: value, also as URL query
	// parameters and --flag=value; the key decides whether the value is
	// masked. A value after = ends at whitespace, & or a quote (a shell
	// word, a query parameter); after ": " the whole rest of the line is
	// the value (see maskPairs).
	pairRE = regexp.MustCompile(`([A-Za-z0-9_.-]+)(=|:[ \t]*|":[ \t]*")("[^"]*"|'[^']*'|[^\s&"'<>]+)`)
	// nextPairRE is the start of the next "key: value" on a line.
	nextPairRE = regexp.MustCompile(`[ \t]+[A-Za-z0-9_.-]+:[ \t]`)
	// flagRE matches a command-line flag followed by a separate value
	// (--password hunter2); the flag decides. The value stops at a quote,
	// so that masking it never breaks the JSON or YAML it sits in.
	flagRE = regexp.MustCompile(`(^|\s)(--?[A-Za-z0-9][A-Za-z0-9_.-]*)([ \t]+)([^\s"'<>-][^\s"'<>]*)`)
	// ownPrefixRE is the end of a text that names one of fleetd's objects
	// ("service auth", "fleet tokens"): the colon after the name starts a
	// message, not a pair.
	ownPrefixRE = regexp.MustCompile(`(?i)(?:^|[\s(\[])(?:service|fleet|container|network|volume|host)[ \t]+$`)
	// imagePrefixRE is the end of a text followed by an image reference
	// (image: auth:1.0, pull auth:1.0): its tag is not a pair's value.
	imagePrefixRE = regexp.MustCompile(`(?i)(?:^|[\s"'(\[])(?:image|images|pull|pulling|push|pushing|from|tag)["']?[ \t]*[:=]?[ \t]*["']?$`)
	// tokenUserRE is a URL user name that is a token: a known token prefix,
	// or long and mixed like a key (a Sentry DSN's public key).
	tokenPrefixRE = regexp.MustCompile(`^(?:gh[pousr]_|github_pat_|glpat-|xox[abpr]-)`)
	tokenUserRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{16,}$`)
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
	slices.SortFunc(out.known, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	out.known = slices.Compact(out.known)
	return out
}

// String redacts one free text.
func (r *Redactor) String(v string) string {
	if v == "" {
		return v
	}
	v = r.knownValues(v)
	v = userinfoRE.ReplaceAllStringFunc(v, maskUserinfo)
	v = authorizationRE.ReplaceAllStringFunc(v, maskAuthorization)
	v = maskCommandFlags(v)
	v = maskFlags(v)
	return maskPairs(v)
}

// maskAuthorization masks an Authorization header's scheme and
// credential: "Authorization: *** ***", or "Authorization: ***" without a
// scheme.
func maskAuthorization(m string) string {
	sub := authorizationRE.FindStringSubmatch(m)
	if sub[2] != "" {
		return sub[1] + Mask + " " + Mask
	}
	return sub[1] + Mask
}

// Image redacts an image reference (quay.io/oauth2-proxy/oauth2-proxy:v7.6.0,
// auth:1.0): known values and URL credentials only, for its name:tag
// is not a pair.
func (r *Redactor) Image(ref string) string {
	return userinfoRE.ReplaceAllStringFunc(r.knownValues(ref), maskUserinfo)
}

func (r *Redactor) knownValues(v string) string {
	if r != nil {
		for _, secret := range r.known {
			v = strings.ReplaceAll(v, secret, Mask)
		}
	}
	return v
}

// maskUserinfo masks a URL's password, or its user name when that is a
// token (https://ghp_x@github.com, a Sentry DSN's key); a plain user name
// (deploy, git) stays.
func maskUserinfo(m string) string {
	sub := userinfoRE.FindStringSubmatch(m)
	scheme, user, pass := sub[1], sub[2], sub[3]
	switch {
	case pass != "":
		return scheme + user + ":" + Mask + "@"
	case tokenUser(user):
		return scheme + Mask + "@"
	}
	return m
}

// tokenUser reports a URL user name that is a token: a known token
// prefix, or 16 and more letters and digits, mixed, like a key.
func tokenUser(user string) bool {
	if tokenPrefixRE.MatchString(user) {
		return true
	}
	return tokenUserRE.MatchString(user) && hasDigitAndLetter(user)
}

func hasDigitAndLetter(s string) bool {
	return strings.ContainsFunc(s, unicode.IsDigit) && strings.ContainsFunc(s, unicode.IsLetter)
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
// ("--password", "x") or after a command's password flag ("redis-cli",
// "-a", "x"; "mysql", "-px"), then each word as text ("--token=x",
// "KEY=x", URLs, "sh -c '… --password x'").
func (r *Redactor) Args(args []string) []string {
	if args == nil {
		return nil
	}
	out := make([]string, len(args))
	cmd := ""
	for i, a := range args {
		if _, ok := commandFlags[baseName(a)]; ok {
			cmd = baseName(a)
		}
		if i > 0 && isFlag(args[i-1]) && LooksSecret(args[i-1]) && !strings.Contains(args[i-1], "=") && !isFlag(a) {
			out[i] = Mask
			continue
		}
		prev := ""
		if i > 0 {
			prev = args[i-1]
		}
		if masked, ok := commandFlagWord(cmd, prev, a); ok {
			out[i] = masked
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
// ("env: DB_PASSWORD=x", "https://h/?token=x"). These are not pairs: a
// name after a / (an image's repository:tag, a path), an image reference
// after image or pull, fleetd's own "service auth:" and "fleet tokens:",
// and prose about keys. The value of "key: value" is the rest of the
// line (a password may hold spaces), up to a quote the pair sits in.
func maskPairs(v string) string {
	var b strings.Builder
	pos := 0
	for pos < len(v) {
		loc := pairRE.FindStringSubmatchIndex(v[pos:])
		if loc == nil {
			break
		}
		keyStart := pos + loc[2]
		key, sep, valStart, valEnd := v[keyStart:pos+loc[3]], v[pos+loc[4]:pos+loc[5]], pos+loc[6], pos+loc[7]
		if !secretPairKey(key) || notPair(v, keyStart, key, sep) || strings.HasPrefix(v[valStart:valEnd], Mask) {
			b.WriteString(v[pos:valStart])
			pos = valStart
			continue
		}
		if spaced(sep) && v[valStart] != '"' && v[valStart] != '\'' {
			valEnd = lineEnd(v, keyStart, valStart)
		}
		b.WriteString(v[pos:valStart])
		b.WriteString(Mask)
		pos = valEnd
	}
	b.WriteString(v[pos:])
	return b.String()
}

// notPair reports a match of pairRE that is not a key and its value.
func notPair(v string, keyStart int, key, sep string) bool {
	before := v[:keyStart]
	switch {
	case strings.HasSuffix(before, "/"), strings.HasSuffix(before, "@"):
		return true // repository:tag, a path
	case sep == "=":
		return false
	case key == "key" || key == "keys":
		return true // "unknown key: ingress takes …", "keys: a, b"
	case ownPrefixRE.MatchString(before):
		return true
	case sep == ":" && imagePrefixRE.MatchString(before):
		return true
	}
	return false
}

// spaced reports "key: value", whose value is the rest of the line.
func spaced(sep string) bool {
	return strings.HasPrefix(sep, ":") && len(sep) > 1 && !strings.HasSuffix(sep, `"`)
}

// lineEnd is where the value of a "key: value" pair ends: the end of the
// line, the next "key: " on it ("api_key: x mode: fast"), or the quote
// that opened just before the key ('Authorization: Bearer x' in a shell
// word, "password: x y" in a JSON string).
func lineEnd(v string, keyStart, valStart int) int {
	end := len(v)
	if i := strings.IndexAny(v[valStart:], "\r\n"); i >= 0 {
		end = valStart + i
	}
	if loc := nextPairRE.FindStringIndex(v[valStart:end]); loc != nil {
		end = valStart + loc[0]
	}
	if keyStart > 0 && (v[keyStart-1] == '"' || v[keyStart-1] == '\'') {
		if i := strings.IndexByte(v[valStart:end], v[keyStart-1]); i >= 0 {
			end = valStart + i
		}
	}
	// Keep trailing blanks, so the line's layout stays.
	for end > valStart && (v[end-1] == ' ' || v[end-1] == '\t') {
		end--
	}
	return end
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
