package redact

import (
	"regexp"
	"strings"
)

// commandFlag is how a command takes a password in a short flag, which
// no name rule can judge ("-a" is secret to redis-cli only).
type commandFlag struct {
	flags    []string // the flags that carry the password
	attached bool     // the password may follow the flag in the same word (-ppw)
	separate bool     // the password may be the next word (-a pw)
	userinfo bool     // the value is user:password; only the password is masked
}

// commandFlags are the commands whose short flags carry a password.
var commandFlags = map[string]commandFlag{
	"redis-cli":    {flags: []string{"-a"}, separate: true},
	"sshpass":      {flags: []string{"-p"}, attached: true, separate: true},
	"mysql":        {flags: []string{"-p"}, attached: true}, // "-p db" prompts, db is the database
	"mysqldump":    {flags: []string{"-p"}, attached: true},
	"mysqladmin":   {flags: []string{"-p"}, attached: true},
	"mariadb":      {flags: []string{"-p"}, attached: true},
	"mariadb-dump": {flags: []string{"-p"}, attached: true},
	"curl":         {flags: []string{"-u", "--user", "-U", "--proxy-user"}, attached: true, separate: true, userinfo: true},
}

// commandRE finds a command of commandFlags in a text, as a word or the
// last part of a path (/usr/bin/redis-cli).
var commandRE = regexp.MustCompile(`(?:^|[\s/'"(;&|])(redis-cli|sshpass|mysqldump|mysqladmin|mysql|mariadb-dump|mariadb|curl)(?:\s|$)`)

// wordRE is a shell word of a command's arguments; ; | & and a newline end
// the command.
var wordRE = regexp.MustCompile(`[^\s;|&]+|[;|&\n]`)

func baseName(word string) string {
	return word[strings.LastIndexByte(word, '/')+1:]
}

// commandFlagWord masks word when, in a line of command cmd, it carries a
// password after prev: "-a", "pw" for redis-cli; "-ppw" for mysql;
// "-u", "user:pw" for curl.
func commandFlagWord(cmd, prev, word string) (string, bool) {
	cf, ok := commandFlags[cmd]
	if !ok || strings.HasPrefix(word, Mask) {
		return "", false
	}
	for _, f := range cf.flags {
		switch {
		case cf.separate && prev == f && !isFlag(word):
			return maskFlagValue(cf, word), true
		case cf.attached && strings.HasPrefix(word, f) && len(word) > len(f) && !strings.HasPrefix(word, "--") || cf.attached && strings.HasPrefix(word, f+"=") && len(word) > len(f)+1:
			value := strings.TrimPrefix(word[len(f):], "=")
			if value == "" || strings.HasPrefix(value, Mask) {
				return "", false
			}
			return word[:len(word)-len(value)] + maskFlagValue(cf, value), true
		}
	}
	return "", false
}

func maskFlagValue(cf commandFlag, value string) string {
	if !cf.userinfo {
		return Mask
	}
	user, _, ok := strings.Cut(value, ":")
	if !ok {
		return value // curl prompts for the password
	}
	return user + ":" + Mask
}

// maskCommandFlags masks the passwords of commandFlags in a command line
// written as one text ("redis-cli -a pw ping && mysql -ppw db").
func maskCommandFlags(v string) string {
	locs := commandRE.FindAllStringSubmatchIndex(v, -1)
	if locs == nil {
		return v
	}
	var b strings.Builder
	pos := 0
	for _, loc := range locs {
		if loc[2] < pos {
			continue
		}
		cmd := v[loc[2]:loc[3]]
		prev := ""
		for _, w := range wordRE.FindAllStringIndex(v[loc[3]:], -1) {
			start, end := loc[3]+w[0], loc[3]+w[1]
			word := v[start:end]
			if strings.ContainsAny(word, ";|&\n") {
				break
			}
			if masked, ok := commandFlagWord(cmd, prev, strings.Trim(word, `"'`)); ok {
				// A word quoted as a whole keeps its quotes.
				inner := strings.Trim(word, `"'`)
				off := strings.Index(word, inner)
				b.WriteString(v[pos : start+off])
				b.WriteString(masked)
				pos = start + off + len(inner)
			}
			prev = word
		}
	}
	b.WriteString(v[pos:])
	return b.String()
}
