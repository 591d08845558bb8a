package e2e

import (
	"errors"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// gitServer is a real Git server for the daemon tests: a bare repository
// made with the git binary, served by `git http-backend` behind net/http/cgi
// on 127.0.0.1, plus a working clone that commits and pushes to it (through
// the file system, so a push works while the server is down). The server
// can be stopped and started again on the same port to simulate an outage.
// It records every request it serves ("METHOD path?query").
type gitServer struct {
	t    testing.TB
	root string // GIT_PROJECT_ROOT: holds fleet.git
	bare string
	work string
	addr string // 127.0.0.1:port, fixed after the first start

	handler http.Handler

	mu         sync.Mutex
	srv        *http.Server
	requests   []gitRequest
	user, pass string // basic auth every request must carry, when set
}

// requireAuth makes the server answer 401 to requests without these
// basic-auth credentials.
func (g *gitServer) requireAuth(user, pass string) {
	g.mu.Lock()
	g.user, g.pass = user, pass
	g.mu.Unlock()
}

// authorized checks a request against requireAuth's credentials.
func (g *gitServer) authorized(r *http.Request) bool {
	g.mu.Lock()
	user, pass := g.user, g.pass
	g.mu.Unlock()
	u, p, ok := r.BasicAuth()
	return user == "" || ok && u == user && p == pass
}

// gitRequest is one request the server answered.
type gitRequest struct {
	Key      string // "GET /fleet.git/info/refs?service=git-upload-pack"
	Start    time.Time
	Duration time.Duration
}

// newGitServer creates the repositories and starts serving them; the
// server stops when the test ends.
func newGitServer(t testing.TB) *gitServer {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("the git binary is needed to serve test repositories: %v", err)
	}
	dir := t.TempDir()
	g := &gitServer{t: t, root: filepath.Join(dir, "srv"), work: filepath.Join(dir, "work")}
	g.bare = filepath.Join(g.root, "fleet.git")
	g.git(dir, "init", "-q", "--bare", "-b", "main", g.bare)
	g.git(dir, "init", "-q", "-b", "main", g.work)
	g.run("remote", "add", "origin", g.bare)
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + g.root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	g.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if !g.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
		key := r.Method + " " + r.URL.Path
		if r.URL.RawQuery != "" {
			key += "?" + r.URL.RawQuery
		}
		g.mu.Lock()
		g.requests = append(g.requests, gitRequest{Key: key, Start: start, Duration: time.Since(start)})
		g.mu.Unlock()
	})
	g.start()
	t.Cleanup(g.stop)
	return g
}

// url is the repository's address.
func (g *gitServer) url() string { return "http://" + g.addr + "/fleet.git" }

// start serves on the server's port (a free one the first time). The port
// may take a moment to be free again after stop.
func (g *gitServer) start() {
	g.t.Helper()
	addr := g.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		g.t.Fatalf("git server: listen on %s: %v", addr, err)
	}
	g.addr = ln.Addr().String()
	srv := &http.Server{Handler: g.handler, ReadHeaderTimeout: 10 * time.Second}
	g.mu.Lock()
	g.srv = srv
	g.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.t.Errorf("git server: %v", err)
		}
	}()
}

// stop closes the listener and every connection: the remote is down.
func (g *gitServer) stop() {
	g.mu.Lock()
	srv := g.srv
	g.srv = nil
	g.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// take returns the requests served since the last take.
func (g *gitServer) take() []gitRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	got := g.requests
	g.requests = nil
	return got
}

func (g *gitServer) git(dir string, args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// run runs git in the working clone.
func (g *gitServer) run(args ...string) string { g.t.Helper(); return g.git(g.work, args...) }

// commit writes files (relative to the repository; an empty body deletes
// the file), commits and pushes to branch (main when empty); it returns
// the new commit.
func (g *gitServer) commit(branch, msg string, files map[string]string) string {
	g.t.Helper()
	if branch == "" {
		branch = "main"
	}
	for name, body := range files {
		p := filepath.Join(g.work, filepath.FromSlash(name))
		if body == "" {
			if err := os.Remove(p); err != nil {
				g.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
	g.run("add", "-A")
	g.run("commit", "-q", "--allow-empty", "-m", msg)
	g.run("push", "-q", "-f", "origin", "HEAD:"+branch)
	return g.run("rev-parse", "HEAD")
}
