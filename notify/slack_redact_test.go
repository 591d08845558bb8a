package notify

import (
	"strings"
	"testing"
)

// TestSlackTextRedacted: what Slack receives (text and blocks) says what
// happened and where, with a secret of Options.Secrets and the webhook
// URL masked.
func TestSlackTextRedacted(t *testing.T) {
	f := newFakeSlack(t)
	s := hookSlack(t, f)
	hookURL := f.URL + "/hook/T000/B000/XXXXSECRETXXXX"
	deliver(t, s, hookURL, hookURL)
	p := f.next(t)
	all := p.Text + "\n" + p.Blocks
	for _, w := range []string{"Rollout failed: app", "web @ h1", "batch failed with token " + Mask, "pull: auth with " + Mask + " refused"} {
		if !strings.Contains(all, w) {
			t.Errorf("missing %q in\n%s", w, all)
		}
	}
	for _, secret := range []string{optionSecret, "XXXXSECRETXXXX"} {
		if strings.Contains(all, secret) {
			t.Errorf("secret %q reached Slack:\n%s", secret, all)
		}
	}
}
