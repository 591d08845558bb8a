package fleets

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadProject runs compose-go over a fleet's files (already read, size
// checked and parsed once for positions) with fleetd's options:
//
//   - interpolation sees env only (the fleet's .env and the host's facts),
//     never the agent's process environment;
//   - no profile is active, so services with profiles are left out, as
//     `docker compose up` does;
//   - compose-go's consistency check is off: validate reports all such
//     problems at once instead of the first;
//   - env_file and label_file are not read here: checkProjectFiles confines
//     and size-checks them first, then resolveFiles reads them;
//   - every file compose-go opens by itself (include, extends.file)
//     passes guard first, and checkIncludes has confined what include
//     sections name before this runs.
func loadProject(ctx context.Context, ft fleetTree, name string, files []*composeFile, env map[string]string, unsupported func([]loader.UnsupportedAttribute), rd *reads) (*types.Project, error) {
	details := types.ConfigDetails{
		WorkingDir:  ft.dir,
		Environment: env,
	}
	for _, f := range files {
		details.ConfigFiles = append(details.ConfigFiles, types.ConfigFile{Filename: f.abs, Content: f.data})
	}
	opts := func(o *loader.Options) {
		o.SetProjectName(name, false)
		o.SkipConsistencyCheck = true
		o.SkipResolveEnvironment = true
		o.SkipResolveLabels = true
		o.Profiles = nil
		o.KnownExtensions = map[string]any{extensionKey: xFleetd{}}
		o.ResourceLoaders = []loader.ResourceLoader{guard{ft: ft, rd: rd}}
		if o.Interpolate != nil && o.Interpolate.LookupValue != nil && rd != nil {
			next := o.Interpolate.LookupValue
			o.Interpolate.LookupValue = func(key string) (string, bool) {
				rd.lookup(key)
				return next(key)
			}
		}
	}
	project, err := loader.LoadWithContext(ctx, details, opts,
		loader.WithUnsupportedAttributesCheck(unsupportedPatterns, unsupported))
	if err != nil {
		return nil, err
	}
	return project, nil
}

// resolveFiles reads env_file and label_file into each service's
// environment and labels. It must run only after checkProjectFiles.
func resolveFiles(project *types.Project) (*types.Project, error) {
	if err := resolveSopsEnv(project); err != nil {
		return nil, err
	}
	project, err := project.WithServicesEnvironmentResolved(true)
	if err != nil {
		return nil, fmt.Errorf("env_file: %w", err)
	}
	project, err = project.WithServicesLabelsResolved(true)
	if err != nil {
		return nil, fmt.Errorf("label_file: %w", err)
	}
	return project, nil
}

// guard is a compose-go ResourceLoader placed before the local one. It
// claims every path that leaves the fleet's tree, or is too large, and
// refuses to load it, so compose-go never opens such a file (extends.file).
// Relative paths are taken relative to the fleet directory, which is where
// compose-go resolves them from the fleet's own files.
//
// It also records every path compose-go asks about (when rd is not nil):
// the extends files a fleet reads besides its compose files.
type guard struct {
	ft fleetTree
	rd *reads
}

func (g guard) Accept(p string) bool {
	if g.rd != nil {
		g.rd.file(p)
	}
	return g.check(p) != nil
}

// reads records what loading one fleet read besides its compose files:
// the files compose-go opened by itself, and whether interpolation looked
// up a host variable. Safe for concurrent use.
type reads struct {
	mu      sync.Mutex
	files   []string
	hostVar bool
}

func (rd *reads) file(p string) {
	rd.mu.Lock()
	rd.files = append(rd.files, p)
	rd.mu.Unlock()
}

func (rd *reads) lookup(key string) {
	if strings.HasPrefix(key, hostVarPrefix) {
		rd.mu.Lock()
		rd.hostVar = true
		rd.mu.Unlock()
	}
}

func (g guard) Load(_ context.Context, p string) (string, error) {
	return "", g.check(p)
}

func (g guard) Dir(p string) string { return filepath.Dir(p) }

func (g guard) check(p string) error {
	abs, err := g.ft.resolve(p)
	if err != nil {
		return err
	}
	if info, err := os.Stat(abs); err == nil && info.Size() > maxComposeFileSize {
		return fmt.Errorf("%s: %w (%d bytes, limit %d)", p, errTooLarge, info.Size(), maxComposeFileSize)
	}
	return nil
}
