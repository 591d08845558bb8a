package source_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/fleetd/fleetd/source"
)

// BenchmarkHeadUnchanged is the cost of a poll when nothing changed: one
// ref advertisement and a comparison. Over HTTP it includes git
// http-backend's CGI fork on the server; over file:// it is fleetd's own
// cost with go-git's in-process upload-pack; http-static replays a recorded
// advertisement from memory, which isolates fleetd's HTTP client cost.
func BenchmarkHeadUnchanged(b *testing.B) {
	u := newUpstream(b)
	u.commit("one", map[string]string{"fleets/web/compose.yaml": composeV1})
	srv := serveHTTP(b, u, "", "")
	static := serveStaticRefs(b, srv.repoURL())
	for _, bc := range []struct{ name, url string }{
		{"http", srv.repoURL()},
		{"http-static", static},
		{"file", "file://" + u.bare},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// Clone from the real server, then poll bc.url from that clone.
			dir := filepath.Join(b.TempDir(), "repo")
			mustSync(b, open(b, source.Config{URL: srv.repoURL(), Path: "fleets", Dir: dir}), true)
			r := open(b, source.Config{URL: bc.url, Path: "fleets", Dir: dir})
			b.ReportAllocs()
			for b.Loop() {
				if _, changed, err := r.Sync(b.Context()); err != nil || changed {
					b.Fatalf("Sync = %v, %v", changed, err)
				}
			}
		})
	}
}

// serveStaticRefs records the ref advertisement of url and serves it from
// memory.
func serveStaticRefs(b *testing.B, url string) string {
	b.Helper()
	resp, err := http.Get(url + "/info/refs?service=git-upload-pack")
	if err != nil {
		b.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	ctype := resp.Header.Get("Content-Type")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", ctype)
			w.Write(body)
			return
		}
		http.Error(w, "only the advertisement is recorded", http.StatusNotImplemented)
	}))
	b.Cleanup(srv.Close)
	return srv.URL + "/fleet.git"
}
