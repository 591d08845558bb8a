package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/review"
	"github.com/fleetd/fleetd/source"
)

// revFlags are the flags of `fleetd plan --base/--head`: a plan between two
// revisions of the fleet repository, for pull-request review. It needs no
// Docker engine.
type revFlags struct {
	base, head string
	path       string
	inventory  string
	// auth is how to reach a remote --repo: the daemon's source.auth
	// settings, as flags naming files.
	auth authConfig
}

func (rf *revFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&rf.base, "base", "", "plan between revisions: the revision merged into (branch, tag, commit, HEAD~1); --repo is then a Git repository (path or URL)")
	cmd.Flags().StringVar(&rf.head, "head", "HEAD", "plan between revisions: the revision to merge")
	cmd.Flags().StringVar(&rf.path, "path", ".", "plan between revisions: the fleets directory inside the repository")
	cmd.Flags().StringVar(&rf.inventory, "inventory", "", "plan between revisions: inventory file inside the repository (default "+fleets.DefaultInventory+" when present; else --host and --label)")
	registerAuth(cmd, &rf.auth)
}

// registerAuth adds the flags that authenticate to a remote repository,
// each naming a file so that no secret appears in a command line.
func registerAuth(cmd *cobra.Command, a *authConfig) {
	f := cmd.Flags()
	f.StringVar(&a.TokenFile, "git-token-file", "", "remote --repo over HTTPS: file holding an access token (sent as the password, user x-access-token unless --git-username)")
	f.StringVar(&a.Username, "git-username", "", "remote --repo over HTTPS: user name for basic auth")
	f.StringVar(&a.PasswordFile, "git-password-file", "", "remote --repo over HTTPS: file holding the basic auth password")
	f.StringVar(&a.SSHKeyFile, "ssh-key-file", "", "remote --repo over SSH: private key file (needs --known-hosts-file)")
	f.StringVar(&a.SSHKeyPassphraseFile, "ssh-key-passphrase-file", "", "remote --repo over SSH: file holding the key's passphrase")
	f.StringVar(&a.KnownHostsFile, "known-hosts-file", "", "remote --repo over SSH: known_hosts file; host keys are checked strictly")
}

// requested reports whether the plan is between revisions.
func (rf *revFlags) requested(cmd *cobra.Command) bool {
	return cmd.Flags().Changed("base") || cmd.Flags().Changed("head")
}

