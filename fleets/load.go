package fleets

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"golang.org/x/sync/errgroup"

	"github.com/fleetd/fleetd/sopsfile"
)

// Load discovers the fleets under root and loads each for host. It returns
// the valid fleets sorted by name and, when any fleet is invalid, a
// ProblemList naming every problem found in the tree: an invalid fleet is
// left out, valid ones are still returned so that the caller can keep
// running them. Any other error (root unreadable, ctx done) comes alone.
func Load(ctx context.Context, root string, host Host, opts ...Option) ([]Fleet, error) {
	absRoot, o, err := prepare(root, opts)
	if err != nil {
		return nil, err
	}
	dirs, problems, err := discover(absRoot, host, o.rootName)
	if err != nil {
		return nil, err
	}
	all, err := loadAll(ctx, absRoot, o.checkout, dirs, host)
	if err != nil {
		return nil, err
	}
	return finish(all, problems, o.hostPolicy)
}

// finish runs the checks across a host's fleets and returns the valid
// ones, sorted by name, with every problem.
func finish(all []*loadedFleet, problems ProblemList, policy *HostPolicy) ([]Fleet, error) {
	var loaded []*loadedFleet
	for _, lf := range all {
		if policy != nil && len(lf.fleet.Services) > 0 {
			checkHostPolicy(lf.fleet, *policy, lf.bindIndex, lf.r)
		}
		problems = append(problems, lf.r.problems...)
		if !lf.r.failed() {
			loaded = append(loaded, lf)
		}
	}
	checkAcross(loaded)
	var fleets []Fleet
	for _, lf := range loaded {
		problems = append(problems, lf.r.problems...)
		if !lf.r.failed() {
			fleets = append(fleets, lf.fleet)
		}
	}
	slices.SortFunc(fleets, func(a, b Fleet) int { return cmp.Compare(a.Name, b.Name) })
	if len(problems) > 0 {
		problems.sort()
		return fleets, slices.Compact(problems)
	}
	return fleets, nil
}

// prepare resolves root to an absolute path without symlinks — a root
// reached through a symlink is walked like any other (the walk follows no
// symlinked directory, the root included) — and applies the options. The
// fleet at the root keeps the name of root as given.
func prepare(root string, opts []Option) (string, options, error) {
	o := newOptions(opts)
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", o, fmt.Errorf("load fleets: %w", err)
	}
	if o.rootName == "" {
		o.rootName = filepath.Base(abs)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", o, fmt.Errorf("load fleets: %w", err)
	}
	return real, o, nil
}

// Option tunes Load and LoadHosts.
type Option func(*options)

type options struct {
	rootName   string
	checkout   string
	hostPolicy *HostPolicy // nil: grants are not checked
}

func newOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// RootName names the fleet whose compose files are at the root of the
// loaded directory, when they set no name. Compose would take the
// directory's name, which for a checked-out revision is fleetd's own (a
// commit hash, a temporary directory), so callers pass the repository's
// name instead; the fleet then keeps its name from one revision to the
// next.
func RootName(name string) Option { return func(o *options) { o.rootName = name } }

// Checkout is the repository checkout the loaded directory is part of:
// what a fleet reads must resolve inside it (`..` may leave the fleet's
// directory but not the checkout). Without it, the loaded directory is
// the boundary.
func Checkout(dir string) Option { return func(o *options) { o.checkout = dir } }

// FindCheckout returns the Git working tree dir is in (the nearest
// directory up from it holding .git), or dir itself (made absolute) when
// there is none: the boundary for a directory of fleets on disk.
func FindCheckout(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return abs
		}
	}
}

// loadAll loads the fleet directories in parallel, one worker per CPU;
// fleets are independent until checkAcross.
func loadAll(ctx context.Context, absRoot, checkout string, dirs []fleetDir, host Host) ([]*loadedFleet, error) {
	jobs := make([]loadJob, len(dirs))
	for i, fd := range dirs {
		jobs[i] = loadJob{fd, host}
	}
	return loadJobs(ctx, absRoot, checkout, jobs)
}

// loadJob is one fleet directory to load for one host.
type loadJob struct {
	fd   fleetDir
	host Host
}

