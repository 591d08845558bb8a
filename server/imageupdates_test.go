package server

import (
	"strings"
	"testing"
)

func TestImageUpdateSeries(t *testing.T) {
	m := NewMetrics()
	srv := New(Config{}, m)
	m.SetImageUpdate("a", "web", "registry.example/app:1", true)
	m.SetImageUpdate("b", "db", "registry.example/db:16", false)
	text := scrape(t, srv)
	hasLine(t, text, `fleetd_image_update_available{fleet="a",image="registry.example/app:1",service="web"} 1`)
	hasLine(t, text, `fleetd_image_update_available{fleet="b",image="registry.example/db:16",service="db"} 0`)
	m.SetImageUpdate("a", "web", "registry.example/app:1", false)
	m.ForgetFleet("b")
	text = scrape(t, srv)
	hasLine(t, text, `fleetd_image_update_available{fleet="a",image="registry.example/app:1",service="web"} 0`)
	if strings.Contains(text, `fleetd_image_update_available{fleet="b"`) {
		t.Error("a forgotten fleet's image series is still exposed")
	}
	var nilMetrics *Metrics
	nilMetrics.SetImageUpdate("a", "web", "x", true) // must not panic
}
