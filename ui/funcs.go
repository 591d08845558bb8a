package ui

import (
	"html/template"
	"net/url"
	"time"

	"github.com/fleetd/fleetd/reconcile"
)

// funcs are the templates' helpers; every value they return is escaped
// by html/template like any other.
var funcs = template.FuncMap{
	"short":       reconcile.ShortHash,
	"pausedHosts": PausedHosts,
	"ago":         Ago,
	// took shows a step's duration to a tenth of a second: 3.2s.
	"took": func(d time.Duration) string { return d.Round(100 * time.Millisecond).String() },
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	// query builds a query string; it is marked as a URL, for its
	// values are escaped already (html/template would escape = and &).
	"query": func(kv ...string) template.URL {
		q := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				q.Set(kv[i], kv[i+1])
			}
		}
		return template.URL(q.Encode())
	},
	"condClass": func(status string) string {
		switch status {
		case "True":
			return "yes"
		case "False":
			return "no"
		}
		return "unknown"
	},
}
