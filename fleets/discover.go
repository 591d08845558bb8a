package fleets

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
)

// File names Compose looks for, in its order of preference.
var (
	composeFileNames  = []string{"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"}
	overrideFileNames = []string{"compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml", "docker-compose.override.yml"}
)

// fleetDir is one directory that holds a compose file.
type fleetDir struct {
	rel   string   // slash path relative to the repository path, "." for the root
	name  string   // the directory's name, normalised as a Compose project name
	files []string // compose files to merge, in order: main, override, host; relative to rel
}

// discover walks root for fleet directories, sorted by path. Hidden
// directories (.git) are skipped, and symlinked directories are not
// followed. A directory whose compose files are ambiguous is reported.
func discover(root string, host Host, rootName string) ([]fleetDir, ProblemList, error) {
	names, err := composeNames(root, host)
	if err != nil {
		return nil, nil, err
	}
	dirs, problems := fleetDirsFor(root, names, host, rootName)
	return dirs, problems, nil
}

// discoverHosts is discover for several hosts with one walk of the tree.
func discoverHosts(root string, hosts []Host, rootName string) ([][]fleetDir, []ProblemList, error) {
	names, err := composeNames(root, hosts...)
	if err != nil {
		return nil, nil, err
	}
	dirs := make([][]fleetDir, len(hosts))
	problems := make([]ProblemList, len(hosts))
	for i, h := range hosts {
		dirs[i], problems[i] = fleetDirsFor(root, names, h, rootName)
	}
	return dirs, problems, nil
}

// fleetDirsFor picks the fleet directories of host from the compose file
// names found (which may include other hosts' compose.<host>.yaml: each
// host merges only its own).
func fleetDirsFor(root string, names map[string][]string, host Host, rootName string) ([]fleetDir, ProblemList) {
	var dirs []fleetDir
	var problems ProblemList
	for _, dir := range slices.Sorted(maps.Keys(names)) {
		fd, p := newFleetDir(root, dir, names[dir], host, rootName)
		problems = append(problems, p...)
		if p == nil && fd.files != nil {
			dirs = append(dirs, fd)
		}
	}
	return dirs, problems
}

// FleetDirs lists the directories under root (slash paths relative to it,
// "." for root itself) that hold a compose file, valid or not: where the
// fleets are, for a caller that must know which directories nest in
// others.
func FleetDirs(root string) ([]string, error) {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("discover fleets: %w", err)
	}
	names, err := composeNames(real)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, dir := range slices.Sorted(maps.Keys(names)) {
		if len(intersect(composeFileNames, names[dir])) > 0 {
			out = append(out, dir)
		}
	}
	return out, nil
}

// composeNames maps each directory under root to the compose-related file
// names it holds. Hidden directories (.git) are skipped, and symlinked
// directories are not followed.
func composeNames(root string, hosts ...Host) (map[string][]string, error) {
	names := map[string][]string{} // slash dir -> compose-related file names
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if slices.ContainsFunc(hosts, func(h Host) bool { return isComposeName(d.Name(), h) }) || len(hosts) == 0 && isComposeName(d.Name(), Host{}) {
			rel, err := filepath.Rel(root, filepath.Dir(p))
			if err != nil {
				return err
			}
			dir := filepath.ToSlash(rel)
			names[dir] = append(names[dir], d.Name())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("discover fleets: %w", err)
	}
	return names, nil
}

func newFleetDir(root, dir string, present []string, host Host, rootName string) (fleetDir, ProblemList) {
	fd := fleetDir{rel: dir, name: dirFleetName(root, dir, rootName)}
	var problems ProblemList
	groups := [][]string{composeFileNames, overrideFileNames, hostFileNames(host)}
	for i, group := range groups {
		found := intersect(group, present)
		if i == 0 && len(found) == 0 {
			return fleetDir{}, nil // an override without a compose file is not a fleet
		}
		if len(found) > 1 {
			problems = append(problems, Problem{
				File:    dir,
				Fleet:   fd.name,
				Message: fmt.Sprintf("several compose files where Compose reads one: %s", strings.Join(found, ", ")),
			})
			continue
		}
		fd.files = append(fd.files, found...)
	}
	return fd, problems
}

// dirFleetName is a fleet's default name, as Compose's: its directory's.
// The fleet at the root takes rootName when given (see RootName), else the
// root directory's name.
func dirFleetName(root, dir, rootName string) string {
	base := path.Base(dir)
	if dir == "." {
		base = rootName
		if abs, err := filepath.Abs(root); err == nil && base == "" {
			base = filepath.Base(abs)
		}
	}
	return loader.NormalizeProjectName(base)
}

func hostFileNames(host Host) []string {
	if host.Name == "" {
		return nil
	}
	return []string{"compose." + host.Name + ".yaml", "compose." + host.Name + ".yml"}
}

func isComposeName(name string, host Host) bool {
	return slices.Contains(composeFileNames, name) ||
		slices.Contains(overrideFileNames, name) ||
		slices.Contains(hostFileNames(host), name)
}

// intersect returns the names in want that are present, in want's order.
func intersect(want, present []string) []string {
	var out []string
	for _, n := range want {
		if slices.Contains(present, n) {
			out = append(out, n)
		}
	}
	return out
}

// IsComposeFile reports whether a file name makes its directory a fleet
// (compose.yaml and the other names Compose looks for).
func IsComposeFile(name string) bool { return slices.Contains(composeFileNames, name) }

// DirName is the name a fleet in directory dir (slash, relative) gets when
// its compose files set none, as Compose names a project.
func DirName(dir string) string { return loader.NormalizeProjectName(path.Base(dir)) }
