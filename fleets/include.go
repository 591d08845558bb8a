package fleets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxIncludeDepth bounds nested includes (compose-go itself stops only at
// a cycle).
const maxIncludeDepth = 8

// errIncludeVariable refuses an include entry with a variable in it: the
// files it names are confined before compose-go interpolates anything.
var errIncludeVariable = errors.New("variables are not allowed here: fleetd confines included files before it reads them, so their paths must be written out")

// includeEntry is one entry of an include section as the compose
// reference writes it: a path, or a map of path (one or a list),
// project_directory and env_file (one or a list).
type includeEntry struct {
	Path             []string
	ProjectDirectory string
	EnvFile          []string
}

// checkIncludes confines everything the include sections of a fleet's
// files make compose-go read: each included file (read, size-checked and
// checked in turn, to a depth of maxIncludeDepth), its project_directory,
// env_file and .env, and the extends files of its services. A problem is
// reported in r; the files read are recorded in rd for change detection.
//
// Paths are resolved as compose-go v2 resolves them: an entry's path,
// env_file and project_directory from the including project's directory;
// the include and extends paths inside the entry's files from the entry's
// project directory (project_directory, else the directory of its first
// path). In a nested include compose-go takes env_file and
// project_directory from the process's working directory, so there they
// are refused.
func checkIncludes(ft fleetTree, files []*composeFile, r *report, rd *reads) {
	for _, f := range files {
		node, _ := child(f.root, "include") // the file is parsed already: decode this key only
		var include any
		if node == nil || node.Decode(&include) != nil || include == nil {
			continue // a bad include is reported by the load
		}
		c := includeCheck{ft: ft, r: r, rd: rd}
		c.section(f.rel, ft.dir, include, []string{f.abs})
	}
}

type includeCheck struct {
	ft fleetTree
	r  *report
	rd *reads
}

func (c includeCheck) fail(file, field string, err error) {
	c.r.fileErr(file, 0, fmt.Errorf("%s: %w", field, err))
}

// section checks one include section of the file rel, whose relative
// paths are relative to dir; chain is the files that include it, itself
// last (a file in it again is a cycle; one included twice elsewhere is
// not, as in compose).
func (c includeCheck) section(rel, dir string, raw any, chain []string) {
	entries, err := includeEntries(raw)
	if err != nil {
		c.fail(rel, "include", err)
		return
	}
	nested := len(chain) > 1
	for i, e := range entries {
		field := fmt.Sprintf("include.%d", i)
		abs := func(p string) string { return joinDir(dir, p) }
		if nested && (e.ProjectDirectory != "" || len(e.EnvFile) > 0) {
			c.fail(rel, field, errors.New("project_directory and env_file are not supported in an included file's own include: compose-go takes them from the process's working directory there; set them in the fleet's compose file"))
			continue
		}
		projectDir := ""
		if e.ProjectDirectory != "" {
			p, err := c.ft.resolve(abs(e.ProjectDirectory))
			if err != nil {
				c.fail(rel, field+".project_directory", err)
				continue
			}
			projectDir = p
		}
		for _, ef := range e.EnvFile {
			if ef == "/dev/null" {
				continue
			}
			c.dataFile(rel, field+".env_file", abs(ef))
		}
		paths := make([]string, 0, len(e.Path))
		for j, p := range e.Path {
			path, err := c.ft.resolve(abs(p))
			if err != nil {
				c.fail(rel, fmt.Sprintf("%s.path.%d", field, j), err)
				continue
			}
			if j == 0 && projectDir == "" {
				projectDir = filepath.Dir(path)
			}
			paths = append(paths, path)
		}
		if len(paths) < len(e.Path) {
			continue
		}
		for j, path := range paths {
			c.file(rel, fmt.Sprintf("%s.path.%d", field, j), path, projectDir, chain)
		}
		if len(e.EnvFile) == 0 {
			if _, err := os.Lstat(filepath.Join(projectDir, ".env")); err == nil {
				c.dataFile(rel, field+" (.env of "+c.relative(projectDir)+")", filepath.Join(projectDir, ".env"))
			}
		}
	}
}

// file reads an included compose file and checks its own include section
// and extends files, whose paths are relative to projectDir.
func (c includeCheck) file(rel, field, path, projectDir string, chain []string) {
	if slices.Contains(chain, path) {
		c.fail(rel, field, fmt.Errorf("include cycle: %s includes itself", c.relative(path)))
		return
	}
	if len(chain) > maxIncludeDepth {
		c.fail(rel, field, fmt.Errorf("includes nest deeper than %d files", maxIncludeDepth))
		return
	}
	c.rd.file(path)
	data, err := readFile(path, maxComposeFileSize)
	if err != nil {
		c.fail(rel, field, err)
		return
	}
	var doc struct {
		Include  any `yaml:"include"`
		Services map[string]struct {
			Extends any `yaml:"extends"`
		} `yaml:"services"`
	}
	inner := c.relative(path)
	if err := yaml.Unmarshal(data, &doc); err != nil {
		c.fail(inner, "yaml", err)
		return
	}
	for _, name := range sortedKeys(doc.Services) {
		if m, ok := doc.Services[name].Extends.(map[string]any); ok {
			if f, ok := m["file"].(string); ok {
				if strings.Contains(f, "$") {
					c.fail(inner, "services."+name+".extends.file", errIncludeVariable)
				} else if _, err := c.ft.resolve(joinDir(projectDir, f)); err != nil {
					c.fail(inner, "services."+name+".extends.file", err)
				}
			}
		}
	}
	if doc.Include != nil {
		c.section(inner, projectDir, doc.Include, append(slices.Clip(chain), path))
	}
}

// dataFile checks an env file an include names: inside the tree, regular
// and no larger than any data file.
func (c includeCheck) dataFile(rel, field, path string) {
	p, err := c.ft.resolve(path)
	if err == nil {
		c.rd.file(p)
		_, err = readFile(p, maxDataFileSize)
	}
	if err != nil {
		c.fail(rel, field, err)
	}
}

func (c includeCheck) relative(p string) string {
	if c.r.absRoot != "" {
		if rel, err := filepath.Rel(c.r.absRoot, p); err == nil {
			return filepath.ToSlash(rel)
		}
	}
	return p
}

func joinDir(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// includeEntries reads an include section: a list of paths or maps.
func includeEntries(raw any) ([]includeEntry, error) {
	list, ok := raw.([]any)
	if !ok {
		return nil, errors.New("must be a list of paths or of maps with path, project_directory and env_file")
	}
	var out []includeEntry
	for i, item := range list {
		var e includeEntry
		switch v := item.(type) {
		case string:
			e.Path = []string{v}
		case map[string]any:
			var err error
			if e.Path, err = stringOrList(v["path"]); err != nil || len(e.Path) == 0 {
				return nil, fmt.Errorf("%d.path: a path or a list of paths is required", i)
			}
			if e.EnvFile, err = stringOrList(v["env_file"]); err != nil {
				return nil, fmt.Errorf("%d.env_file: %w", i, err)
			}
			if pd, ok := v["project_directory"]; ok {
				s, isString := pd.(string)
				if !isString {
					return nil, fmt.Errorf("%d.project_directory: must be a path", i)
				}
				e.ProjectDirectory = s
			}
		default:
			return nil, fmt.Errorf("%d: must be a path or a map with path", i)
		}
		for _, s := range append(append([]string{e.ProjectDirectory}, e.Path...), e.EnvFile...) {
			if strings.Contains(s, "$") {
				return nil, fmt.Errorf("%d: %w", i, errIncludeVariable)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func stringOrList(v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, errors.New("must be a path or a list of paths")
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, errors.New("must be a path or a list of paths")
}
