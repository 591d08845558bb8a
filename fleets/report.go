package fleets

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/fleetd/fleetd/redact"
)

// report collects the problems of one fleet and places each at the file
// and line that define its field.
type report struct {
	fleet    string
	dir      string // the fleet's directory, slash, relative to the repository path
	absRoot  string // the repository path, absolute, to shorten paths in messages
	files    []*composeFile
	problems ProblemList
	// red redacts every message: compose-go's echo the values they
	// reject, which may be the fleet's secrets (see redactQuoted).
	red *redact.Redactor
}

// knowSecrets makes the report redact the values under secret-looking
// keys of the interpolation environment (.env), wherever a message
// echoes them.
func (r *report) knowSecrets(env map[string]string) {
	var known []string
	for k, v := range env {
		if redact.LooksSecret(k) {
			known = append(known, v)
		}
	}
	r.red = redact.New(known...)
}

// fleetf reports a fleet-level problem; field is a dotted path from the top
// of the compose file ("networks.front").
func (r *report) fleetf(field, format string, args ...any) {
	r.add("", field, splitPath(field), fmt.Sprintf(format, args...))
}

// servicef reports a problem of a service; field is a dotted path inside
// the service ("deploy.replicas").
func (r *report) servicef(service, field, format string, args ...any) {
	path := append([]string{"services", service}, splitPath(field)...)
	r.add(service, field, path, fmt.Sprintf(format, args...))
}

// fileErr reports a problem that concerns one file rather than a field.
func (r *report) fileErr(rel string, line int, err error) {
	r.problems = append(r.problems, Problem{File: rel, Line: line, Fleet: r.fleet, Message: r.red.String(r.shorten(err.Error()))})
}

func (r *report) add(service, field string, path []string, msg string) {
	file, line := locate(r.files, path)
	if file == "" {
		file = r.dir
	}
	r.problems = append(r.problems, Problem{
		File: file, Line: line, Fleet: r.fleet, Service: service, Field: field,
		Message: r.red.String(r.shorten(msg)),
	})
}

// shorten makes absolute paths in a message relative to the repository, so
// that messages do not depend on where the revision is checked out.
// It also folds a multi-line message (mapstructure's) onto one line.
func (r *report) shorten(msg string) string {
	msg = newlines.ReplaceAllString(strings.TrimSpace(msg), ": ")
	if r.absRoot == "" {
		return msg
	}
	msg = replacePath(msg, r.absRoot, "")
	if parent := filepath.Dir(r.absRoot); parent != "/" {
		msg = replacePath(msg, parent, "..") // the rest of the checkout, above the fleets' path
	}
	return msg
}

// replacePath replaces the directory dir in msg, where it is a whole path
// or a path's leading directories, by rel ("" for none: "dir/x" becomes
// "x", "dir" itself "."). "/srv/fleets2" is not inside "/srv/fleets".
func replacePath(msg, dir, rel string) string {
	var b strings.Builder
	for {
		i := strings.Index(msg, dir)
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		b.WriteString(msg[:i])
		rest := msg[i+len(dir):]
		switch {
		case strings.HasPrefix(rest, "/") && rel == "":
			rest = rest[1:]
		case strings.HasPrefix(rest, "/"):
			b.WriteString(rel)
		case rest == "" || !isPathByte(rest[0]):
			b.WriteString(cmpOr(rel, "."))
		default:
			b.WriteString(dir) // another name that starts the same
		}
		msg = rest
	}
}

func isPathByte(c byte) bool {
	return c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func (r *report) failed() bool { return len(r.problems) > 0 }

func splitPath(field string) []string {
	if field == "" {
		return nil
	}
	return strings.Split(field, ".")
}

var (
	newlines    = regexp.MustCompile(`:?\s*\n\s*`)
	schemaError = regexp.MustCompile(`^validating (\S+): (\S+) (.*)$`)
	interpError = regexp.MustCompile(`^error while interpolating (\S+): (.*)$`)
	pathError   = regexp.MustCompile(`^(services\.[^ :]+|networks\.[^ :]+|volumes\.[^ :]+|secrets\.[^ :]+|configs\.[^ :]+)(?::)? (.*)$`)
)

// castError is compose-go's message for a value of the wrong type after
// interpolation, with Go's strconv error in it.
var castError = regexp.MustCompile(`^failed to cast to expected type: strconv\.(\w+): parsing "(.*)": (.*)$`)

// plainCast says a cast failure in the user's words: what was expected,
// and the value given.
func plainCast(msg string) string {
	m := castError.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	want := "a number"
	switch m[1] {
	case "Atoi", "ParseInt", "ParseUint":
		want = "a whole number"
	case "ParseBool":
		want = "true or false"
	}
	if m[3] == "value out of range" {
		return fmt.Sprintf("%q is out of range", m[2])
	}
	return fmt.Sprintf("want %s, not %q", want, m[2])
}

// composeErr turns an error from compose-go into a problem, recovering the
// field path its message names so that the problem gets a line.
func (r *report) composeErr(err error) {
	msg := err.Error()
	if m := schemaError.FindStringSubmatch(msg); m != nil {
		detail := redactQuoted(m[2], m[3])
		if detail == "false schema" {
			detail = unknownKey(m[2])
		}
		r.atPath(m[2], detail)
		return
	}
	if m := interpError.FindStringSubmatch(msg); m != nil {
		r.atPath(m[1], "invalid value after interpolation: "+redactQuoted(m[1], plainCast(m[2])))
		return
	}
	if msg == "project name must not be empty" {
		r.fleetf("name", "invalid fleet name \"\": the directory's name has no usable character; set name:")
		return
	}
	if m := pathError.FindStringSubmatch(msg); m != nil {
		r.atPath(m[1], redactQuoted(m[1], m[2]))
		return
	}
	r.add("", "", nil, msg)
}

// quoted is a double-quoted value in a compose-go message.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// redactQuoted masks the quoted values of a compose-go message about a
// field whose path looks secret (services.db.environment.DB_PASSWORD,
// labels.api-token): compose-go echoes the value it rejects, and there the
// value is the secret. Values elsewhere are left to the report's known
// values, since a message without its value ("want a number, not
// \"2O\"") is hard to act on.
func redactQuoted(path, msg string) string {
	if !redact.LooksSecret(path) {
		return msg
	}
	return quoted.ReplaceAllString(msg, `"`+redact.Mask+`"`)
}

// atPath reports msg at a dotted compose path, as a service problem when the
// path is inside a service.
func (r *report) atPath(path, msg string) {
	parts := splitPath(path)
	if len(parts) >= 2 && parts[0] == "services" {
		r.add(parts[1], strings.Join(parts[2:], "."), parts, msg)
		return
	}
	r.add("", path, parts, msg)
}