// runPlanRevisions exports both revisions, loads them for every host and
// prints the review. Exit 0: no changes, 2: changes, 1: an error or an
// invalid head (the review is printed first).
func runPlanRevisions(cmd *cobra.Command, l *liveFlags, rf *revFlags) error {
	if err := rf.check(cmd, l); err != nil {
		return err
	}
	rv, err := planRevisions(cmd.Context(), l, rf, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if err := writeReview(cmd.OutOrStdout(), l.format, rv); err != nil {
		return err
	}
	switch {
	case !rv.Valid:
		return &exitError{code: exitFailure, err: errors.New("the head revision is invalid")}
	case rv.Changed:
		return &exitError{code: exitChanges, err: errors.New("")}
	}
	return nil
}

func (rf *revFlags) check(cmd *cobra.Command, l *liveFlags) error {
	switch {
	case rf.base == "":
		return usageError("plan between revisions needs --base")
	case l.format != "text" && l.format != "markdown" && l.format != "json":
		return usageError("--format %q: want text, markdown or json", l.format)
	case cmd.Flags().Changed("live"):
		return usageError("--live and --base/--head exclude each other")
	case rf.inventory != "" && (cmd.Flags().Changed("host") || cmd.Flags().Changed("label")):
		return usageError("--inventory and --host/--label exclude each other")
	}
	return nil
}

func writeReview(w io.Writer, format string, rv review.Report) error {
	var err error
	switch format {
	case "json":
		return writeJSON(w, rv)
	case "markdown":
		_, err = io.WriteString(w, rv.Markdown())
	default:
		_, err = io.WriteString(w, rv.String())
	}
	return err
}

// planRevisions is the whole plan: export, hosts, load, review.
func planRevisions(ctx context.Context, l *liveFlags, rf *revFlags, stderr io.Writer) (review.Report, error) {
	tmp, err := os.MkdirTemp("", "fleetd-plan-")
	if err != nil {
		return review.Report{}, fmt.Errorf("plan: %w", err)
	}
	defer os.RemoveAll(tmp)
	if rf.auth != (authConfig{}) && source.IsLocal(l.repo) {
		return review.Report{}, usageError("--git-*, --ssh-* and --known-hosts-file apply to a remote --repo; %s is a local path", l.repo)
	}
	auth, err := gitAuth(rf.auth)
	if err != nil {
		return review.Report{}, err
	}
	// One open (for a remote, one fetch) serves both revisions.
	snap, err := source.OpenSnapshot(ctx, l.repo, auth)
	if errors.Is(err, source.ErrConfig) {
		return review.Report{}, usageError("%s", authFlagNames.Replace(err.Error()))
	}
	if err != nil {
		return review.Report{}, err
	}
	if err := checkPath(snap, rf); err != nil {
		return review.Report{}, err
	}
	hosts, err := planHosts(snap, l, rf, stderr)
	if err != nil {
		return review.Report{}, err
	}
	// A fleet at the repository's root is named after the repository on
	// both sides, not after the directories the revisions are written to:
	// a local work tree's own name, else the URL's.
	repoName := source.RepoName(l.repo)
	if wt := snap.WorktreeRoot(); wt != "" {
		repoName = filepath.Base(wt)
	}
	// Only a --policy given is enforced: the hosts of an inventory may
	// each have their own; the review lists every grant either way.
	policy, err := l.policyOptions(false)
	if err != nil {
		return review.Report{}, err
	}
	baseRev, headRev, err := loadRevisions(ctx, snap, rf, hosts, tmp, append(policy, rootName(rf.path, repoName)...)...)
	if err != nil {
		return review.Report{}, err
	}
	rv := review.Compare(
		review.RevisionRef{Ref: rf.base, Commit: baseRev.Commit, Subject: baseRev.Subject},
		review.RevisionRef{Ref: rf.head, Commit: headRev.Commit, Subject: headRev.Subject},
		hosts)
	// Load names files relative to --path; a reviewer looks for them from
	// the repository's root.
	for _, ps := range [][]fleets.Problem{rv.Problems, rv.BaseProblems} {
		for i := range ps {
			if ps[i].File != "" {
				ps[i].File = path.Join(rf.path, ps[i].File)
			}
		}
	}
	return rv, nil
}

// checkPath fails when --path is in neither revision. A fleets directory
// missing on one side holds no fleets there (all of them deleted, or the
// first ones added).
func checkPath(snap *source.Snapshot, rf *revFlags) error {
	found := false
	for _, ref := range []string{rf.base, rf.head} {
		kind, err := snap.Kind(ref, path.Clean(rf.path))
		switch {
		case err != nil:
			return err
		case kind != "" && kind != "dir":
			return usageError("--path %s: a %s at %s, not a directory", rf.path, kind, ref)
		}
		found = found || kind == "dir"
	}
	if !found {
		return usageError("--path %s: not in the repository at %s nor at %s", rf.path, rf.base, rf.head)
	}
	return nil
}

// authFlagNames renames the daemon's settings in source's errors to the
// flags that set them here.
var authFlagNames = strings.NewReplacer(
	"source auth.token", "--git-token-file/--git-username/--git-password-file",
	"source auth.ssh_key_file", "--ssh-key-file",
	"source auth.known_hosts_file", "--known-hosts-file",
	"source repo", "--repo",
)

// gitAuth reads the secrets the auth flags name; an unreadable file is
// reported with its flag.
func gitAuth(a authConfig) (source.Auth, error) {
	for _, f := range [][2]string{{"--git-token-file", a.TokenFile}, {"--git-password-file", a.PasswordFile},
		{"--ssh-key-passphrase-file", a.SSHKeyPassphraseFile}} {
		if _, err := readSecret(f[1]); err != nil {
			return source.Auth{}, usageError("%s: %v", f[0], err)
		}
	}
	if a.SSHKeyFile != "" && a.KnownHostsFile == "" {
		return source.Auth{}, usageError("--ssh-key-file needs --known-hosts-file: host keys are checked strictly")
	}
	return sourceAuth(a)
}

// planHosts are the hosts to plan for, with their facts at each side: from
// the inventory when there is one at head, else the single host of --host
// and --label.
func planHosts(snap *source.Snapshot, l *liveFlags, rf *revFlags, stderr io.Writer) ([]review.HostRevisions, error) {
	name := rf.inventory
	if name == "" && (l.hostFlags.name != "" || len(l.hostFlags.labels) > 0) {
		return singleHost(l)
	}
	if name == "" {
		name = fleets.DefaultInventory
	}
	head, found, err := readInventory(snap, rf.head, name)
	if err != nil {
		return nil, fmt.Errorf("inventory at %s: %w", rf.head, err)
	}
	if !found {
		if rf.inventory != "" {
			return nil, fmt.Errorf("inventory %s: not in the repository at %s", name, rf.head)
		}
		return singleHost(l)
	}
	base, found, err := readInventory(snap, rf.base, name)
	if err != nil {
		fmt.Fprintf(stderr, "fleetd: inventory at %s is invalid, planned with the head's: %v\n", rf.base, err)
		base, found = head, true
	}
	if !found {
		base = head
	}
	return hostPairs(base, head), nil
}

func singleHost(l *liveFlags) ([]review.HostRevisions, error) {
	host, err := l.host()
	if err != nil {
		return nil, err
	}
	return []review.HostRevisions{{Base: review.HostLoad{Host: host}, Head: review.HostLoad{Host: host}}}, nil
}

// readInventory reads the inventory file at ref; found is false when
// there is none.
func readInventory(snap *source.Snapshot, ref, name string) (fleets.Inventory, bool, error) {
	clean := path.Clean(name)
	if !fs.ValidPath(clean) {
		return fleets.Inventory{}, false, usageError("--inventory %q: want a relative path inside the repository", name)
	}
	data, found, err := snap.ReadFile(ref, clean)
	if err != nil || !found {
		return fleets.Inventory{}, false, err
	}
	inv, err := fleets.ParseInventory(clean, data)
	return inv, true, err
}

// hostPairs pairs the hosts of both inventories by name. A host listed on
// one side only is planned with the facts of that side on both.
func hostPairs(base, head fleets.Inventory) []review.HostRevisions {
	var out []review.HostRevisions
	for _, h := range head.Hosts {
		hr := review.HostRevisions{Head: review.HostLoad{Host: h}, Base: review.HostLoad{Host: h}}
		if b, ok := base.Host(h.Name); ok {
			hr.Base.Host = b
		} else {
			hr.Inventory = review.InventoryAdded
		}
		out = append(out, hr)
	}
	for _, b := range base.Hosts {
		if _, ok := head.Host(b.Name); !ok {
			out = append(out, review.HostRevisions{Head: review.HostLoad{Host: b}, Base: review.HostLoad{Host: b}, Inventory: review.InventoryRemoved})
		}
	}
	return out
}

// loadRevisions exports and loads both revisions for every host.
// Problems are kept for the review; any other error ends the plan.
//
// Loading dominates a plan, so base is loaded only where it differs: a
// fleet whose directory is the same at both revisions (Git says so by
// comparing tree hashes), and valid at head on every host, loads the same
// at base for a host with the same facts; the head's result stands in for
// it, and base is exported without those directories. Base's cross-fleet
// checks then see only the fleets that changed, which is fine: base's
// problems are only shown, head is always checked whole. A host whose
// facts the inventory changes gets a whole base.
func loadRevisions(ctx context.Context, snap *source.Snapshot, rf *revFlags, hosts []review.HostRevisions, tmp string, opts ...fleets.Option) (base, head source.Revision, err error) {
	if head, err = exportSide(ctx, snap, rf.head, rf.path, filepath.Join(tmp, "head"), nil); err != nil {
		return base, head, err
	}
	all := make([]*review.HostRevisions, len(hosts))
	for i := range hosts {
		all[i] = &hosts[i]
	}
	headSide := func(hr *review.HostRevisions) *review.HostLoad { return &hr.Head }
	baseSide := func(hr *review.HostRevisions) *review.HostLoad { return &hr.Base }
	if err := loadSide(ctx, head, all, headSide, opts...); err != nil {
		return base, head, err
	}
	changed, err := snap.Changed(ctx, rf.base, rf.head, path.Clean(rf.path))
	if err != nil {
		return base, head, err
	}
	nested, err := fleetDirsBoth(snap, rf, head.Dir)
	if err != nil {
		return base, head, err
	}
	same := unchangedFleetDirs(hosts, changed, path.Clean(rf.path), nested)
	var moved, kept []*review.HostRevisions // hosts whose facts the inventory changes, or not
	for _, hr := range all {
		if sameFacts(hr.Base.Host, hr.Head.Host) {
			kept = append(kept, hr)
		} else {
			moved = append(moved, hr)
		}
	}
	if len(moved) > 0 {
		whole, err := exportSide(ctx, snap, rf.base, rf.path, filepath.Join(tmp, "base"), nil)
		if err != nil {
			return base, head, err
		}
		if err := loadSide(ctx, whole, moved, baseSide, opts...); err != nil {
			return base, head, err
		}
	}
	skip := map[string]bool{}
	for dir := range same {
		skip[path.Join(path.Clean(rf.path), dir)] = true
	}
	if base, err = exportSide(ctx, snap, rf.base, rf.path, filepath.Join(tmp, "base-changed"), skip); err != nil {
		return base, head, err
	}
	if err := loadSide(ctx, base, kept, baseSide, opts...); err != nil {
		return base, head, err
	}
	if len(skip) > 0 && slices.ContainsFunc(kept, func(hr *review.HostRevisions) bool { return readsAround(hr.Base) }) {
		// A fleet at base reads outside its directory, maybe from one left
		// out of this export: load base whole instead.
		if base, err = exportSide(ctx, snap, rf.base, rf.path, filepath.Join(tmp, "base-whole"), nil); err != nil {
			return base, head, err
		}
		for _, hr := range kept {
			hr.Base.Fleets, hr.Base.Problems = nil, nil
		}
		if err := loadSide(ctx, base, kept, baseSide, opts...); err != nil {
			return base, head, err
		}
		same = nil
	}
	for _, hr := range kept {
		for _, f := range hr.Head.Fleets {
			if same[f.Dir] {
				hr.Base.Fleets = append(hr.Base.Fleets, f)
			}
		}
		slices.SortFunc(hr.Base.Fleets, func(a, b fleets.Fleet) int { return strings.Compare(a.Name, b.Name) })
	}
	return base, head, nil
}

// readsAround reports whether one host's load of a revision has a fleet
// that reads outside its directory, or an invalid one (what it reads is
// unknown).
func readsAround(hl review.HostLoad) bool {
	return len(hl.Problems) > 0 || slices.ContainsFunc(hl.Fleets, func(f fleets.Fleet) bool { return len(f.Outside) > 0 })
}

// exportSide exports one revision, leaving out the directories in skip;
// a fleets directory that is not in it is made empty: it holds no fleets.
func exportSide(ctx context.Context, snap *source.Snapshot, ref, dir, dest string, skip map[string]bool) (source.Revision, error) {
	rev, err := snap.ExportExcept(ctx, ref, dir, dest, skip)
	if err != nil {
		return rev, err
	}
	return rev, os.MkdirAll(rev.Dir, 0o755)
}

// loadSide loads the revision's fleets for one side (base or head) of
// each host, loading each fleet once for the hosts whose facts it does
// not read; what they read is confined to the revision's checkout.
func loadSide(ctx context.Context, rev source.Revision, hosts []*review.HostRevisions, side func(*review.HostRevisions) *review.HostLoad, opts ...fleets.Option) error {
	if len(hosts) == 0 {
		return nil
	}
	dir := rev.Dir
	opts = append(slices.Clip(opts), fleets.Checkout(rev.Root))
	facts := make([]fleets.Host, len(hosts))
	for i, hr := range hosts {
		facts[i] = side(hr).Host
	}
	loaded, err := fleets.LoadHosts(ctx, dir, facts, opts...)
	if err != nil {
		return fmt.Errorf("load %s: %w", dir, err)
	}
	for i, hr := range hosts {
		var pl fleets.ProblemList
		if err := loaded[i].Err; err != nil && !errors.As(err, &pl) {
			return fmt.Errorf("load %s for host %s: %w", dir, facts[i].Name, err)
		}
		hl := side(hr)
		hl.Fleets, hl.Problems = loaded[i].Fleets, pl
	}
	return nil
}

// fleetDirsBoth lists the fleet directories (relative to the fleets path)
// of head, from its exported tree, and of base, from Git: a directory that
// holds a fleet on either side must not be left out of base's export along
// with one above it.
func fleetDirsBoth(snap *source.Snapshot, rf *revFlags, headDir string) ([]string, error) {
	dirs, err := fleets.FleetDirs(headDir)
	if err != nil {
		return nil, err
	}
	fleetsPath := path.Clean(rf.path)
	files, err := snap.List(rf.base, fleetsPath)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if fleets.IsComposeFile(path.Base(f)) {
			rel := strings.TrimPrefix(path.Dir(f), fleetsPath+"/")
			if fleetsPath == "." {
				rel = path.Dir(f)
			}
			if path.Dir(f) == fleetsPath {
				rel = "."
			}
			dirs = append(dirs, rel)
		}
	}
	return dirs, nil
}

