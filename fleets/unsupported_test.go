package fleets

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/tree"
)

// Every unsupported attribute is found through the few patterns compose-go
// is given, and reported at its own path with its own message.
func TestUnsupportedEveryAttribute(t *testing.T) {
	for _, u := range unsupportedAttributes {
		parts := strings.Split(u.path, ".")
		value := any("x")
		switch {
		case u.detect == nil:
		case u.detect("global"):
			value = "global"
		case u.detect("service:a"):
			value = "service:a"
		case u.detect(true):
			value = true
		default:
			t.Fatalf("%s: no test value satisfies its detect function", u.path)
		}
		if len(parts) < 3 {
			got := unsupportedFindings([]loader.UnsupportedAttribute{{Path: tree.Path(u.path), Value: value}})
			if !slices.Equal(got, []tree.Path{tree.Path(u.path)}) {
				t.Errorf("%s: findings %v", u.path, got)
			}
			continue
		}
		// The entry (a service, secret or config) that sets the attribute.
		entry := map[string]any{}
		m := entry
		for _, p := range parts[2 : len(parts)-1] {
			next := map[string]any{}
			m[p] = next
			m = next
		}
		m[parts[len(parts)-1]] = value
		at := tree.Path(parts[0] + ".web")
		var pattern *loader.UnsupportedAttributePattern
		for i, p := range unsupportedPatterns {
			if at.Matches(p.Path) {
				pattern = &unsupportedPatterns[i]
			}
		}
		if pattern == nil || !pattern.Detect(entry) {
			t.Errorf("%s: no pattern flags %s", u.path, at)
			continue
		}
		want := tree.Path(parts[0] + ".web." + strings.Join(parts[2:], "."))
		got := unsupportedFindings([]loader.UnsupportedAttribute{{Path: at, Value: entry}})
		if !slices.Equal(got, []tree.Path{want}) {
			t.Errorf("%s: findings %v, want %s", u.path, got, want)
		}
		if msg, _ := unsupportedMessage(want, EngineDocker); msg != u.message {
			t.Errorf("%s: message %q, want %q", u.path, msg, u.message)
		}
	}
	// An entry with only supported attributes, or a detect that declines
	// the value, is not flagged.
	for _, entry := range []map[string]any{
		{"image": "x", "deploy": map[string]any{"replicas": 2, "mode": "replicated"}},
		{"network_mode": "host"},
	} {
		for _, p := range unsupportedPatterns {
			if p.Detect != nil && tree.Path("services.web").Matches(p.Path) && p.Detect(entry) {
				t.Errorf("%v flagged as unsupported", entry)
			}
		}
	}
	if len(unsupportedPatterns) > 8 {
		t.Errorf("%d patterns for compose-go to match at every node; want one per section", len(unsupportedPatterns))
	}
}

// A lifecycle hook is reported as unsupported, and its env_file is never
// opened: fleetd does not confine files it will not use (a FIFO outside
// the tree would block a read forever).
func TestHookFilesNotRead(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	writeFile(t, root, "app/compose.yaml", []byte("services:\n  web:\n    image: nginx\n    pre_start:\n      - command: [\"true\"]\n        env_file: [\""+fifo+"\"]\n"))
	done := make(chan error, 1)
	go func() {
		_, err := Load(context.Background(), root, Host{Name: "h"})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "pre_start") {
			t.Errorf("Load = %v, want pre_start reported as unsupported", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Load blocked reading a hook's env_file")
	}
}