func loadJobs(ctx context.Context, absRoot, checkout string, jobs []loadJob) ([]*loadedFleet, error) {
	out := make([]*loadedFleet, len(jobs))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, j := range jobs {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("load fleets: %w", err)
			}
			out[i] = loadFleet(ctx, absRoot, checkout, j.fd, j.host)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// HostFleets is what Load returns for one host: the valid fleets and, when
// any fleet is invalid, a ProblemList.
type HostFleets struct {
	Fleets []Fleet
	Err    error
}

// LoadHosts loads the fleets under root for each host, with the same
// results as Load for each, but loads a fleet directory once for all the
// hosts that read the same compose files, when none of its files mentions
// the host's variables (FLEETD_HOST...): only its placement is then worked
// out per host. A fleet that does mention them, or fails to load, is
// loaded for each host. Any error other than problems comes alone.
func LoadHosts(ctx context.Context, root string, hosts []Host, opts ...Option) ([]HostFleets, error) {
	absRoot, o, err := prepare(root, opts)
	if err != nil {
		return nil, err
	}
	dirs, problems, err := discoverHosts(absRoot, hosts, o.rootName)
	if err != nil {
		return nil, err
	}
	// First, each distinct directory (with its files) for the first host
	// that has it.
	var first []loadJob
	index := map[string]int{}
	for i, h := range hosts {
		for _, fd := range dirs[i] {
			if _, ok := index[fd.key()]; !ok {
				index[fd.key()] = len(first)
				first = append(first, loadJob{fd, h})
			}
		}
	}
	shared, err := loadJobs(ctx, absRoot, o.checkout, first)
	if err != nil {
		return nil, err
	}
	// Then, per host, what cannot be shared.
	var again []loadJob
	for i, h := range hosts {
		for _, fd := range dirs[i] {
			j := index[fd.key()]
			if !shared[j].hostFree && !sameHost(first[j].host, h) {
				again = append(again, loadJob{fd, h})
			}
		}
	}
	own, err := loadJobs(ctx, absRoot, o.checkout, again)
	if err != nil {
		return nil, err
	}
	out := make([]HostFleets, len(hosts))
	for i, h := range hosts {
		var all []*loadedFleet
		for _, fd := range dirs[i] {
			j := index[fd.key()]
			if !shared[j].hostFree && !sameHost(first[j].host, h) {
				all, own = append(all, own[0]), own[1:]
				continue
			}
			all = append(all, shared[j].placedFor(h))
		}
		out[i].Fleets, out[i].Err = finish(all, slices.Clone(problems[i]), o.hostPolicy)
	}
	return out, nil
}

// key identifies a fleet directory with the compose files it merges.
func (fd fleetDir) key() string { return fd.rel + "\x00" + strings.Join(fd.files, "\x00") }

func sameHost(a, b Host) bool { return a.Name == b.Name && maps.Equal(a.Labels, b.Labels) }

// placedFor is a copy of a loaded fleet for another host: its placement
// and its services' constraints evaluated for host, and a report of its
// own, since the checks across fleets add problems per host.
func (lf *loadedFleet) placedFor(host Host) *loadedFleet {
	r := *lf.r
	r.problems = slices.Clone(lf.r.problems)
	out := &loadedFleet{fleet: lf.fleet, r: &r, hostFree: lf.hostFree, bindIndex: lf.bindIndex}
	out.fleet.Services = slices.Clone(lf.fleet.Services)
	out.fleet.Targets = out.fleet.targets(host)
	for i := range out.fleet.Services {
		s := &out.fleet.Services[i]
		s.Targets = out.fleet.Targets && ConstraintsMatch(s.Constraints, host)
	}
	return out
}

// loadedFleet is a fleet with the report that places its problems; a
// fleet whose report has problems must not be used.
type loadedFleet struct {
	fleet Fleet
	r     *report
	// hostFree is set when no file the fleet was loaded from mentions
	// FLEETD_HOST: it loads the same for every host with the same compose
	// files, but for its placement (see placedFor).
	hostFree bool
	// bindIndex is the index in its service's volumes of each bind, by
	// service and target: where a denied bind is reported.
	bindIndex map[[2]string]int
}

// loadFleet loads one fleet directory.
func loadFleet(ctx context.Context, absRoot, checkout string, fd fleetDir, host Host) *loadedFleet {
	r := &report{fleet: fd.name, dir: fd.rel, absRoot: absRoot}
	lf := &loadedFleet{r: r}
	ft, err := newFleetTree(filepath.Join(absRoot, filepath.FromSlash(fd.rel)), cmpOr(checkout, absRoot))
	if err != nil {
		r.fileErr(fd.rel, 0, err)
		return lf
	}
	r.files = readComposeFiles(ft, fd, r)
	if r.failed() {
		return lf
	}
	project, hostFree, zeroMonitor := loadChecked(ctx, ft, fd, host, r)
	if project == nil {
		return lf
	}
	lf.hostFree = hostFree
	lf.bindIndex = bindIndexes(project)
	// Converted even when validation found problems, so that conversion's
	// own problems (constraints, secrets) are reported in the same pass.
	lf.fleet = convertProject(project, fd, ft, absRoot, host, zeroMonitor, r)
	for _, p := range ft.outside.list() {
		rel, _ := filepath.Rel(absRoot, p)
		lf.fleet.Outside = append(lf.fleet.Outside, filepath.ToSlash(rel))
	}
	return lf
}

// readComposeFiles reads and parses the fleet's compose files, reporting
// every one that is unreadable, too large or not YAML.
func readComposeFiles(ft fleetTree, fd fleetDir, r *report) []*composeFile {
	var files []*composeFile
	for _, name := range fd.files {
		f := &composeFile{rel: path.Join(fd.rel, name)}
		abs, err := ft.resolve(name)
		if err == nil {
			f.abs = abs
			f.data, err = readFile(abs, maxComposeFileSize)
		}
		if err != nil {
			r.fileErr(f.rel, 0, err)
			continue
		}
		if line, err := f.parseYAML(); err != nil {
			r.fileErr(f.rel, line, err)
			continue
		}
		files = append(files, f)
	}
	return files
}

// loadChecked runs compose-go and every check that needs its result, and
// reads env_file and label_file once they are known to be safe. It returns
// nil when the project cannot be converted; a project it returns may still
// have problems in r. hostFree reports whether no file it read mentions
// the host's variables; zeroMonitor names the rollout configs that set
// monitor to zero (see explicitZeroMonitors).
func loadChecked(ctx context.Context, ft fleetTree, fd fleetDir, host Host, r *report) (project *types.Project, hostFree bool, zeroMonitor map[string]bool) {
	rd := &reads{}
	env, err := interpolationEnv(ft, host, rd)
	if err != nil {
		r.fileErr(path.Join(fd.rel, ".env"), 0, err)
		return nil, false, nil
	}
	r.knowSecrets(env)
	n := len(r.problems)
	if checkIncludes(ft, r.files, r, rd); len(r.problems) > n {
		return nil, false, nil // an included file must be confined before compose-go reads it
	}
	var findings []loader.UnsupportedAttribute
	project, err = loadProject(ctx, ft, fd.name, r.files, env, func(f []loader.UnsupportedAttribute) { findings = f }, rd)
	if err == nil {
		r.fleet = project.Name
	}
	engine := fleetEngine(r)
	for _, p := range unsupportedFindings(findings) {
		if msg, refused := unsupportedMessage(p, engine); refused {
			r.atPath(string(p), msg)
		}
	}
	if err != nil {
		r.composeErr(err)
		r.schemaProblems()
		return nil, false, nil
	}
	checkExtensionKeys(r)
	before := len(r.problems)
	checkProjectFiles(project, ft, r)
	if len(r.problems) > before {
		return nil, false, nil // an unsafe file must not be read
	}
	dropPreStart(project)
	hostFree = !rd.hostVar && !refersToHost(project) && !mentionsHost(ft, r.files, append(rd.files, dataFiles(project)...))
	project, err = resolveFiles(project)
	if err != nil {
		r.fleetf("", "%s", err)
		return nil, false, nil
	}
	validateProject(project, engine, r)
	return project, hostFree, explicitZeroMonitors(findings)
}

// hostVarPrefix starts every variable a fleet can read host facts from.
const hostVarPrefix = "FLEETD_HOST"

// A fleet reads host facts when interpolation (of its compose files,
// extends files or .env) looks a host variable up, when a value is taken
// from the environment by name (refersToHost), or when an env_file or
// label_file — interpolated by their own parser later — mentions one
// (mentionsHost; it also searches the compose and extends files, a
// redundant but cheap guard).

// refersToHost reports whether the project takes a value from the
// interpolation environment by a host variable's name: an environment
// entry or build arg without a value, a secret or config from the
// environment.
func refersToHost(p *types.Project) bool {
	hostVar := func(k string) bool { return strings.HasPrefix(k, hostVarPrefix) }
	for _, s := range p.Services {
		for k := range s.Environment {
			if hostVar(k) {
				return true
			}
		}
		if s.Build != nil {
			for k := range s.Build.Args {
				if hostVar(k) {
					return true
				}
			}
		}
	}
	for _, sc := range p.Secrets {
		if hostVar(sc.Environment) {
			return true
		}
	}
	for _, c := range p.Configs {
		if hostVar(c.Environment) {
			return true
		}
	}
	return false
}

// mentionsHost reports whether the compose files, the fleet's .env or any
// of the other files (extends, env_file, label_file; relative to the fleet
// directory or absolute) mention the host's variables. It is conservative:
// a file it cannot read counts as a mention.
func mentionsHost(ft fleetTree, files []*composeFile, others []string) bool {
	for _, f := range files {
		if bytes.Contains(f.data, []byte(hostVarPrefix)) {
			return true
		}
	}
	for _, name := range append([]string{".env"}, others...) {
		abs, err := ft.resolve(name)
		if err != nil {
			return true
		}
		data, err := readFile(abs, maxDataFileSize)
		switch {
		case errors.Is(err, fs.ErrNotExist): // nothing to mention (a required one was reported)
		case err != nil:
			return true
		case bytes.Contains(data, []byte(hostVarPrefix)), sopsfile.Encrypted(abs, data): // encrypted values may mention it
			return true
		}
	}
	return false
}

// dropPreStart removes the pre_start hooks from a project: fleetd does
// not run them (they are reported as unsupported), so neither their
// env_file nor their label_file, which checkProjectFiles does not confine,
// may be read. post_start and pre_stop hooks read no file.
func dropPreStart(p *types.Project) {
	for name, s := range p.Services {
		if s.PreStart != nil {
			s.PreStart = nil
			p.Services[name] = s
		}
	}
}

// dataFiles lists the env_file and label_file paths of a project.
func dataFiles(p *types.Project) []string {
	var out []string
	for _, s := range p.Services {
		for _, ef := range s.EnvFiles {
			out = append(out, ef.Path)
		}
		out = append(out, s.LabelFiles...)
	}
	return out
}
