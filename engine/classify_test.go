package engine

import (
	"errors"
	"fmt"
	"testing"

	"github.com/fleetd/fleetd/fault"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err    error
		class  fault.Class
		reason fault.Reason
		object string
	}{
		{fmt.Errorf("create container: %w", &ConflictError{Kind: "container", Name: "a-web-1"}), fault.Permanent, fault.Conflict, "a-web-1"},
		{fmt.Errorf("stop container x: %w", ErrNotManaged), fault.Permanent, fault.NotManaged, ""},
		{fmt.Errorf("external network n: %w", ErrNotFound), fault.Permanent, fault.NotFound, ""},
		{errors.New("start container a-web-1: driver failed programming external connectivity on endpoint a-web-1 (x): Bind for 0.0.0.0:8080 failed: port is already allocated"), fault.Permanent, fault.PortAllocated, "0.0.0.0:8080"},
		{errors.New("start container a: Error starting userland proxy: listen tcp4 127.0.0.1:9000: bind: address already in use"), fault.Permanent, fault.PortAllocated, "127.0.0.1:9000"},
		{fmt.Errorf("wait healthy for x: %w after 1m0s", ErrWaitTimeout), fault.Retryable, fault.Timeout, ""},
		{&DaemonError{Host: "unix:///run/docker.sock", Reason: "not reachable", Err: errors.New("connection refused")}, fault.Retryable, fault.EngineUnreachable, ""},
		{errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"), fault.Retryable, fault.EngineUnreachable, ""},
	} {
		f := fault.Of(classify(tc.err))
		if f.Class != tc.class || f.Reason != tc.reason || f.Object != tc.object {
			t.Errorf("classify(%q) = %s %s %q, want %s %s %q", tc.err, f.Class, f.Reason, f.Object, tc.class, tc.reason, tc.object)
		}
	}
	if f := fault.Of(classify(errors.New("something else"))); f.Reason != fault.Failed || f.Class != fault.Retryable {
		t.Errorf("an unknown error: %s %s, want retryable Failed", f.Class, f.Reason)
	}
	if classify(nil) != nil {
		t.Errorf("classify(nil) != nil")
	}
}

func TestPullFault(t *testing.T) {
	for msg, want := range map[string]fault.Reason{
		"manifest for 127.0.0.1:5000/app:v9 not found: manifest unknown: manifest unknown":      fault.ImageNotFound,
		"pull access denied for nope, repository does not exist or may require 'docker login'":  fault.ImageNotFound,
		`Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused`: fault.PullFailed,
		"received unexpected HTTP status: 503 Service Unavailable":                              fault.PullFailed,
	} {
		f := fault.Of(pullFault("127.0.0.1:5000/app:v9", errors.New(msg)))
		if f.Reason != want || f.Object != "127.0.0.1:5000/app:v9" {
			t.Errorf("pullFault(%q) = %s %q, want %s", msg, f.Reason, f.Object, want)
		}
	}
}
