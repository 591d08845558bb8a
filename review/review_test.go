package review

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"

	"github.com/fleetd/fleetd/fleets"
)

var update = flag.Bool("update", false, "rewrite the want section of testdata/*.txtar")

// TestReview runs every testdata/*.txtar archive: base/ and head/
// are the two trees, hosts (and base-hosts, when the inventory changed) the
// inventory, want the text rendering of the review.
func TestReview(t *testing.T) {
	archives, err := filepath.Glob("testdata/*.txtar")
	if err != nil || len(archives) == 0 {
		t.Fatalf("no archives: %v", err)
	}
	for _, path := range archives {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rv := reviewArchive(t, ar)
			got := rv.String()
			checkJSON(t, rv)
			i := wantIndex(ar)
			if *update {
				if i < 0 {
					ar.Files = append(ar.Files, txtar.File{Name: "want"})
					i = len(ar.Files) - 1
				}
				ar.Files[i].Data = []byte(got)
				if err := os.WriteFile(path, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if i < 0 {
				t.Fatalf("no want section; run with -update\n%s", got)
			}
			if want := string(ar.Files[i].Data); got != want {
				t.Errorf("review text differs (run with -update to accept)\n--- got\n%s--- want\n%s", got, want)
			}
			if again := reviewArchive(t, ar).Markdown(); again != rv.Markdown() {
				t.Errorf("markdown is not stable across runs")
			}
		})
	}
}

func wantIndex(ar *txtar.Archive) int {
	for i, f := range ar.Files {
		if f.Name == "want" {
			return i
		}
	}
	return -1
}

func reviewArchive(t *testing.T, ar *txtar.Archive) Report {
	t.Helper()
	root := t.TempDir()
	var headInv, baseInv fleets.Inventory
	var baseInvSet bool
	for _, f := range ar.Files {
		switch name := f.Name; {
		case name == "want":
		case name == "hosts":
			headInv = parseInv(t, f.Data)
		case name == "base-hosts":
			baseInv, baseInvSet = parseInv(t, f.Data), true
		default:
			p := filepath.Join(root, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(headInv.Hosts) == 0 {
		headInv.Hosts = []fleets.Host{{Name: "host-1"}}
	}
	if !baseInvSet {
		baseInv = headInv
	}
	for _, side := range []string{"base", "head"} {
		if err := os.MkdirAll(filepath.Join(root, side), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var hosts []HostRevisions
	add := func(b, h fleets.Host, inv string) {
		hosts = append(hosts, HostRevisions{
			Base: load(t, filepath.Join(root, "base"), b), Head: load(t, filepath.Join(root, "head"), h), Inventory: inv,
		})
	}
	for _, h := range headInv.Hosts {
		if b, ok := baseInv.Host(h.Name); ok {
			add(b, h, "")
		} else {
			add(h, h, InventoryAdded)
		}
	}
	for _, b := range baseInv.Hosts {
		if _, ok := headInv.Host(b.Name); !ok {
			add(b, b, InventoryRemoved)
		}
	}
	return Compare(RevisionRef{Ref: "base"}, RevisionRef{Ref: "head"}, hosts)
}

func parseInv(t *testing.T, data []byte) fleets.Inventory {
	t.Helper()
	inv, err := fleets.ParseInventory("hosts", data)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func load(t *testing.T, dir string, host fleets.Host) HostLoad {
	t.Helper()
	fs, err := fleets.Load(t.Context(), dir, host)
	hl := HostLoad{Host: host, Fleets: fs}
	if err != nil {
		pl, ok := err.(fleets.ProblemList)
		if !ok {
			t.Fatal(err)
		}
		hl.Problems = pl
	}
	return hl
}

// checkJSON round-trips the review through its JSON schema strictly.
func checkJSON(t *testing.T, rv Report) {
	t.Helper()
	b, err := json.Marshal(rv)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var back Report
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if back.String() != rv.String() {
		t.Errorf("JSON round trip changes the review:\n%s\n---\n%s", back, rv)
	}
}
