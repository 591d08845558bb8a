package fleets

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"golang.org/x/sync/errgroup"
)

// Load discovers the fleets under root and loads each for host. It returns
// the valid fleets sorted by name and, when any fleet is invalid, a
// ProblemList naming every problem found in the tree: an invalid fleet is
// left out, valid ones are still returned so that the caller can keep
// running them. Any other error (root unreadable, ctx done) comes alone.
func Load(ctx context.Context, root string, host Host) ([]Fleet, error) {
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("load fleets: %w", err)
	}
	dirs, problems, err := discover(absRoot, host)
	if err != nil {
		return nil, err
	}
	all, err := loadAll(ctx, absRoot, dirs, host)
	if err != nil {
		return nil, err
	}
	var loaded []*loadedFleet
	for _, lf := range all {
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

// loadAll loads the fleet directories in parallel, one worker per CPU;
// fleets are independent until checkAcross.
func loadAll(ctx context.Context, absRoot string, dirs []fleetDir, host Host) ([]*loadedFleet, error) {
	out := make([]*loadedFleet, len(dirs))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, fd := range dirs {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("load fleets: %w", err)
			}
			out[i] = loadFleet(ctx, absRoot, fd, host)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// loadedFleet is a fleet with the report that places its problems; a
// fleet whose report has problems must not be used.
type loadedFleet struct {
	fleet Fleet
	r     *report
}

// loadFleet loads one fleet directory.
func loadFleet(ctx context.Context, absRoot string, fd fleetDir, host Host) *loadedFleet {
	r := &report{fleet: fd.name, dir: fd.rel, absRoot: absRoot}
	lf := &loadedFleet{r: r}
	ft, err := newFleetTree(filepath.Join(absRoot, filepath.FromSlash(fd.rel)))
	if err != nil {
		r.fileErr(fd.rel, 0, err)
		return lf
	}
	r.files = readComposeFiles(ft, fd, r)
	if r.failed() {
		return lf
	}
	project := loadChecked(ctx, ft, fd, host, r)
	if project == nil {
		return lf
	}
	// Converted even when validation found problems, so that conversion's
	// own problems (constraints, secrets) are reported in the same pass.
	lf.fleet = convertProject(project, fd, ft, absRoot, host, r)
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
// have problems in r.
func loadChecked(ctx context.Context, ft fleetTree, fd fleetDir, host Host, r *report) *types.Project {
	env, err := interpolationEnv(ft, host)
	if err != nil {
		r.fileErr(path.Join(fd.rel, ".env"), 0, err)
		return nil
	}
	var findings []loader.UnsupportedAttribute
	project, err := loadProject(ctx, ft, fd.name, r.files, env, func(f []loader.UnsupportedAttribute) { findings = f })
	if err == nil {
		r.fleet = project.Name
	}
	for _, p := range unsupportedFindings(findings) {
		r.atPath(string(p), unsupportedMessage(p))
	}
	if err != nil {
		r.composeErr(err)
		return nil
	}
	checkExtensionKeys(r)
	before := len(r.problems)
	checkProjectFiles(project, ft, r)
	if len(r.problems) > before {
		return nil // an unsafe file must not be read
	}
	project, err = resolveFiles(project)
	if err != nil {
		r.fleetf("", "%s", err)
		return nil
	}
	validateProject(project, r)
	return project
}
