package drift_test

import (
	"testing"

	"github.com/fleetd/fleetd/drift"
)

func TestText(t *testing.T) {
	items := []drift.Item{
		{Fleet: "", Service: "db", Container: "web-db-1", Kind: drift.Modified, Detail: "labels tampered: label io.fleetd.fleet is missing"},
		{Fleet: "web", Service: "", Container: "web_default", Kind: drift.Conflict, Detail: "an unmanaged network holds the name of network default"},
		{Fleet: "web", Service: "api", Container: "web-api-1", Slot: 1, Kind: drift.SpecChange,
			Fields: []drift.Field{{Field: "image", Want: "app:v2", Have: "app:v1"}}},
		{Fleet: "web", Service: "api", Container: "web-api-2", Slot: 2, Kind: drift.Stopped, Detail: "Exited (137) 3 seconds ago"},
		{Fleet: "web", Service: "api", Container: "web-api-3", Slot: 3, Kind: drift.Missing},
		{Fleet: "web", Service: "db", Container: "web-db-1", Slot: 1, Kind: drift.Modified, Detail: "changed out of band",
			Fields: []drift.Field{{Field: "resources.memory", Want: "268435456", Have: "1073741824"}, {Field: "restart", Want: "always", Have: ""}}},
	}
	want := `fleet (unlabelled)
  service db
    web-db-1     modified    labels tampered: label io.fleetd.fleet is missing
fleet web
  networks
    web_default  conflict    an unmanaged network holds the name of network default
  service api
    web-api-1    spec        image: app:v1 → app:v2
    web-api-2    stopped     Exited (137) 3 seconds ago
    web-api-3    missing
  service db
    web-db-1     modified    changed out of band
                             resources.memory: 1073741824 → 268435456
                             restart: (none) → always
`
	if got := drift.Text(items); got != want {
		t.Errorf("Text:\n%s\nwant:\n%s", got, want)
	}
	if got := drift.Text(nil); got != "in sync\n" {
		t.Errorf("Text(nil) = %q", got)
	}
}
