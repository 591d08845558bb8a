package main

import (
	"bytes"
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
	"github.com/fleetd/fleetd/reconcile"
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

func writeReview(w io.Writer, format string, rv reconcile.Review) error {
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
func planRevisions(ctx context.Context, l *liveFlags, rf *revFlags, stderr io.Writer) (reconcile.Review, error) {
	tmp, err := os.MkdirTemp("", "fleetd-plan-")
	if err != nil {
		return reconcile.Review{}, fmt.Errorf("plan: %w", err)
	}
	defer os.RemoveAll(tmp)
	baseRev, headRev, err := exportBoth(ctx, l.repo, rf, tmp)
	if err != nil {
		return reconcile.Review{}, err
	}
	hosts, err := planHosts(l, rf, filepath.Join(tmp, "base"), filepath.Join(tmp, "head"), stderr)
	if err != nil {
		return reconcile.Review{}, err
	}
	if err := loadHosts(ctx, hosts, baseRev.Dir, headRev.Dir, tmp); err != nil {
		return reconcile.Review{}, err
	}
	rv := reconcile.PlanRevisions(
		reconcile.RevisionRef{Ref: rf.base, Commit: baseRev.Commit, Subject: baseRev.Subject},
		reconcile.RevisionRef{Ref: rf.head, Commit: headRev.Commit, Subject: headRev.Subject},
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

// exportBoth writes the trees of both revisions under tmp/base and
// tmp/head.
func exportBoth(ctx context.Context, repo string, rf *revFlags, tmp string) (base, head source.Revision, err error) {
	auth, err := gitAuth(rf.auth)
	if err != nil {
		return base, head, err
	}
	// One fetch of a remote serves both revisions.
	snap, err := source.OpenSnapshot(ctx, repo, auth)
	if err != nil {
		return base, head, err
	}
	if base, err = snap.Export(ctx, rf.base, rf.path, filepath.Join(tmp, "base")); err != nil {
		return base, head, err
	}
	if head, err = snap.Export(ctx, rf.head, rf.path, filepath.Join(tmp, "head")); err != nil {
		return base, head, err
	}
	// A fleets directory missing on one side holds no fleets there (all
	// of them deleted, or the first ones added); on both, --path is wrong.
	_, berr := os.Stat(base.Dir)
	_, herr := os.Stat(head.Dir)
	switch {
	case berr != nil && herr != nil:
		return base, head, usageError("--path %s: not in the repository at %s nor at %s", rf.path, rf.base, rf.head)
	case berr != nil:
		err = os.MkdirAll(base.Dir, 0o755)
	case herr != nil:
		err = os.MkdirAll(head.Dir, 0o755)
	}
	return base, head, err
}

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
func planHosts(l *liveFlags, rf *revFlags, baseRoot, headRoot string, stderr io.Writer) ([]reconcile.HostRevisions, error) {
	name := rf.inventory
	if name == "" && (l.hostFlags.name != "" || len(l.hostFlags.labels) > 0) {
		return singleHost(l)
	}
	if name == "" {
		name = fleets.DefaultInventory
	}
	head, found, err := readInventory(headRoot, name)
	if err != nil {
		return nil, fmt.Errorf("inventory at %s: %w", rf.head, err)
	}
	if !found {
		if rf.inventory != "" {
			return nil, fmt.Errorf("inventory %s: not in the repository at %s", name, rf.head)
		}
		return singleHost(l)
	}
	base, found, err := readInventory(baseRoot, name)
	if err != nil {
		fmt.Fprintf(stderr, "fleetd: inventory at %s is invalid, planned with the head's: %v\n", rf.base, err)
		base, found = head, true
	}
	if !found {
		base = head
	}
	return hostPairs(base, head), nil
}

func singleHost(l *liveFlags) ([]reconcile.HostRevisions, error) {
	host, err := l.host()
	if err != nil {
		return nil, err
	}
	return []reconcile.HostRevisions{{Base: reconcile.HostLoad{Host: host}, Head: reconcile.HostLoad{Host: host}}}, nil
}

// readInventory reads the inventory file of an exported tree; found is
// false when there is none.
func readInventory(root, name string) (fleets.Inventory, bool, error) {
	clean := path.Clean(name)
	if !fs.ValidPath(clean) {
		return fleets.Inventory{}, false, usageError("--inventory %q: want a relative path inside the repository", name)
	}
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(clean)))
	if errors.Is(err, fs.ErrNotExist) {
		return fleets.Inventory{}, false, nil
	}
	if err != nil {
		return fleets.Inventory{}, false, err
	}
	inv, err := fleets.ParseInventory(clean, data)
	return inv, true, err
}

// hostPairs pairs the hosts of both inventories by name. A host listed on
// one side only is planned with the facts of that side on both.
func hostPairs(base, head fleets.Inventory) []reconcile.HostRevisions {
	var out []reconcile.HostRevisions
	for _, h := range head.Hosts {
		hr := reconcile.HostRevisions{Head: reconcile.HostLoad{Host: h}, Base: reconcile.HostLoad{Host: h}}
		if b, ok := base.Host(h.Name); ok {
			hr.Base.Host = b
		} else {
			hr.Inventory = reconcile.InventoryAdded
		}
		out = append(out, hr)
	}
	for _, b := range base.Hosts {
		if _, ok := head.Host(b.Name); !ok {
			out = append(out, reconcile.HostRevisions{Head: reconcile.HostLoad{Host: b}, Base: reconcile.HostLoad{Host: b}, Inventory: reconcile.InventoryRemoved})
		}
	}
	return out
}

// loadHosts loads both trees for every host. Problems are kept for the
// review; any other error ends the plan.
//
// Loading dominates a plan, so base is loaded only where it differs: a
// fleet whose directory is byte for byte the same at both revisions, and
// valid at head on every host, loads the same at base for a host with the
// same facts; the head's result stands in for it, and base is loaded from
// a copy of its tree without those directories. Base's cross-fleet checks
// then see only the fleets that changed, which is fine: base's problems are
// only shown, head is always checked whole.
func loadHosts(ctx context.Context, hosts []reconcile.HostRevisions, baseDir, headDir, tmp string) error {
	all := make([]*reconcile.HostRevisions, len(hosts))
	for i := range hosts {
		all[i] = &hosts[i]
	}
	head := func(hr *reconcile.HostRevisions) *reconcile.HostLoad { return &hr.Head }
	base := func(hr *reconcile.HostRevisions) *reconcile.HostLoad { return &hr.Base }
	if err := loadSide(ctx, headDir, all, head); err != nil {
		return err
	}
	same, err := unchangedFleetDirs(hosts, baseDir, headDir)
	if err != nil {
		return err
	}
	reduced := filepath.Join(tmp, "base-changed")
	if err := copyTreeWithout(baseDir, reduced, same); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	var moved, kept []*reconcile.HostRevisions // hosts whose facts the inventory changes, or not
	for _, hr := range all {
		if sameFacts(hr.Base.Host, hr.Head.Host) {
			kept = append(kept, hr)
		} else {
			moved = append(moved, hr)
		}
	}
	if err := loadSide(ctx, baseDir, moved, base); err != nil {
		return err
	}
	if err := loadSide(ctx, reduced, kept, base); err != nil {
		return err
	}
	for _, hr := range kept {
		for _, f := range hr.Head.Fleets {
			if same[f.Dir] {
				hr.Base.Fleets = append(hr.Base.Fleets, f)
			}
		}
		slices.SortFunc(hr.Base.Fleets, func(a, b fleets.Fleet) int { return strings.Compare(a.Name, b.Name) })
	}
	return nil
}

// loadSide loads dir for one side (base or head) of each host, loading
// each fleet once for the hosts whose facts it does not read.
func loadSide(ctx context.Context, dir string, hosts []*reconcile.HostRevisions, side func(*reconcile.HostRevisions) *reconcile.HostLoad) error {
	if len(hosts) == 0 {
		return nil
	}
	facts := make([]fleets.Host, len(hosts))
	for i, hr := range hosts {
		facts[i] = side(hr).Host
	}
	loaded, err := fleets.LoadHosts(ctx, dir, facts)
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

func sameFacts(a, b fleets.Host) bool {
	return a.Name == b.Name && maps.Equal(a.Labels, b.Labels)
}

// unchangedFleetDirs are the directories of the fleets that are valid at
// head on every host and whose files are the same at both revisions.
func unchangedFleetDirs(hosts []reconcile.HostRevisions, baseDir, headDir string) (map[string]bool, error) {
	changed, err := changedFiles(baseDir, headDir)
	if err != nil {
		return nil, fmt.Errorf("plan: compare revisions: %w", err)
	}
	count := map[string]int{}
	for _, hr := range hosts {
		for _, f := range hr.Head.Fleets {
			count[f.Dir]++
		}
	}
	same := map[string]bool{}
	for dir, n := range count {
		if n != len(hosts) || dir == "." || dir == "" {
			continue
		}
		if !slices.ContainsFunc(changed, func(file string) bool { return file == dir || strings.HasPrefix(file, dir+"/") }) {
			same[dir] = true
		}
	}
	return same, nil
}

// changedFiles lists the slash paths that differ between two trees: added,
// removed, or with other contents, mode or link target.
func changedFiles(a, b string) ([]string, error) {
	fa, err := treeFiles(a)
	if err != nil {
		return nil, err
	}
	fb, err := treeFiles(b)
	if err != nil {
		return nil, err
	}
	var out []string
	for name, ia := range fa {
		ib, ok := fb[name]
		if !ok || ia.mode != ib.mode || ia.size != ib.size {
			out = append(out, name)
			continue
		}
		if eq, err := sameContents(filepath.Join(a, name), filepath.Join(b, name), ia.mode); err != nil || !eq {
			out = append(out, name)
		}
	}
	for name := range fb {
		if _, ok := fa[name]; !ok {
			out = append(out, name)
		}
	}
	return out, nil
}

type fileInfo struct {
	mode fs.FileMode
	size int64
}

func treeFiles(root string) (map[string]fileInfo, error) {
	out := map[string]fileInfo{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = fileInfo{mode: info.Mode(), size: info.Size()}
		return nil
	})
	return out, err
}

func sameContents(a, b string, mode fs.FileMode) (bool, error) {
	if mode&fs.ModeSymlink != 0 {
		ta, err := os.Readlink(a)
		if err != nil {
			return false, err
		}
		tb, err := os.Readlink(b)
		return ta == tb, err
	}
	da, err := os.ReadFile(a)
	if err != nil {
		return false, err
	}
	db, err := os.ReadFile(b)
	return bytes.Equal(da, db), err
}

// copyTreeWithout copies the tree src to dst, leaving out the directories
// in skip (slash paths relative to src). Symlinks are copied as links.
func copyTreeWithout(src, dst string, skip map[string]bool) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir() && skip[filepath.ToSlash(rel)]:
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
}
