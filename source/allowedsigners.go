package source

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// allowedSigner is one line of an allowed_signers file (ssh-keygen(1),
// ALLOWED SIGNERS): who, which key, and the options git honours.
type allowedSigner struct {
	Principals string
	Key        ssh.PublicKey
	// Namespaces are patterns of the namespaces the key may sign in (none:
	// any); ValidAfter and ValidBefore bound the signature's time (zero:
	// unbounded).
	Namespaces              []string
	ValidAfter, ValidBefore time.Time
}

// parseAllowedSigners reads an allowed_signers file:
//
//	principals [options] keytype base64-key [comment]
//
// with '#' comments and blank lines. principals is a comma-separated list
// of patterns, quoted if it holds spaces; options are namespaces="...",
// valid-after="..." and valid-before="..." (YYYYMMDD[HHMM[SS]][Z]).
// cert-authority (keys signed by a CA) is refused: fleetd checks the
// keys themselves.
func parseAllowedSigners(text string) ([]allowedSigner, error) {
	var out []allowedSigner
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseAllowedSigner(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseAllowedSigner(line string) (allowedSigner, error) {
	principals, rest, err := cutPrincipals(line)
	if err != nil {
		return allowedSigner{}, err
	}
	key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(rest))
	if err != nil {
		return allowedSigner{}, fmt.Errorf("principals %q: no public key after them: %w", principals, err)
	}
	s := allowedSigner{Principals: principals, Key: key}
	for _, opt := range options {
		name, value, _ := strings.Cut(opt, "=")
		value = strings.Trim(value, `"`)
		switch strings.ToLower(name) {
		case "namespaces":
			s.Namespaces = strings.Split(value, ",")
		case "valid-after":
			if s.ValidAfter, err = parseSignerTime(value); err != nil {
				return s, fmt.Errorf("valid-after: %w", err)
			}
		case "valid-before":
			if s.ValidBefore, err = parseSignerTime(value); err != nil {
				return s, fmt.Errorf("valid-before: %w", err)
			}
		case "cert-authority":
			return s, errors.New("cert-authority is not supported: list the signers' keys themselves")
		default:
			return s, fmt.Errorf("unknown option %q (namespaces, valid-after, valid-before)", name)
		}
	}
	return s, nil
}

// cutPrincipals splits off the first field, quoted or not.
func cutPrincipals(line string) (string, string, error) {
	if strings.HasPrefix(line, `"`) {
		end := strings.Index(line[1:], `"`)
		if end < 0 {
			return "", "", errors.New("unterminated quoted principals")
		}
		return line[1 : end+1], strings.TrimSpace(line[end+2:]), nil
	}
	principals, rest, ok := strings.Cut(line, " ")
	if !ok {
		principals, rest, ok = strings.Cut(line, "\t")
	}
	if !ok {
		return "", "", errors.New("want principals, then a public key")
	}
	return principals, strings.TrimSpace(rest), nil
}

// parseSignerTime reads ssh-keygen's YYYYMMDD[HHMM[SS]], in UTC with a
// trailing Z and in local time otherwise.
func parseSignerTime(v string) (time.Time, error) {
	loc := time.Local
	if strings.HasSuffix(v, "Z") || strings.HasSuffix(v, "z") {
		v, loc = v[:len(v)-1], time.UTC
	}
	layouts := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(v)]
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not YYYYMMDD[HHMM[SS]][Z]", v)
	}
	t, err := time.ParseInLocation(layout, v, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not YYYYMMDD[HHMM[SS]][Z]", v)
	}
	return t, nil
}

// allows says why the signer may not sign in namespace at time when, or ""
// when it may.
func (s allowedSigner) allows(namespace string, when time.Time) string {
	if len(s.Namespaces) > 0 && !matchPatterns(s.Namespaces, namespace) {
		return fmt.Sprintf("only for namespaces %q", strings.Join(s.Namespaces, ","))
	}
	if !s.ValidAfter.IsZero() && when.Before(s.ValidAfter) {
		return "only for commits after " + s.ValidAfter.UTC().Format(time.RFC3339)
	}
	if !s.ValidBefore.IsZero() && !when.Before(s.ValidBefore) {
		return "only for commits before " + s.ValidBefore.UTC().Format(time.RFC3339)
	}
	return ""
}

// matchPatterns matches name against ssh's pattern lists: * and ?
// wildcards, a leading ! negates (a negated match wins).
func matchPatterns(patterns []string, name string) bool {
	matched := false
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		negated := strings.HasPrefix(p, "!")
		ok, _ := path.Match(strings.TrimPrefix(p, "!"), name)
		switch {
		case ok && negated:
			return false
		case ok:
			matched = true
		}
	}
	return matched
}
