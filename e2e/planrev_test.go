package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/review"
)

// The tests of `fleetd plan --base/--head` need no Docker engine: they
// build a Git repository with the git binary, one commit per scenario, and
// compare the binary's text and Markdown output with goldens in
// testdata/planrev (go test ./e2e -run PlanRevisions -update rewrites them;
// read every diff: the plan must be right, not just stable) and its JSON
// with the review.Report schema.

var updateGoldens = flag.Bool("update", false, "rewrite the goldens of testdata/planrev")

// gitRepo is a Git repository in a temporary directory, with fixed
// identities and dates so that commit hashes (which the output shows) are
// the same on every run.
type gitRepo struct {
	dir   string
	clock int
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("the plan-between-revisions tests need the git binary: %v", err)
	}
	g := &gitRepo{dir: t.TempDir()}
	g.git(t, "init", "-q", "-b", "main")
	return g
}

func (g *gitRepo) git(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "git", args...)
	cmd.Dir = g.dir
	date := "2025-01-01T00:00:00Z"
	if g.clock > 0 {
		date = "2025-01-01T00:" + twoDigits(g.clock) + ":00Z"
	}
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Dev", "GIT_AUTHOR_EMAIL=dev@example.com", "GIT_AUTHOR_DATE="+date,
		"GIT_COMMITTER_NAME=Dev", "GIT_COMMITTER_EMAIL=dev@example.com", "GIT_COMMITTER_DATE="+date)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func twoDigits(n int) string { return string(rune('0'+n/10%10)) + string(rune('0'+n%10)) }