// nests reports whether another of the directories is above or below dir.
func nests(dir string, all []string) bool {
	return slices.ContainsFunc(all, func(o string) bool {
		return o != dir && (o == "." || strings.HasPrefix(o, dir+"/") || strings.HasPrefix(dir, o+"/"))
	})
}

func sameFacts(a, b fleets.Host) bool {
	return a.Name == b.Name && maps.Equal(a.Labels, b.Labels)
}

// unchangedFleetDirs are the directories (relative to the fleets path) of
// the fleets that are valid at head on every host and hold no file Git
// reports changed. A fleet directory above or below another one (all is
// every fleet directory at head, valid or not) is never among them: base
// is exported without these directories and everything below them.
//
// A fleet may read files outside its directory (`../shared.env`), which a
// change can change without touching the directory, and which base's
// export must then hold: when any fleet at head reads outside its
// directory, or any is invalid at head (what it reads is unknown), none is
// taken as unchanged.
func unchangedFleetDirs(hosts []review.HostRevisions, changed []string, fleetsPath string, all []string) map[string]bool {
	if slices.ContainsFunc(hosts, func(hr review.HostRevisions) bool { return readsAround(hr.Head) }) {
		return map[string]bool{}
	}
	count := map[string]int{}
	for _, hr := range hosts {
		for _, f := range hr.Head.Fleets {
			count[f.Dir]++
		}
	}
	same := map[string]bool{}
	for dir, n := range count {
		if n != len(hosts) || dir == "." || dir == "" || nests(dir, all) {
			continue
		}
		full := path.Join(fleetsPath, dir)
		if !slices.ContainsFunc(changed, func(file string) bool { return file == full || strings.HasPrefix(file, full+"/") }) {
			same[dir] = true
		}
	}
	return same
}
