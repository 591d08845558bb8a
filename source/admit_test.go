package source

import (
	"strings"
	"testing"
	"time"
)

func TestAdmit(t *testing.T) {
	t.Parallel()
	const head, prev = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	good := signature{State: sigGood, Signer: "Ada"}
	cases := []struct {
		name   string
		in     admission
		reason string // "" taken
		says   string
	}{
		{"no trust, first head", admission{Line: lineFirst}, "", ""},
		{"no trust, descends", admission{Line: lineDescends}, "", ""},
		{"trusted signer, descends", admission{Sig: good, Line: lineDescends}, "", ""},
		{"unsigned", admission{Sig: signature{State: sigUnsigned, Why: "it is not signed"}, Line: lineDescends}, ReasonUntrusted, "not signed"},
		{"unknown key", admission{Sig: signature{State: sigUnknownKey, Why: "unknown key K"}, Line: lineFirst}, ReasonUntrusted, "unknown key K"},
		{"bad signature", admission{Sig: signature{State: sigBad, Why: "does not verify"}, Line: lineDescends}, ReasonUntrusted, "does not verify"},
		{"untrusted wins over rewind", admission{Sig: signature{State: sigUnsigned, Why: "it is not signed"}, Line: lineRewind}, ReasonUntrusted, "not signed"},
		{"allow_rewind does not allow untrusted", admission{Sig: signature{State: sigBad, Why: "bad"}, Line: lineUnrelated, AllowRewind: true}, ReasonUntrusted, "bad"},
		{"rewind", admission{Sig: good, Line: lineRewind}, ReasonRewind, "ancestor of 2222222"},
		{"unrelated", admission{Line: lineUnrelated}, ReasonRewind, "does not descend from 2222222"},
		{"rewind allowed", admission{Sig: good, Line: lineRewind, AllowRewind: true}, "", ""},
		{"unrelated allowed", admission{Line: lineUnrelated, AllowRewind: true}, "", ""},
		{"the last revision's commit gone from the clone", admission{Line: lineUnknown}, ReasonRewind, "gone from fleetd's clone"},
		{"the last revision's commit gone, rewinds allowed", admission{Line: lineUnknown, AllowRewind: true}, "", ""},
	}
	for _, c := range cases {
		c.in.Head, c.in.Prev = head, prev
		got := admit(c.in)
		switch {
		case c.reason == "" && got != nil:
			t.Errorf("%s: refused %+v, want taken", c.name, got)
		case c.reason != "" && got == nil:
			t.Errorf("%s: taken, want refused %s", c.name, c.reason)
		case c.reason != "" && (got.Reason != c.reason || got.Commit != head || !strings.Contains(got.Why, c.says)):
			t.Errorf("%s: refused %+v, want %s saying %q", c.name, got, c.reason, c.says)
		}
	}
}

func TestAllowedSigners(t *testing.T) {
	t.Parallel()
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAo3D7CGN01tTYY/dLKXEv8RxRyxa32c51X0uKMhnMab"
	file := strings.Join([]string{
		"# comment",
		"",
		"ada@example.com " + key + " laptop",
		`"ada lovelace,bob@example.com" namespaces="git,file",valid-after="20240101Z",valid-before="202501011230Z" ` + key,
		"\t*@example.com namespaces=\"!git,*\" " + key,
	}, "\n")
	signers, err := parseAllowedSigners(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(signers) != 3 {
		t.Fatalf("%d signers, want 3", len(signers))
	}
	if signers[1].Principals != "ada lovelace,bob@example.com" {
		t.Errorf("quoted principals = %q", signers[1].Principals)
	}
	jan := func(y int) time.Time { return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC) }
	cases := []struct {
		signer int
		ns     string
		when   time.Time
		says   string // "" allowed
	}{
		{0, "git", jan(2000), ""},
		{1, "git", jan(2024).Add(time.Hour), ""},
		{1, "git", jan(2023), "after 2024-01-01"},
		{1, "git", time.Date(2025, 1, 1, 12, 30, 0, 0, time.UTC), "before 2025-01-01T12:30"},
		{1, "other", jan(2024).Add(time.Hour), `only for namespaces "git,file"`},
		{2, "git", jan(2024), "only for namespaces"},
		{2, "file", jan(2024), ""},
	}
	for _, c := range cases {
		got := signers[c.signer].allows(c.ns, c.when)
		if (c.says == "") != (got == "") || !strings.Contains(got, c.says) {
			t.Errorf("signer %d allows(%s, %s) = %q, want %q", c.signer, c.ns, c.when, got, c.says)
		}
	}
	for _, bad := range []string{
		"ada",                            // no key
		`"ada ` + key,                    // unterminated quote
		"ada foo=bar " + key,             // unknown option
		`ada valid-before="2024" ` + key, // bad time
		"ada ssh-ed25519 not-base64",     // bad key
		"ada cert-authority " + key,      // CA keys unsupported
	} {
		if _, err := parseAllowedSigners(bad); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("parseAllowedSigners(%q) = %v, want an error at line 1", bad, err)
		}
	}
}
