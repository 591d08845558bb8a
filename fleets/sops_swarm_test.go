package fleets

import (
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/fleetd/fleetd/redact"
)

// TestWithSopsEnvSwarm: a swarm fleet with an encrypted env_file is
// invalid, and its service keeps none of the plaintext, in Environment or
// SecretEnv.
func TestWithSopsEnvSwarm(t *testing.T) {
	c := &converter{fleet: &Fleet{Engine: EngineSwarm}, r: &report{red: redact.New()}}
	svc := &Service{Spec: Spec{Environment: map[string]string{"DB_PASSWORD": "hunter2", "MODE": "prod"}}}
	s := types.ServiceConfig{Name: "api", Extensions: types.Extensions{
		sopsEnvKey: map[string]SecretValue{"DB_PASSWORD": {Digest: "d"}},
	}}
	c.withSopsEnv(svc, s)
	if len(c.r.problems) != 1 {
		t.Errorf("problems %v, want the swarm refusal", c.r.problems)
	}
	if _, ok := svc.Spec.Environment["DB_PASSWORD"]; ok || svc.Spec.Environment["MODE"] != "prod" || svc.Spec.SecretEnv != nil {
		t.Errorf("environment %v, secret env %v; want DB_PASSWORD in neither", svc.Spec.Environment, svc.Spec.SecretEnv)
	}
}
