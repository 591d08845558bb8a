package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/fleetd/fleetd/fleets"
)

// defaultFileMode is the mode of a secret or config without one.
const defaultFileMode = 0o444

// file is a secret or config to deliver to a container. Data is secret:
// it never enters an error message or a log line. A decrypted file
// (InMemory) is never copied into the container's writable layer, which
// is on disk: it is written to the host's tmpfs and bind-mounted.
type file struct {
	Target   string
	Mode     int64
	Data     []byte
	InMemory bool
}

// readFiles reads the secrets and configs of spec from their sources.
func readFiles(spec fleets.Spec) ([]file, error) {
	var out []file
	for _, ref := range slices.Concat(spec.Secrets, spec.Configs) {
		data, err := FileContents(ref)
		if err != nil {
			return nil, err
		}
		mode := int64(ref.Mode)
		if mode == 0 {
			mode = defaultFileMode
		}
		out = append(out, file{Target: ref.Target, Mode: mode, Data: data, InMemory: encryptedRef(ref)})
	}
	return out, nil
}

// FileContents reads a secret or config from its source file, or takes
// the contents the spec carries (secrets from environment:, configs from
// content:). A rollback to a spec whose file has changed since has neither.
func FileContents(ref fleets.FileRef) ([]byte, error) {
	switch {
	case ref.Source != "":
		data, err := os.ReadFile(ref.Source)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", ref.Name, err)
		}
		return decrypted(ref, data)
	case ref.Content != nil:
		return ref.Content, nil
	}
	return nil, fmt.Errorf("%s: contents not available (digest %s); its file changed since this spec was applied", ref.Name, ref.Digest)
}

// fileBinds bind-mounts secret and config sources read-only, for
// containers with a read-only root filesystem where copying is refused.
// A SOPS-encrypted source is left out: its plaintext is mounted from the
// tmpfs (see secretMounts).
func fileBinds(spec fleets.Spec) []string {
	var out []string
	for _, ref := range slices.Concat(spec.Secrets, spec.Configs) {
		if !encryptedRef(ref) {
			out = append(out, ref.Source+":"+ref.Target+":ro")
		}
	}
	return out
}

// tarFiles archives files at their absolute targets, relative to "/". It
// writes no directory entries: the daemon creates missing parents (0755,
// root) and an entry would reset the mode of an existing one, like /tmp.
func tarFiles(files []file) (*bytes.Buffer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, f := range files {
		name := strings.TrimPrefix(path.Clean("/"+f.Target), "/")
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("archive %s: %w", f.Target, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("archive %s: %w", f.Target, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return &buf, nil
}

// DefaultSecretsDir is where decrypted files are written, one directory
// per container, to be bind-mounted read-only (WithSecretsDir). It must be
// on a tmpfs (or ramfs) of the host the daemon runs on: /run is one on
// systemd hosts.
const DefaultSecretsDir = "/run/fleetd/secrets"

// Filesystem magic numbers (statfs(2)).
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// staleSecretDir is how old a directory no container mounts must be
// before pruneSecretDirs removes it: a younger one may belong to a
// container being created, by this process or another agent.
const staleSecretDir = 10 * time.Minute

// secretMounts writes the InMemory files to a new directory under
// secretsRoot (0700; each file with its mode) and returns the directory
// and the read-only bind mounts of its files at their targets. It refuses
// a secretsRoot that is not on tmpfs or ramfs: the plaintext would reach
// a disk. The caller removes dir once no container mounts it.
func secretMounts(secretsRoot, containerName string, files []file) (dir string, mounts []mount.Mount, err error) {
	if err := os.MkdirAll(secretsRoot, 0o700); err != nil {
		return "", nil, fmt.Errorf("secrets directory: %w", err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(secretsRoot, &st); err != nil {
		return "", nil, fmt.Errorf("secrets directory: %w", err)
	}
	if fs := int64(st.Type); fs != tmpfsMagic && fs != ramfsMagic {
		return "", nil, fmt.Errorf("secrets directory %s is not on a tmpfs (filesystem %#x): fleetd writes no decrypted file to disk", secretsRoot, fs)
	}
	dir, err = os.MkdirTemp(secretsRoot, containerName+".")
	if err != nil {
		return "", nil, fmt.Errorf("secrets directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
			dir, mounts = "", nil
		}
	}()
	for i, f := range files {
		p := filepath.Join(dir, strconv.Itoa(i))
		if err := writeSecretFile(p, f); err != nil {
			return "", nil, fmt.Errorf("write %s: %w", f.Target, err)
		}
		target := path.Clean("/" + f.Target)
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: p, Target: target, ReadOnly: true})
	}
	return dir, mounts, nil
}

func writeSecretFile(p string, f file) error {
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = fh.Write(f.Data)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Chmod(p, os.FileMode(f.Mode&0o7777))
}

// secretDirsOf returns the directories under secretsRoot that mounts
// bind from.
func secretDirsOf(secretsRoot string, mounts []container.MountPoint) []string {
	var out []string
	for _, m := range mounts {
		dir := filepath.Dir(m.Source)
		if m.Type == mount.TypeBind && filepath.Dir(dir) == secretsRoot && !slices.Contains(out, dir) {
			out = append(out, dir)
		}
	}
	return out
}

// removeSecretDirs removes the decrypted files a removed container
// mounted.
func (d *Docker) removeSecretDirs(dirs ...string) {
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			d.log.Warn("remove decrypted secrets", "dir", dir, "err", err)
		}
	}
}

// PruneSecretDirs removes the directories of decrypted files that no
// container mounts any more (their container was removed while fleetd
// was not running, or by hand), except those younger than staleSecretDir.
// CreateContainer calls it before it writes new ones; an agent may call
// it at startup.
func (d *Docker) PruneSecretDirs(ctx context.Context) error {
	secretsRoot := d.secretsDir
	entries, err := os.ReadDir(secretsRoot)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prune decrypted secrets: %w", err)
	}
	list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return fmt.Errorf("prune decrypted secrets: %w", err)
	}
	used := map[string]bool{}
	for _, c := range list {
		for _, dir := range secretDirsOf(secretsRoot, c.Mounts) {
			used[dir] = true
		}
	}
	for _, e := range entries {
		dir := filepath.Join(secretsRoot, e.Name())
		info, err := e.Info()
		if err != nil || used[dir] || time.Since(info.ModTime()) < staleSecretDir {
			continue
		}
		d.removeSecretDirs(dir)
	}
	return nil
}
