package e2e

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/server"
)

// TestExposure runs the agent with both listeners and a read token
// (docs/operations.md, "What each address serves"): webhooks only on
// webhook.listen, status and metrics only on listen and only with a token,
// probes open, and a delivery taken once.
func TestExposure(t *testing.T) {
	setup(t)
	t.Parallel()
	g := newGitServer(t)
	g.commit("", "no fleets yet", map[string]string{"README.md": "empty\n"})

	dir := t.TempDir()
	d := &daemon{t: t, dir: dir, addr: freeAddr(t), host: dockertest.Name(t, "host-"+t.Name()), secret: "hook-secret", env: fleetdEnv(t)}
	hooks := freeAddr(t)
	d.tokenFile = filepath.Join(dir, "api-token")
	readFile, secretFile := filepath.Join(dir, "read-token"), filepath.Join(dir, "webhook-secret")
	writeFile(t, d.tokenFile, "api-token-1\n")
	writeFile(t, readFile, "read-token-1\n")
	writeFile(t, secretFile, d.secret+"\n")
	d.config = filepath.Join(dir, "config.yaml")
	writeFile(t, d.config, fmt.Sprintf(`host: {name: %s}
source: {url: %q, ref: main, interval: 1m}
webhook: {secret_file: %s, listen: %s}
api: {token_file: %s, read_token_file: %s}
listen: %s
`, d.host, g.url(), secretFile, hooks, d.tokenFile, readFile, d.addr))
	t.Cleanup(func() {
		if d.cmd != nil && d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			<-d.exited
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
	d.start() // waits for /readyz on listen, which asks for no token

	get := func(url, token string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return statusOf(t, req)
	}
	body := []byte(`{"ref":"refs/heads/main","after":"0123456789abcdef"}`)
	hook := func(base string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/hooks/github", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(server.Sign([]byte(d.secret), body)))
		return statusOf(t, req)
	}
	api, hk := "http://"+d.addr, "http://"+hooks
	checks := []struct {
		name      string
		got, want int
	}{
		{"status without a token", get(api+"/v1/status", ""), 401},
		{"status with the read token", get(api+"/v1/status", "read-token-1"), 200},
		{"status with the API token", get(api+"/v1/status", "api-token-1"), 200},
		{"metrics without a token", get(api+"/metrics", ""), 401},
		{"metrics with the read token", get(api+"/metrics", "read-token-1"), 200},
		{"healthz on listen", get(api+"/healthz", ""), 200},
		{"healthz on webhook.listen", get(hk+"/healthz", ""), 200},
		{"status on webhook.listen", get(hk+"/v1/status", "read-token-1"), 404},
		{"metrics on webhook.listen", get(hk+"/metrics", "read-token-1"), 404},
		{"readyz on webhook.listen", get(hk+"/readyz", ""), 404},
		{"a webhook on listen", hook(api), 404},
		{"a webhook on webhook.listen", hook(hk), 202},
		{"the same delivery again", hook(hk), 200},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}

	if res := fleetd(t, nil, "status", "--addr", d.addr); res.code != 1 || !strings.Contains(res.stderr, "401") {
		t.Errorf("fleetd status without a token: want exit 1 naming 401\n%s", res)
	}
	if res := fleetd(t, nil, "status", "--addr", d.addr, "--token-file", readFile); res.code != 0 {
		t.Errorf("fleetd status --token-file: want exit 0\n%s", res)
	}
	d.stop()
}

func statusOf(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
