package dockertest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
)

const (
	// runIDPrefix starts every RunID, so leftovers of crashed runs are
	// recognisable ("docker ps -a --filter name=fdt").
	runIDPrefix = "fdt"
	// maxNameLen keeps "<name>-<service>-<slot>" and "<name>_<network>"
	// readable and well under every Docker and Compose limit.
	maxNameLen = 40
)

var runID = sync.OnceValue(newRunID)

func newRunID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b) // never fails on supported platforms
	return runIDPrefix + hex.EncodeToString(b)
}

// RunID identifies this test process: "fdt" and 6 random hex characters. Every
// object named by [Name] or created by this package carries it, in its name or
// in the label [LabelTestRun].
func RunID() string { return runID() }

// Name returns "<RunID>-<base>", with base lowercased and reduced to letters,
// digits and single dashes, so that it is a valid container, network, volume
// and Compose project name. Names longer than 40 characters are shortened and
// end in a hash of base, so distinct bases stay distinct. Tests that run in
// parallel in one process must use distinct bases.
func Name(t testing.TB, base string) string {
	t.Helper()
	s := sanitise(base)
	if s == "" {
		t.Fatalf("dockertest.Name(%q): base has no letters or digits", base)
	}
	return RunID() + "-" + shorten(s, base, maxNameLen-len(RunID())-1)
}

func sanitise(base string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(base) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
			continue
		}
		dash = true
	}
	return b.String()
}

func shorten(s, base string, limit int) string {
	if len(s) <= limit {
		return s
	}
	sum := sha256.Sum256([]byte(base))
	suffix := "-" + hex.EncodeToString(sum[:3])
	return strings.TrimRight(s[:limit-len(suffix)], "-") + suffix
}
