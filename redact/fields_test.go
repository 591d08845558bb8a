package redact_test

import (
	"strings"
	"testing"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// TestImageBumpShown: a review of an image bump shows both references,
// whatever words their names hold.
func TestImageBumpShown(t *testing.T) {
	for _, bump := range [][2]string{
		{"quay.io/oauth2-proxy/oauth2-proxy:v7.6.0", "quay.io/oauth2-proxy/oauth2-proxy:v7.7.0"},
		{"quay.io/keycloak/keycloak:24.0", "quay.io/keycloak/keycloak:25.0"},
		{"authelia/authelia:4.38", "authelia/authelia:4.39"},
		{"passbolt/passbolt:4.9.0-1-ce", "passbolt/passbolt:4.10.0-1-ce"},
		{"ghcr.io/acme/auth-service:1.2.0", "ghcr.io/acme/auth-service:1.3.0"},
		{"auth:1.0", "auth:1.1"},
	} {
		svc := fleets.Service{Name: "auth", Spec: fleets.Spec{Image: bump[1]}}
		fields := drift.SpecFields(svc, fleets.Spec{Image: bump[0]})
		if len(fields) != 1 || fields[0].Have != bump[0] || fields[0].Want != bump[1] {
			t.Errorf("%s → %s: %+v", bump[0], bump[1], fields)
		}
	}
	svc := fleets.Service{Name: "auth", Spec: fleets.Spec{Image: "app:v2", Environment: map[string]string{"MYSQL_PWD": "pw"}}}
	for _, f := range drift.SpecFields(svc, fleets.Spec{Image: "app:v1"}) {
		if strings.Contains(f.Want, "pw") {
			t.Errorf("MYSQL_PWD shown: %+v", f)
		}
	}
}
