package fleets

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// billionLaughs returns a compose file of a few KiB whose alias expansion
// has width^depth leaves.
func billionLaughs(width, depth int) string {
	var b strings.Builder
	b.WriteString("x-l0: &l0 [" + strings.TrimSuffix(strings.Repeat(`"lol",`, width), ",") + "]\n")
	for d := 1; d <= depth; d++ {
		ref := fmt.Sprintf("*l%d,", d-1)
		fmt.Fprintf(&b, "x-l%d: &l%d [%s]\n", d, d, strings.TrimSuffix(strings.Repeat(ref, width), ","))
	}
	b.WriteString("services:\n  web:\n    image: nginx\n")
	return b.String()
}

// An alias bomb (10^12 leaves) is rejected quickly and in little memory:
// the expansion is counted on the parsed tree, never built.
func TestLoadRejectsAliasBomb(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "bomb/compose.yaml", []byte(billionLaughs(10, 12)))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := Load(t.Context(), root, Host{Name: "h"})
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "too many nodes") {
		t.Fatalf("err = %v, want the alias bomb rejected", err)
	}
	if elapsed > 2*time.Second {
		t.Errorf("took %v, want well under 2s", elapsed)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("allocated %d MiB, want under 64", alloc>>20)
	}
}

// A self-referencing anchor is rejected, not followed forever.
func TestLoadRejectsRecursiveAlias(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "r/compose.yaml", []byte("x-a: &a [1, *a]\nservices: {web: {image: x}}\n"))
	_, err := Load(t.Context(), root, Host{Name: "h"})
	if err == nil {
		t.Fatal("recursive alias accepted")
	}
}

// FuzzLoad feeds arbitrary bytes as a fleet's compose file (next to a valid
// fleet): Load must not panic, must return promptly, and must return the
// valid fleet whatever the other file holds.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/load/*.txtar")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err == nil {
			if i := strings.Index(string(data), "compose.yaml --\n"); i >= 0 {
				f.Add(data[i+len("compose.yaml --\n"):])
			}
		}
	}
	f.Add([]byte(billionLaughs(9, 9)))
	f.Add([]byte("services: {web: {image: x, ports: ['${P}:80'], extends: {file: /etc/passwd, service: x}}}"))
	root := f.TempDir()
	writeFileF(f, filepath.Join(root, "good", "compose.yaml"), []byte("services: {web: {image: nginx}}\n"))
	f.Fuzz(func(t *testing.T, compose []byte) {
		if err := os.MkdirAll(filepath.Join(root, "fuzz"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "fuzz", "compose.yaml"), compose, 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		fleets, _ := Load(t.Context(), root, Host{Name: "h", Labels: map[string]string{"a": "b"}})
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Load took %v", d)
		}
		found := false
		for _, fl := range fleets {
			found = found || fl.Dir == "good"
		}
		if !found {
			t.Errorf("the valid fleet was not returned")
		}
	})
}

func writeFileF(f *testing.F, p string, data []byte) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		f.Fatal(err)
	}
}
