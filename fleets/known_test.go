package fleets

import (
	"errors"
	"strings"
	"testing"
)

// TestComposeErrRedacts: compose-go echoes the value it rejects; a
// problem built from its message shows neither a known secret (a .env
// value under a secret-looking key) nor any quoted value of a field whose
// path looks secret.
func TestComposeErrRedacts(t *testing.T) {
	r := &report{fleet: "shop", dir: "shop"}
	r.knowSecrets(map[string]string{"DB_PASSWORD": "from-dotenv-1", "PORT": "80"})
	r.composeErr(errors.New(`error while interpolating services.web.cpus: failed to cast to expected type: strconv.ParseFloat: parsing "from-dotenv-1": invalid syntax`))
	r.composeErr(errors.New(`services.web.labels.api-token "literal-2" is not a string`))
	r.composeErr(errors.New(`services.web.ports "80" is invalid`))
	got := r.problems.Error()
	for _, secret := range []string{"from-dotenv-1", "literal-2"} {
		if strings.Contains(got, secret) {
			t.Errorf("problems leak %q:\n%s", secret, got)
		}
	}
	if !strings.Contains(got, `ports: "80" is invalid`) || !strings.Contains(got, "want a number") {
		t.Errorf("problems lost what is not secret:\n%s", got)
	}
}
