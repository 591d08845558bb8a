package fleets

import (
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/types"
)

// checkProjectFiles confines every file a project reads from the repository
// to the fleet's tree, and checks the sizes of those read whole into
// memory, before any of them is read: env_file, label_file, secret and
// config files, the build context and its Dockerfile. (extends.file is
// confined by guard while compose-go loads.)
func checkProjectFiles(p *types.Project, ft fleetTree, r *report) {
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		for i, ef := range s.EnvFiles {
			checkDataFile(ft, ef.Path, !bool(ef.Required), func(msg string) {
				r.servicef(name, "env_file."+itoa(int64(i)), "%s", msg)
			})
		}
		for i, lf := range s.LabelFiles {
			checkDataFile(ft, lf, false, func(msg string) {
				r.servicef(name, "label_file."+itoa(int64(i)), "%s", msg)
			})
		}
		if s.Build != nil {
			checkBuild(ft, s, r)
		}
	}
	for _, key := range sortedKeys(p.Secrets) {
		if f := p.Secrets[key].File; f != "" {
			checkDataFile(ft, f, false, func(msg string) { r.fleetf("secrets."+key+".file", "%s", msg) })
		}
	}
	for _, key := range sortedKeys(p.Configs) {
		if f := p.Configs[key].File; f != "" {
			checkDataFile(ft, f, false, func(msg string) { r.fleetf("configs."+key+".file", "%s", msg) })
		}
	}
}

// checkDataFile reports a file outside the tree, missing (unless optional),
// not a regular file, or over maxDataFileSize.
func checkDataFile(ft fleetTree, p string, optional bool, report func(string)) {
	abs, err := ft.resolve(p)
	if err != nil {
		report(err.Error())
		return
	}
	info, err := os.Stat(abs)
	switch {
	case os.IsNotExist(err) && optional:
	case err != nil:
		report(err.Error())
	case !info.Mode().IsRegular():
		report(p + ": not a regular file")
	case info.Size() > maxDataFileSize:
		report(p + ": " + errTooLarge.Error())
	}
}

func checkBuild(ft fleetTree, s types.ServiceConfig, r *report) {
	ctx := s.Build.Context
	if isRemote(ctx) {
		r.servicef(s.Name, "build.context", "remote build context %q is not supported: build from the repository", ctx)
		return
	}
	abs, err := ft.resolve(ctx)
	if err != nil {
		r.servicef(s.Name, "build.context", "%s", err)
		return
	}
	if info, err := os.Stat(abs); err != nil || !info.IsDir() {
		r.servicef(s.Name, "build.context", "%s: not a directory", ctx)
		return
	}
	dockerfile := cmpOr(s.Build.Dockerfile, defaultDockerfile)
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(abs, dockerfile)
	}
	checkDataFile(ft, dockerfile, false, func(msg string) { r.servicef(s.Name, "build.dockerfile", "%s", msg) })
	// The context's .dockerignore is read to hash the context: it is
	// confined like any file the fleet reads.
	if _, err := os.Lstat(filepath.Join(abs, ".dockerignore")); err == nil {
		checkDataFile(ft, filepath.Join(ctx, ".dockerignore"), false, func(msg string) { r.servicef(s.Name, "build.context", "%s", msg) })
	}
}

func isRemote(ctx string) bool {
	for _, prefix := range []string{"http://", "https://", "git://", "git@", "github.com/", "ssh://"} {
		if len(ctx) >= len(prefix) && ctx[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}
