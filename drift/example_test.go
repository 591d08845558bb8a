package drift_test

import (
	"fmt"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

func ExampleText() {
	api := service("api", 3)
	desired := []fleets.Fleet{fleet("web", service("api", 3, func(s *fleets.Service) { s.Spec.Image = "app:v2" }))}
	obs := snapshot([]fleets.Fleet{fleet("web", api)})
	remove(&obs, "web-api-3")
	c := find(&obs, "web-api-2")
	c.State, c.Status = "exited", "Exited (137) 3 seconds ago"
	obs.Containers = append(obs.Containers, unmanaged("web-api-3"))
	fmt.Print(drift.Text(drift.Diff(desired, obs)))
	// Output:
	// fleet web
	//   service api
	//     web-api-1  spec        image: app:v1 → app:v2
	//     web-api-2  spec        image: app:v1 → app:v2
	//     web-api-2  stopped     Exited (137) 3 seconds ago
	//     web-api-3  missing
	//     web-api-3  conflict    an unmanaged container holds the name; fleetd will not remove it
}
