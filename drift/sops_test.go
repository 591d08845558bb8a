package drift

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/fleets"
)

// TestSpecFieldsSecretEnv: a changed value of a SOPS-encrypted env file
// shows as a changed field, redacted even when public_env names its key.
func TestSpecFieldsSecretEnv(t *testing.T) {
	var want, have fleets.Spec
	if err := json.Unmarshal([]byte(`{"image":"x","secret_env":{"DATABASE_URL":"hmac-sha256:aaaa"}}`), &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`{"image":"x","secret_env":{"DATABASE_URL":"hmac-sha256:bbbb"}}`), &have); err != nil {
		t.Fatal(err)
	}
	fields := SpecFields(fleets.Service{Name: "api", Spec: want, PublicEnv: []string{"DATABASE_URL"}}, have)
	if len(fields) != 1 {
		t.Fatalf("fields %+v, want secret_env.DATABASE_URL", fields)
	}
	got := strings.Join([]string{fields[0].Field, fields[0].Want, fields[0].Have}, " ")
	if got != "secret_env.DATABASE_URL "+Redacted+" "+Redacted {
		t.Errorf("field %q", got)
	}
}
