package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/source"
)

func TestSourceLimitsConfig(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       source.Limits
		err        string
	}{
		{"unset: the defaults", "source: {url: x}\n", source.Limits{}, ""},
		{"units", "source: {url: x, limits: {max_file_size: 16MiB, max_files: 500, max_total_size: 2g}}\n",
			source.Limits{MaxFileSize: 16 << 20, MaxFiles: 500, MaxTotalSize: 2 << 30}, ""},
		{"bytes", "source: {url: x, limits: {max_file_size: 1024}}\n", source.Limits{MaxFileSize: 1024}, ""},
		{"not a size", "source: {url: x, limits: {max_file_size: huge}}\n", source.Limits{}, `source.limits.max_file_size: "huge" is not a size`},
		{"zero size", "source: {url: x, limits: {max_total_size: 0b}}\n", source.Limits{}, `source.limits.max_total_size: "0b" is not a size`},
		{"negative count", "source: {url: x, limits: {max_files: -1}}\n", source.Limits{}, "source.limits.max_files: must be at least 1"},
		{"misspelled", "source: {url: x, limits: {max_file: 1}}\n", source.Limits{}, "unknown key source.limits.max_file; did you mean max_files?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(t, tc.text, nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, err := cfg.Source.Limits.limits(); err != nil || got != tc.want {
				t.Fatalf("limits = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// The instance's state directory is made 0700, and one made before with a
// wider mode is fixed; what is inside keeps its mode (issue 17 W6).
func TestPrivateStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "default")
	if err := privateStateDir(dir); err != nil {
		t.Fatal(err)
	}
	mode := func(p string) os.FileMode {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return info.Mode().Perm()
	}
	if m := mode(dir); m != 0o700 {
		t.Errorf("new state directory %o, want 700", m)
	}
	tree := filepath.Join(dir, "repo", "trees", "x")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "app.conf"), []byte("x"), 0o644)
	os.Chmod(dir, 0o755)
	if err := privateStateDir(dir); err != nil {
		t.Fatal(err)
	}
	if m := mode(dir); m != 0o700 {
		t.Errorf("existing state directory %o, want 700", m)
	}
	if m := mode(filepath.Join(tree, "app.conf")); m != 0o644 {
		t.Errorf("a file inside %o, want its own 644 (bind-mounted into containers)", m)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if err := privateStateDir(file); err == nil {
		t.Error("a state directory that is a file: no error")
	}
}

// untilDone returns as soon as the context ends, even when the work
// blocks for good (a read in the kernel): what lets validate honour
// SIGTERM at any point (issue 17 W5).
func TestUntilDoneReturnsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	block := make(chan struct{})
	defer close(block)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	err := untilDone(ctx, func() error { <-block; return nil })
	if !errors.Is(err, errInterrupted) {
		t.Fatalf("untilDone = %v, want errInterrupted", err)
	}
	want := errors.New("x")
	if err := untilDone(t.Context(), func() error { return want }); err != want {
		t.Fatalf("untilDone = %v, want f's error", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1024": 1024, "0": 0, "1b": 1, "16k": 16 << 10, "64m": 64 << 20, "64MiB": 64 << 20, "64MB": 64 << 20,
		"1 GiB": 1 << 30, "2g": 2 << 30, "1T": 1 << 40,
		"": -1, "huge": -1, "1.5g": -1, "-1": -1, "64x": -1, "64ib": -1, "m": -1, "9999999999999t": -1,
	} {
		got, err := parseSize(in)
		if want < 0 {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
