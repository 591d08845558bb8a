package source_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// upstream is a bare repository served by the tests plus a working clone
// that commits and pushes to it with the git binary.
type upstream struct {
	t    testing.TB
	root string // GIT_PROJECT_ROOT: holds fleet.git
	bare string
	work string
}

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("the git binary is needed to build test repositories: %v", err)
	}
	dir := t.TempDir()
	u := &upstream{t: t, root: filepath.Join(dir, "srv"), work: filepath.Join(dir, "work")}
	u.bare = filepath.Join(u.root, "fleet.git")
	u.git(dir, "init", "-q", "--bare", "-b", "main", u.bare)
	u.git(dir, "init", "-q", "-b", "main", u.work)
	u.run("remote", "add", "origin", u.bare)
	return u
}

func (u *upstream) git(dir string, args ...string) string {
	u.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		u.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// run runs git in the working clone.
func (u *upstream) run(args ...string) string { u.t.Helper(); return u.git(u.work, args...) }

// commit writes files (an empty value deletes the file), commits and pushes
// main; it returns the new commit.
func (u *upstream) commit(msg string, files map[string]string) string {
	u.t.Helper()
	for name, body := range files {
		p := filepath.Join(u.work, filepath.FromSlash(name))
		if body == "" {
			if err := os.Remove(p); err != nil {
				u.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			u.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			u.t.Fatal(err)
		}
	}
	u.run("add", "-A")
	u.run("commit", "-q", "--allow-empty", "-m", msg)
	u.run("push", "-q", "-f", "origin", "HEAD:main")
	return u.run("rev-parse", "HEAD")
}

// httpServer serves the upstream with git http-backend and counts requests
// by "METHOD path?query".
type httpServer struct {
	*httptest.Server
	user, pass string // required basic auth, if set

	mu       sync.Mutex
	requests map[string]int
}

func serveHTTP(t testing.TB, u *upstream, user, pass string) *httpServer {
	t.Helper()
	s := &httpServer{user: user, pass: pass, requests: map[string]int{}}
	backend := &cgi.Handler{
		Path: mustLookPath(t, "git"),
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + u.root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.count(r)
		if s.user != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != s.user || p != s.pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *httpServer) count(r *http.Request) {
	key := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		key += "?" + r.URL.RawQuery
	}
	s.mu.Lock()
	s.requests[key]++
	s.mu.Unlock()
}

// take returns the requests seen since the last take.
func (s *httpServer) take() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.requests
	s.requests = map[string]int{}
	return got
}

func (s *httpServer) repoURL() string { return s.URL + "/fleet.git" }

func mustLookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sshServer serves the upstream over SSH: public-key auth with one client
// key, and "git-upload-pack '<path>'" run with the git binary.
type sshServer struct {
	addr    string
	hostKey ssh.Signer
}

func serveSSH(t testing.TB, u *upstream, client ssh.PublicKey) *sshServer {
	t.Helper()
	hostKey := newSigner(t)
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), client.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorised")
		},
	}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSSHConn(conn, cfg, u.root)
		}
	}()
	return &sshServer{addr: ln.Addr().String(), hostKey: hostKey}
}

func serveSSHConn(conn net.Conn, cfg *ssh.ServerConfig, root string) {
	defer conn.Close()
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go serveSession(ch, chReqs, root)
	}
}

func serveSession(ch ssh.Channel, reqs <-chan *ssh.Request, root string) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(req.Type == "env", nil)
			continue
		}
		var payload struct{ Command string }
		if ssh.Unmarshal(req.Payload, &payload) != nil || !strings.HasPrefix(payload.Command, "git-upload-pack ") {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		repoPath := strings.Trim(strings.TrimPrefix(payload.Command, "git-upload-pack "), "'")
		cmd := exec.Command("git", "upload-pack", filepath.Join(root, filepath.Clean("/"+repoPath)))
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		status := uint32(0)
		if err := cmd.Run(); err != nil {
			status = 1
		}
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
		return
	}
}

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeClientKey writes a new private key (encrypted when passphrase is
// set) and returns its path and public key.
func writeClientKey(t testing.TB, dir, passphrase string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return path, sshPub
}

// writeKnownHosts writes a known_hosts file trusting key for addr.
func writeKnownHosts(t testing.TB, dir, addr string, key ssh.PublicKey) string {
	t.Helper()
	path := filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
	if err := os.WriteFile(path, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sshURL(addr string) string { return fmt.Sprintf("ssh://git@%s/fleet.git", addr) }
