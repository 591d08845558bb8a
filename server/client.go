package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxStatusBytes bounds the status document a client reads.
const maxStatusBytes = 16 << 20

// FetchStatus returns the JSON of GET /v1/status from the daemon at addr
// ("127.0.0.1:9750" or a URL such as "http://host:9750"). token is the
// read or API token when the daemon asks for one; "" sends none.
func FetchStatus(ctx context.Context, addr, token string) ([]byte, error) {
	body, err := call(ctx, http.MethodGet, baseURL(addr)+"/v1/status", token)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return body, nil
}

// Fetch returns the body of GET path (with its query) from the daemon at
// addr, as FetchStatus does: `fleetd dashboard` reads the agents'
// dashboard API (/ui/api/…) with it.
func Fetch(ctx context.Context, addr, path, token string) ([]byte, error) {
	body, err := call(ctx, http.MethodGet, baseURL(addr)+path, token)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.SplitN(path, "?", 2)[0], err)
	}
	return body, nil
}

// TriggerSync asks the daemon at addr for a sync (POST /v1/sync) with the
// API token. It returns once the daemon accepted the request, not when the
// sync is done.
func TriggerSync(ctx context.Context, addr, token string) error {
	if _, err := call(ctx, http.MethodPost, baseURL(addr)+"/v1/sync", token); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// call makes one request and returns the body of a 2xx answer; any other
// status is an error carrying the server's message.
func call(ctx context.Context, method, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBytes))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s: %s", resp.Status, serverMessage(body))
	}
	return body, nil
}

// serverMessage returns the "error" of a JSON error body, or the body.
func serverMessage(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}

// baseURL turns a listen address into a URL; a URL is kept.
func baseURL(addr string) string {
	if addr == "" {
		addr = DefaultAddr
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimSuffix(addr, "/")
}
