package fleets

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// lfsPointer is how a Git LFS pointer file starts; the spec keeps pointer
// files under maxLFSPointer bytes.
const (
	lfsPointer    = "version https://git-lfs.github.com/spec/v1"
	maxLFSPointer = 1024
)

// Unfetched lists, for `fleetd validate`, what the agent would check out
// below dir without its contents, since fleetd fetches neither Git LFS
// objects nor submodules: Git LFS pointer files, the .gitattributes
// patterns that send files to LFS (a work tree with git-lfs installed holds
// the real files, the agent's checkout their pointers), submodules named in
// the checkout's .gitmodules, and directories holding a Git repository of
// their own. Each warning names the path, relative to dir. It reads small
// files only, opens no named pipe or device, and does not follow symlinks.
func Unfetched(ctx context.Context, dir, checkout string) ([]string, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	out := submodulesBelow(checkout, root)
	declared := len(out)
	rel := func(p string) string {
		r, err := filepath.Rel(root, p)
		if err != nil {
			return p
		}
		return filepath.ToSlash(r)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case d.IsDir() && d.Name() == ".git":
			return filepath.SkipDir
		case d.IsDir() && p != root && exists(filepath.Join(p, ".git")):
			if slices.ContainsFunc(out[:declared], func(w string) bool { return strings.HasPrefix(w, rel(p)+": ") }) {
				return filepath.SkipDir // named by .gitmodules
			}
			out = append(out, rel(p)+": a Git repository of its own (a submodule?): fleetd does not fetch submodules, the agent's checkout leaves it out")
			return filepath.SkipDir
		case !d.Type().IsRegular():
			return nil
		case d.Name() == ".gitattributes":
			for _, pattern := range lfsPatterns(p) {
				out = append(out, rel(p)+": "+pattern+" is stored in Git LFS: fleetd does not fetch LFS objects, the agent's checkout holds their pointers")
			}
		case isLFSPointerFile(p):
			out = append(out, rel(p)+": a Git LFS pointer: fleetd does not fetch LFS objects, a fleet reading it gets the pointer")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// isLFSPointerFile reports whether the regular file p is small enough to
// be a Git LFS pointer and starts as one.
func isLFSPointerFile(p string) bool {
	f, err := openRegular(p)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, maxLFSPointer+1)
	n, _ := io.ReadFull(f, head)
	return isLFSPointer(head[:n])
}

// isLFSPointer reports whether a file's contents are a Git LFS pointer.
func isLFSPointer(data []byte) bool {
	return len(data) <= maxLFSPointer && bytes.HasPrefix(data, []byte(lfsPointer))
}

// lfsPatterns are the patterns of a .gitattributes file that set
// filter=lfs.
func lfsPatterns(p string) []string {
	data, err := readFile(p, maxDataFileSize)
	if err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && !strings.HasPrefix(fields[0], "#") && slices.Contains(fields[1:], "filter=lfs") {
			out = append(out, fields[0])
		}
	}
	return out
}

// submodulesBelow lists the submodules the checkout's .gitmodules names
// below root (an uninitialised submodule is an empty directory on disk).
func submodulesBelow(checkout, root string) []string {
	if checkout == "" {
		return nil
	}
	data, err := readFile(filepath.Join(checkout, ".gitmodules"), maxDataFileSize)
	if err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.TrimSpace(key) != "path" {
			continue
		}
		p := filepath.Join(checkout, filepath.FromSlash(strings.TrimSpace(value)))
		if r, err := filepath.Rel(root, p); err == nil && filepath.IsLocal(r) {
			out = append(out, filepath.ToSlash(r)+": a submodule (.gitmodules): fleetd does not fetch submodules, the agent's checkout leaves it out")
		}
	}
	return out
}
