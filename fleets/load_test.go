package fleets

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

// TestLoad runs every testdata/load/*.txtar archive: its files are unpacked
// into a temporary repository and loaded. Special sections, not unpacked:
//
//	-- host --     the host: first line its name, then key=value labels
//	-- want --     lines expected in the summary of the loaded fleets (see summary)
//	-- errors --   substrings, one per line, each expected in some problem line;
//	               without it, Load must succeed
//	-- noerror --  substrings no problem line may contain
func TestLoad(t *testing.T) {
	eachArchive(t, func(t *testing.T, root string, tc loadCase) {
		fleets, err := Load(t.Context(), root, tc.host)
		checkErrors(t, err, tc)
		if tc.hasWant {
			matchSummary(t, summary(t, fleets), tc.want)
		}
	})
}

// eachArchive unpacks every testdata/load archive into a temporary
// repository and runs a subtest on it.
func eachArchive(t *testing.T, run func(t *testing.T, root string, tc loadCase)) {
	archives, err := filepath.Glob("testdata/load/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range archives {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			run(t, root, unpack(t, ar, root))
		})
	}
}

type loadCase struct {
	host    Host
	want    string
	errors  []string
	noerror []string
	hasWant bool
}

func unpack(t *testing.T, ar *txtar.Archive, root string) loadCase {
	t.Helper()
	tc := loadCase{host: Host{Name: "host1"}}
	for _, f := range ar.Files {
		switch f.Name {
		case "host":
			tc.host = parseHost(string(f.Data))
		case "want":
			tc.want, tc.hasWant = string(f.Data), true
		case "errors":
			tc.errors = lines(string(f.Data))
		case "noerror":
			tc.noerror = lines(string(f.Data))
		default:
			writeFile(t, root, f.Name, f.Data)
		}
	}
	return tc
}

// writeFile writes an archive file; a name ending in "@symlink" makes a
// symlink to the file's first line instead.
func writeFile(t *testing.T, root, name string, data []byte) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if link, ok := strings.CutSuffix(p, "@symlink"); ok {
		target := strings.ReplaceAll(strings.TrimSpace(string(data)), "$ROOT", root)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func parseHost(s string) Host {
	ls := lines(s)
	h := Host{Name: ls[0], Labels: map[string]string{}}
	for _, l := range ls[1:] {
		k, v, _ := strings.Cut(l, "=")
		h.Labels[k] = v
	}
	return h
}

func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func checkErrors(t *testing.T, err error, tc loadCase) {
	t.Helper()
	if len(tc.errors) == 0 {
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		return
	}
	var pl ProblemList
	if !errors.As(err, &pl) {
		t.Fatalf("Load error = %v, want a ProblemList", err)
	}
	msg := pl.Error()
	t.Logf("problems:\n%s", msg)
	for _, want := range tc.errors {
		if !strings.Contains(msg, want) {
			t.Errorf("no problem contains %q; problems:\n%s", want, msg)
		}
	}
	for _, bad := range tc.noerror {
		if strings.Contains(msg, bad) {
			t.Errorf("a problem contains %q; problems:\n%s", bad, msg)
		}
	}
}

// TestLoadInCheckout loads the fleets' path of a repository whose checkout
// holds more: `..` may leave the fleets' path for the rest of the checkout
// (a bind there is "repo:../…", relative to the fleets' path), never the
// checkout.
func TestLoadInCheckout(t *testing.T) {
	repo := t.TempDir()
	for name, data := range map[string]string{
		".git/HEAD":               "ref: refs/heads/main\n",
		"conf/app.conf":           "x=1\n",
		"shared.env":              "A=1\n",
		"deploy/web/compose.yaml": "services:\n  api:\n    image: x\n    env_file: ../../shared.env\n    volumes: [\"../../conf:/etc/app:ro\"]\n",
		"deploy/bad/compose.yaml": "services:\n  b:\n    image: x\n    env_file: ../../../escape.env\n",
	} {
		p := filepath.Join(repo, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(repo, "deploy")
	if got := FindCheckout(filepath.Join(root, "web")); got != repo {
		t.Errorf("FindCheckout = %s, want %s", got, repo)
	}
	loaded, err := Load(t.Context(), root, Host{Name: "h"}, Checkout(repo))
	var problems ProblemList
	if !errors.As(err, &problems) || len(problems) != 1 || !strings.Contains(problems[0].Message, "escape.env: resolves outside the repository") {
		t.Fatalf("Load: %v; want one problem, bad's escape", err)
	}
	if len(loaded) != 1 || loaded[0].Name != "web" {
		t.Fatalf("loaded %+v, want web", loaded)
	}
	web := loaded[0]
	if m := web.Services[0].Spec.Mounts; len(m) != 1 || m[0].Source != "repo:../conf" {
		t.Errorf("mounts %+v, want repo:../conf", m)
	}
	if web.Services[0].Spec.Environment["A"] != "1" || strings.Join(web.Outside, " ") != "../conf ../shared.env" {
		t.Errorf("environment %v, outside %v", web.Services[0].Spec.Environment, web.Outside)
	}
	// Without the checkout, the fleets' path is the boundary.
	if _, err := Load(t.Context(), root, Host{Name: "h"}); err == nil || !strings.Contains(err.Error(), "../shared.env: resolves outside the repository") {
		t.Errorf("Load without Checkout: %v, want shared.env outside", err)
	}
}
