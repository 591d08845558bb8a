package engine

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/fleetd/fleetd/fleets"
)

// defaultFileMode is the mode of a secret or config without one.
const defaultFileMode = 0o444

// file is a secret or config to copy into a container. Data is secret:
// it never enters an error message or a log line.
type file struct {
	Target string
	Mode   int64
	Data   []byte
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
		out = append(out, file{Target: ref.Target, Mode: mode, Data: data})
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
func fileBinds(spec fleets.Spec) []string {
	var out []string
	for _, ref := range slices.Concat(spec.Secrets, spec.Configs) {
		out = append(out, ref.Source+":"+ref.Target+":ro")
	}
	return out
}

// checkBinds refuses to bind a SOPS-encrypted file: the container would
// see the ciphertext, and its plaintext must not be written to disk.
func checkBinds(spec fleets.Spec) error {
	for _, ref := range slices.Concat(spec.Secrets, spec.Configs) {
		if encryptedRef(ref) {
			return fmt.Errorf("%s: a SOPS-encrypted file cannot be given to a container with read_only: true (it would be bound, and fleetd writes no plaintext to disk)", ref.Name)
		}
	}
	return nil
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