// write sets files (path → contents; "" deletes the path) and commits them
// as subject, tagged tag.
func (g *gitRepo) commit(t *testing.T, tag, subject string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(g.dir, filepath.FromSlash(name))
		if data == "" {
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g.clock++
	g.git(t, "add", "-A")
	g.git(t, "commit", "-q", "--allow-empty", "-m", subject)
	g.git(t, "tag", tag)
}

// write sets a file of the working tree without committing it.
func (g *gitRepo) write(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(g.dir, filepath.FromSlash(name)), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// planRun is one run of fleetd plan --base/--head.
type planRun struct {
	stdout, stderr string
	code           int
}

// plan runs the binary without any Docker environment: a plan between
// revisions must not need an engine.
func plan(t *testing.T, dir string, args ...string) planRun {
	t.Helper()
	return runNoDocker(t, append([]string{"plan", "--repo", dir}, args...)...)
}

// runNoDocker runs the binary with no Docker engine to reach.
func runNoDocker(t *testing.T, args ...string) planRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, fleetdBin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "DOCKER_HOST=unix:///nonexistent.sock"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := planRun{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("fleetd plan %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// checkGolden compares got with testdata/planrev/name, or rewrites it.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "planrev", name)
	if *updateGoldens {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update and review the diff)\n--- got\n%s--- want\n%s", name, got, want)
	}
}

// reviewJSON runs the plan as JSON and decodes it strictly into the schema.
func reviewJSON(t *testing.T, dir string, args ...string) review.Report {
	t.Helper()
	r := plan(t, dir, append(args, "--format", "json")...)
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	var rv review.Report
	if err := dec.Decode(&rv); err != nil {
		t.Fatalf("decode JSON into review.Report: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	return rv
}

const (
	inventory = `# The hosts fleetd plan covers, with the labels their agents are configured with.
hosts:
  - name: web-1
    labels: {role: web, zone: a}
  - name: web-2
    labels: {role: web, zone: b}
  - name: db-1
    labels: {role: db, zone: a}
`
	shopCompose = `name: shop
x-fleetd:
  labels: {role: web}
services:
  web:
    image: registry.example.com/shop-web:${WEB_VERSION}
    environment:
      LOG_LEVEL: info
      API_TOKEN: ${API_TOKEN}
    ports: ["127.0.0.1::8080"]
    depends_on: [cart]
    deploy:
      replicas: 2
      update_config: {parallelism: 1, order: start-first, failure_action: rollback}
    x-fleetd:
      public_env: [LOG_LEVEL]
  cart:
    image: redis:7.2
    volumes: [cart:/data]
volumes:
  cart:
`
	dbCompose = `x-fleetd:
  labels: {role: db}
services:
  postgres:
    image: postgres:16.4
    ports: ["5432:5432"]
    environment:
      POSTGRES_PASSWORD_FILE: /run/secrets/pg
    volumes: [pgdata:/var/lib/postgresql/data]
volumes:
  pgdata:
`
	monitoringCompose = `services:
  node-exporter:
    image: prom/node-exporter:v1.8.2
    ports: ["9100:9100"]
`
	legacyCompose = `x-fleetd:
  labels: {role: web}
services:
  api:
    image: registry.example.com/legacy-api:2.3
    ports: ["9000:9000"]
    volumes: [uploads:/uploads]
volumes:
  uploads:
`
	blogCompose = `x-fleetd:
  labels: {role: web}
services:
  ghost:
    image: ghost:5.96
    ports: ["127.0.0.1::2368"]
    deploy:
      update_config: {order: start-first}
`
)

// scenarioRepo builds the repository of the scenarios: a linear history on
// main, and two branches off its last commit for the accidents.
func scenarioRepo(t *testing.T) *gitRepo {
	g := newGitRepo(t)
	g.commit(t, "base", "fleets: shop, db, monitoring, legacy", map[string]string{
		"fleetd-inventory.yaml":          inventory,
		"fleets/shop/compose.yaml":       shopCompose,
		"fleets/shop/.env":               "WEB_VERSION=1.4.0\nAPI_TOKEN=s3cr3t-1\n",
		"fleets/db/compose.yaml":         dbCompose,
		"fleets/monitoring/compose.yaml": monitoringCompose,
		"fleets/legacy/compose.yaml":     legacyCompose,
	})
	g.commit(t, "image-bump", "shop: web 1.5.0", map[string]string{
		"fleets/shop/.env": "WEB_VERSION=1.5.0\nAPI_TOKEN=s3cr3t-1\n",
	})
	g.commit(t, "env-change", "shop: debug logs, rotate the API token, checkout flag", map[string]string{
		"fleets/shop/.env": "WEB_VERSION=1.5.0\nAPI_TOKEN=s3cr3t-2\n",
		"fleets/shop/compose.yaml": strings.Replace(shopCompose, "      LOG_LEVEL: info\n",
			"      LOG_LEVEL: debug\n      FEATURE_CHECKOUT: \"on\"\n", 1),
	})
	scaled := strings.Replace(shopCompose, "      LOG_LEVEL: info\n", "      LOG_LEVEL: debug\n      FEATURE_CHECKOUT: \"on\"\n", 1)
	scaled = strings.Replace(scaled, "      replicas: 2\n      update_config: {parallelism: 1,", "      replicas: 4\n      update_config: {parallelism: 2,", 1)
	g.commit(t, "scale", "shop: 4 web replicas, 2 per batch", map[string]string{"fleets/shop/compose.yaml": scaled})
	g.commit(t, "new-fleet", "blog: new fleet on the web hosts", map[string]string{"fleets/blog/compose.yaml": blogCompose})
	g.commit(t, "removed-fleet", "legacy: retired, blog serves its API on port 9000", map[string]string{
		"fleets/legacy/compose.yaml": "",
		"fleets/blog/compose.yaml": blogCompose + `  uploads-api:
    image: registry.example.com/uploads-api:1.0
    ports: ["9000:9000"]
`,
	})
	g.commit(t, "moved-label", "inventory: web-2 becomes a database host", map[string]string{
		"fleetd-inventory.yaml": strings.Replace(inventory, "{role: web, zone: b}", "{role: db, zone: b}", 1),
	})
	g.git(t, "checkout", "-q", "-b", "broken")
	g.commit(t, "invalid-yaml", "shop: mis-indented environment", map[string]string{
		"fleets/shop/compose.yaml": strings.Replace(scaled, "      LOG_LEVEL: debug\n", "     LOG_LEVEL: debug\n", 1),
	})
	g.git(t, "checkout", "-q", "moved-label")
	g.git(t, "checkout", "-q", "-b", "wipe")
	g.commit(t, "delete-all", "remove the fleets directory", map[string]string{"fleets": ""})
	return g
}

func TestPlanRevisions(t *testing.T) {
	g := scenarioRepo(t)
	for _, tc := range []struct {
		name, base, head string
		code             int
		check            func(t *testing.T, rv review.Report)
	}{
		{"image-bump", "base", "image-bump", 2, func(t *testing.T, rv review.Report) {
			h := hostOf(t, rv, "web-1")
			rc := serviceOf(t, h, "shop", "web").Recreate
			if rc == nil || rc.Containers != 2 || rc.Rollout.Order != "start-first" || rc.Rollout.Batches != 2 {
				t.Errorf("shop/web on web-1: recreate = %+v, want 2 containers, start-first, 2 batches", rc)
			}
			if len(hostOf(t, rv, "db-1").Fleets) != 0 {
				t.Errorf("db-1 changes, want nothing: %+v", hostOf(t, rv, "db-1").Fleets)
			}
		}},
		{"env-change", "image-bump", "env-change", 2, func(t *testing.T, rv review.Report) {
			fields := serviceOf(t, hostOf(t, rv, "web-2"), "shop", "web").Recreate.Fields
			want := []review.FieldChange{
				{Field: "environment.API_TOKEN", From: "<redacted>", To: "<redacted>"},
				{Field: "environment.FEATURE_CHECKOUT", From: "", To: "<redacted>"},
				{Field: "environment.LOG_LEVEL", From: "info", To: "debug"},
			}
			if !slices.Equal(fields, want) {
				t.Errorf("fields = %+v\nwant %+v", fields, want)
			}
		}},
		{"scale", "env-change", "scale", 2, func(t *testing.T, rv review.Report) {
			s := serviceOf(t, hostOf(t, rv, "web-1"), "shop", "web")
			if s.Recreate != nil || s.Replicas != (review.Scale{From: 2, To: 4}) || len(s.Updates) != 1 {
				t.Errorf("shop/web: %+v, want scaled 2 → 4 with one update and no recreate", s)
			}
		}},
		{"new-fleet", "scale", "new-fleet", 2, nil},
		{"removed-fleet", "new-fleet", "removed-fleet", 2, func(t *testing.T, rv review.Report) {
			kinds := warningKinds(hostOf(t, rv, "web-1"))
			if !slices.Contains(kinds, review.WarnPortTakeover) || !slices.Contains(kinds, review.WarnOrphanedVolume) {
				t.Errorf("web-1 warnings %v, want a port takeover and an orphaned volume", kinds)
			}
		}},
		{"moved-label", "removed-fleet", "moved-label", 2, func(t *testing.T, rv review.Report) {
			h := hostOf(t, rv, "web-2")
			if h.Counts.FleetsAdded != 1 || h.Counts.FleetsRemoved != 2 || !slices.Contains(warningKinds(h), review.WarnPruneGuard) {
				t.Errorf("web-2: %+v, want db added, shop and blog removed, the prune guard", h.Counts)
			}
		}},
		{"invalid-yaml", "moved-label", "invalid-yaml", 1, func(t *testing.T, rv review.Report) {
			if rv.Valid || len(rv.Problems) == 0 || rv.Problems[0].File != "fleets/shop/compose.yaml" || rv.Problems[0].Line == 0 {
				t.Errorf("problems = %+v, want one in fleets/shop/compose.yaml with a line", rv.Problems)
			}
			h := hostOf(t, rv, "web-1")
			if !slices.Equal(h.Blocked, []string{"shop"}) || h.Counts.FleetsRemoved != 0 || slices.Contains(warningKinds(h), review.WarnPruneGuard) {
				t.Errorf("web-1: blocked %v, counts %+v, warnings %v: want shop blocked, nothing removed, no prune guard", h.Blocked, h.Counts, warningKinds(h))
			}
		}},
		{"delete-all", "moved-label", "delete-all", 2, func(t *testing.T, rv review.Report) {
			for _, h := range rv.Hosts {
				if !slices.Contains(warningKinds(h), review.WarnPruneGuard) {
					t.Errorf("%s: warnings %v, want the prune guard", h.Host.Name, warningKinds(h))
				}
			}
		}},
		{"no-change", "moved-label", "moved-label", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--path", "fleets", "--base", tc.base, "--head", tc.head}
			text := plan(t, g.dir, args...)
			if text.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", text.code, tc.code, text.stdout, text.stderr)
			}
			md := plan(t, g.dir, append(args, "--format", "markdown")...)
			if again := plan(t, g.dir, append(args, "--format", "markdown")...); again.stdout != md.stdout {
				t.Errorf("markdown differs between two runs on the same revisions")
			}
			checkGolden(t, tc.name+".txt", text.stdout)
			checkGolden(t, tc.name+".md", md.stdout)
			rv := reviewJSON(t, g.dir, args...)
			if rv.Base.Commit != g.git(t, "rev-parse", tc.base) || rv.Head.Ref != tc.head {
				t.Errorf("base %+v head %+v", rv.Base, rv.Head)
			}
			if tc.check != nil {
				tc.check(t, rv)
			}
		})
	}
}

// TestPlanRevisionsFlags covers the single-host mode and the errors.
func TestPlanRevisionsFlags(t *testing.T) {
	g := scenarioRepo(t)
	r := plan(t, g.dir, "--path", "fleets", "--base", "base", "--head", "image-bump", "--host", "db-1", "--label", "role=db")
	if r.code != 0 || !strings.Contains(r.stdout, "host db-1 [role=db]: no changes") {
		t.Errorf("single host db-1: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--base", "nope"}, 1, "nope"},
		{[]string{"--base", "base", "--path", "nowhere"}, 1, "--path nowhere"},
		{[]string{"--base", "base", "--path", "fleets/shop/compose.yaml"}, 1, "not a directory"},
		{[]string{"--base", "base", "--inventory", "missing.yaml"}, 1, "missing.yaml"},
		{[]string{"--base", "base", "--inventory", "x.yaml", "--host", "a"}, 1, "exclude"},
		{[]string{"--base", "base", "--format", "yaml"}, 1, "--format"},
	} {
		r := plan(t, g.dir, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("plan %v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}

// TestPlanRevisionsRemoteAuth plans between two branches of a remote
// repository that requires a token: refused without it, naming the
// repository; planned with --git-token-file, and the token appears nowhere
// in the output.
func TestPlanRevisionsRemoteAuth(t *testing.T) {
	const token = "s3cr3t-token-value"
	g := newGitServer(t)
	compose := func(image string) string {
		return "services:\n  web:\n    image: " + image + "\n    pull_policy: never\n"
	}
	g.commit("main", "base", map[string]string{"fleets/shop/compose.yaml": compose("shop:1")})
	g.commit("bump", "bump shop", map[string]string{"fleets/shop/compose.yaml": compose("shop:2")})
	g.requireAuth("x-access-token", token)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--path", "fleets", "--base", "main", "--head", "bump", "--host", "h1"}

	r := plan(t, g.url(), args...)
	if r.code != 1 || !strings.Contains(r.stderr, "127.0.0.1") || !strings.Contains(strings.ToLower(r.stderr), "auth") {
		t.Errorf("without a token: exit %d, stderr %q; want exit 1 naming the repository and authentication", r.code, r.stderr)
	}
	r = plan(t, g.url(), append(args, "--git-token-file", tokenFile)...)
	if r.code != 2 || !strings.Contains(r.stdout, "shop:1 → shop:2") {
		t.Errorf("with --git-token-file: exit %d, want 2 and the image bump\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, token) {
		t.Errorf("the token appears in the output")
	}
	r = plan(t, g.url(), append(args, "--git-token-file", filepath.Join(t.TempDir(), "missing"))...)
	if r.code != 1 || !strings.Contains(r.stderr, "--git-token-file") {
		t.Errorf("missing token file: exit %d, stderr %q; want a usage error naming the flag", r.code, r.stderr)
	}
	r = plan(t, g.bare, append(args, "--git-token-file", tokenFile)...)
	if r.code != 1 || !strings.Contains(r.stderr, "remote --repo") {
		t.Errorf("token with a local repository: exit %d, stderr %q; want a usage error", r.code, r.stderr)
	}
	r = plan(t, g.url(), append(args, "--ssh-key-file", tokenFile, "--known-hosts-file", tokenFile)...)
	if r.code != 1 || !strings.Contains(r.stderr, "--ssh-key-file") {
		t.Errorf("SSH key for an HTTP URL: exit %d, stderr %q; want a usage error naming the flag", r.code, r.stderr)
	}
}

// TestPlanRevisionsNestedFleets: a fleet inside another fleet's directory
// (here inside its build context) stays in base's tree: changing the outer
// fleet's environment shows just that, with no phantom change of its build
// context, and the unchanged inner fleet shows nothing.
func TestPlanRevisionsNestedFleets(t *testing.T) {
	g := newGitRepo(t)
	g.commit(t, "base", "nested", map[string]string{
		"fleets/a/compose.yaml":       "services:\n  web:\n    build: ./app\n    image: a:1\n    environment: {LEVEL: one}\n",
		"fleets/a/app/Dockerfile":     "FROM scratch\nCOPY . /\n",
		"fleets/a/app/b/compose.yaml": "services:\n  inner:\n    image: b:1\n    pull_policy: never\n",
	})
	g.commit(t, "head", "env of a", map[string]string{
		"fleets/a/compose.yaml": "services:\n  web:\n    build: ./app\n    image: a:1\n    environment: {LEVEL: two}\n",
	})
	rv := reviewJSON(t, g.dir, "--path", "fleets", "--base", "base", "--head", "head", "--host", "h1")
	h := hostOf(t, rv, "h1")
	web := serviceOf(t, h, "a", "web")
	if web.Recreate == nil || len(web.Recreate.Build) != 0 {
		t.Errorf("a/web: want a recreate for the environment only, got %+v", web.Recreate)
	}
	for _, f := range h.Fleets {
		if f.Name == "b" {
			t.Errorf("the unchanged nested fleet b shows a change: %+v", f)
		}
	}

	// The outer fleet deleted, the inner one unchanged: base still has
	// the inner fleet's files, which the outer one read, so the plan
	// shows the outer fleet going away.
	g2 := newGitRepo(t)
	g2.commit(t, "base", "nested", map[string]string{
		"fleets/x/compose.yaml":   "services:\n  web:\n    image: x:1\n    pull_policy: never\n    env_file: [y/app.env]\n",
		"fleets/x/y/compose.yaml": "services:\n  inner:\n    image: y:1\n    pull_policy: never\n",
		"fleets/x/y/app.env":      "A=1\n",
	})
	g2.commit(t, "head", "drop x", map[string]string{"fleets/x/compose.yaml": ""})
	r := plan(t, g2.dir, "--path", "fleets", "--base", "base", "--head", "head", "--host", "h1")
	if r.code != 2 || !strings.Contains(r.stdout, "- fleet x") {
		t.Errorf("outer fleet deleted: exit %d, want 2 and fleet x removed\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestValidateBase validates a working tree against a base revision:
// problems already at base are reported but do not fail, new ones do, and
// a fixed problem is simply gone.
func TestValidateBase(t *testing.T) {
	g := newGitRepo(t)
	svc := func(extra string) string {
		return "services:\n  web:\n    image: shop:1\n    pull_policy: never\n" + extra
	}
	g.commit(t, "base", "shop with umask", map[string]string{
		"fleets/shop/compose.yaml":  svc("    umask: \"0022\"\n"),
		"fleets/hello/compose.yaml": svc(""),
	})
	fleetsDir := filepath.Join(g.dir, "fleets")
	validate := func(args ...string) planRun {
		return runNoDocker(t, append([]string{"validate", fleetsDir, "--host", "h1"}, args...)...)
	}

	// The base's own problem: reported, not new, exit 0.
	r := validate("--base", "base")
	if r.code != 0 || !strings.Contains(r.stdout, "umask: the Docker Engine API takes no umask: set it in the image's entrypoint  (already at base)") || !strings.Contains(r.stdout, "1 problems, 0 new since base ") || !strings.HasSuffix(r.stdout, " (base)\n") {
		t.Errorf("unchanged tree: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := validate(); r.code != 1 {
		t.Errorf("without --base any problem fails: exit %d", r.code)
	}

	// A new problem in the working tree (uncommitted) fails; lines moved
	// above the old one do not make it new.
	g.write(t, "fleets/shop/compose.yaml", "# moved down\n"+svc("    umask: \"0022\"\n    use_api_socket: true\n"))
	r = validate("--base", "base")
	if r.code != 1 || !strings.Contains(r.stdout, "use_api_socket: it hands the container") || !strings.Contains(r.stdout, "(new)") ||
		!strings.Contains(r.stdout, "umask: the Docker Engine API takes no umask: set it in the image's entrypoint  (already at base)") {
		t.Errorf("new problem: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var rep struct {
		Valid bool `json:"valid"`
		Base  struct {
			Ref         string           `json:"ref"`
			Commit      string           `json:"commit"`
			NewProblems []fleets.Problem `json:"new_problems"`
		} `json:"base"`
	}
	r = validate("--base", "base", "--format", "json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if rep.Valid || rep.Base.Ref != "base" || len(rep.Base.Commit) != 40 || len(rep.Base.NewProblems) == 0 {
		t.Errorf("json report %+v", rep)
	}
	for _, p := range rep.Base.NewProblems {
		if p.Field == "umask" {
			t.Errorf("the base's problem is reported new: %+v", p)
		}
	}

	// Fixing the old problem: clean, exit 0.
	g.write(t, "fleets/shop/compose.yaml", svc(""))
	if r := validate("--base", "base"); r.code != 0 || !strings.Contains(r.stdout, "0 problems, 0 new since base ") {
		t.Errorf("fixed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Not in a Git repository, or an unknown revision: nothing to compare
	// with, a usage error (exit 1, as any error).
	if r := runNoDocker(t, "validate", t.TempDir(), "--base", "main"); r.code != 1 || !strings.Contains(r.stderr, "Git repository") {
		t.Errorf("outside a repository: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := validate("--base", "nope"); r.code != 1 || !strings.Contains(r.stderr, "nope") {
		t.Errorf("unknown revision: exit %d, stderr %q", r.code, r.stderr)
	}

	// The repository's root as DIR (its fleet named after the directory
	// on both sides), and DIR reached through a symlink.
	g.commit(t, "root", "a fleet at the root", map[string]string{
		"compose.yaml": svc("    umask: \"0022\"\n"),
	})
	r = runNoDocker(t, "validate", g.dir, "--host", "h1", "--base", "root")
	if r.code != 0 || strings.Contains(r.stdout, "(new)") || !strings.Contains(r.stdout, "(already at base)") {
		t.Errorf("root fleet: exit %d, want its old problem not new\n%s%s", r.code, r.stdout, r.stderr)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(g.dir, link); err != nil {
		t.Fatal(err)
	}
	r = runNoDocker(t, "validate", filepath.Join(link, "fleets"), "--host", "h1", "--base", "root")
	if r.code != 0 || !strings.Contains(r.stdout, "0 new since base") {
		t.Errorf("through a symlinked parent: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	direct := filepath.Join(t.TempDir(), "fleets-link")
	if err := os.Symlink(g.dir, direct); err != nil {
		t.Fatal(err)
	}
	r = runNoDocker(t, "validate", direct, "--host", "h1", "--base", "root")
	if r.code != 0 || !strings.Contains(r.stdout, "1 problems, 0 new since base") {
		t.Errorf("DIR itself a symlink: exit %d, want its fleets loaded\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestPlanRevisionsExamples plans a change of the repository's own
// examples/fleets: a new greeting for the shop, two hello replicas.
func TestPlanRevisionsExamples(t *testing.T) {
	g := newGitRepo(t)
	if err := os.CopyFS(g.dir, os.DirFS(filepath.Join("..", "examples", "fleets"))); err != nil {
		t.Fatal(err)
	}
	g.commit(t, "base", "examples", nil)
	hello, err := os.ReadFile(filepath.Join(g.dir, "hello", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	g.commit(t, "head", "shop: new greeting; hello: two replicas", map[string]string{
		"shop/.env":          "GREETING=hello from the new shop\n",
		"hello/compose.yaml": string(hello) + "    deploy:\n      replicas: 2\n",
	})
	args := []string{"--base", "base", "--head", "head", "--host", "web-1"}
	text := plan(t, g.dir, args...)
	if text.code != 2 {
		t.Fatalf("exit %d, want 2\n%s%s", text.code, text.stdout, text.stderr)
	}
	checkGolden(t, "examples.txt", text.stdout)
	checkGolden(t, "examples.md", plan(t, g.dir, append(args, "--format", "markdown")...).stdout)
	rv := reviewJSON(t, g.dir, args...)
	web := serviceOf(t, hostOf(t, rv, "web-1"), "shop", "web")
	if web.Recreate == nil || web.Recreate.Rollout.Order != "start-first" {
		t.Errorf("shop/web: %+v, want recreated start-first", web)
	}
}

func hostOf(t *testing.T, rv review.Report, name string) review.HostReview {
	t.Helper()
	for _, h := range rv.Hosts {
		if h.Host.Name == name {
			return h
		}
	}
	t.Fatalf("no host %s in the review", name)
	return review.HostReview{}
}

func serviceOf(t *testing.T, h review.HostReview, fleet, service string) review.ServiceReview {
	t.Helper()
	for _, f := range h.Fleets {
		for _, s := range f.Services {
			if f.Name == fleet && s.Name == service {
				return s
			}
		}
	}
	t.Fatalf("no change of %s/%s on %s", fleet, service, h.Host.Name)
	return review.ServiceReview{}
}

func warningKinds(h review.HostReview) []string {
	var kinds []string
	for _, w := range h.Warnings {
		kinds = append(kinds, w.Kind)
	}
	return kinds
}

// TestPlanRevisionsFilesOutsideTheFleet: a fleet may read files elsewhere
// in the repository (`..` inside the checkout). A change to such a file
// alone changes the fleet, though its directory did not change; a bind of
// a directory there is a "repo:../…" path that stays the same from one
// commit to the next.
func TestPlanRevisionsFilesOutsideTheFleet(t *testing.T) {
	g := newGitRepo(t)
	compose := "services:\n  api:\n    image: api:1\n    env_file: ../../shared/app.env\n    volumes: [\"../../shared/conf:/etc/app:ro\"]\n"
	g.commit(t, "base", "shop reads shared files", map[string]string{
		"fleets/shop/compose.yaml":  compose,
		"fleets/other/compose.yaml": "services:\n  web:\n    image: web:1\n",
		"shared/app.env":            "LEVEL=info\n",
		"shared/conf/app.conf":      "x=1\n",
		"README.md":                 "fleets\n",
	})
	g.commit(t, "readme", "an unrelated change", map[string]string{"README.md": "fleets, again\n"})
	g.commit(t, "env", "only the shared env file", map[string]string{"shared/app.env": "LEVEL=debug\n"})
	g.commit(t, "escape", "a path out of the repository", map[string]string{
		"fleets/shop/compose.yaml": "services:\n  api:\n    image: api:1\n    env_file: ../../../app.env\n",
	})
	host := []string{"--path", "fleets", "--host", "web-1"}
	if r := plan(t, g.dir, append(host, "--base", "base", "--head", "readme")...); r.code != 0 {
		t.Errorf("an unrelated commit: exit %d, want 0 (the bind's source is the same repo: path)\n%s%s", r.code, r.stdout, r.stderr)
	}
	r := plan(t, g.dir, append(host, "--base", "readme", "--head", "env")...)
	if r.code != 2 || !strings.Contains(r.stdout, "LEVEL") || !strings.Contains(r.stdout, "shop") || strings.Contains(r.stdout, "other") {
		t.Errorf("a change to ../../shared/app.env: exit %d, want 2 and shop's environment.LEVEL changed, other untouched\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A fleet that read another's directory at base only: that directory
	// (unchanged) must still be in base's export.
	g.commit(t, "reads-a", "b reads a's file", map[string]string{
		"fleets/shop":           "", // no fleet at head reads outside its directory
		"fleets/a/compose.yaml": "services:\n  x:\n    image: x:1\n",
		"fleets/a/common.env":   "LEVEL=info\n",
		"fleets/b/compose.yaml": "services:\n  y:\n    image: y:1\n    env_file: ../a/common.env\n",
	})
	g.commit(t, "inline", "b inlines it", map[string]string{
		"fleets/b/compose.yaml": "services:\n  y:\n    image: y:1\n    environment: {LEVEL: info}\n",
	})
	r = plan(t, g.dir, append(host, "--base", "reads-a", "--head", "inline")...)
	if r.code != 0 || strings.Contains(r.stdout, "invalid") {
		t.Errorf("b stops reading a's file, same environment: exit %d, want 0 and no invalid base\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = plan(t, g.dir, append(host, "--base", "env", "--head", "escape")...)
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "resolves outside the repository") {
		t.Errorf("a path out of the checkout: exit %d, want 1 naming it\n%s%s", r.code, r.stdout, r.stderr)
	}
}
