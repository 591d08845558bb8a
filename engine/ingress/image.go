package ingress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/fault"
)

// ImageRepo is the repository of the ingress images fleetd builds; the tag
// is the fleetd binary's digest, so an upgraded fleetd builds (and rolls
// the ingress onto) its own.
const ImageRepo = "fleetd-ingress"

// ErrDynamicBinary refuses to build the ingress from a binary that needs
// a dynamic loader: the image is FROM scratch.
var ErrDynamicBinary = errors.New("the fleetd binary is dynamically linked; the ingress image needs a static one (build with CGO_ENABLED=0)")

// ensureImage builds the ingress image from the fleetd binary unless it is
// there already, and returns its reference.
func (r *Router) ensureImage(ctx context.Context) (string, error) {
	if r.image != "" {
		return r.image, nil
	}
	if r.imageErr != nil {
		return "", r.imageErr
	}
	ref, err := BuildImage(ctx, r.cli, r.opts.Binary)
	if err != nil {
		if errors.Is(err, ErrDynamicBinary) {
			r.imageErr = err // the binary does not change under a running agent
		}
		return "", err
	}
	r.image = ref
	return ref, nil
}

// BuildImage builds the ingress image FROM scratch with the fleetd binary
// at path (default: this process's executable) as its entrypoint, tagged
// with the binary's digest, unless the engine has it already. No registry
// is asked.
func BuildImage(ctx context.Context, cli *client.Client, path string) (string, error) {
	bin, ref, err := readBinary(path)
	if err != nil {
		return "", err
	}
	if err := static(bin); err != nil {
		return "", fault.New(fault.Permanent, fault.InvalidSpec, path, fmt.Errorf("%s: %w", path, err))
	}
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return ref, nil
	}
	dockerfile := []byte("FROM scratch\nCOPY fleetd /fleetd\nENTRYPOINT [\"/fleetd\"]\nCMD [\"ingress\"]\n")
	if _, err := engine.BuildFiles(ctx, cli, ref, map[string][]byte{"Dockerfile": dockerfile, "fleetd": bin}, map[string]int64{"fleetd": 0o755}); err != nil {
		return "", fmt.Errorf("build the ingress image: %w", err)
	}
	return ref, nil
}

// ImageRef is the reference of the ingress image built from the fleetd
// binary at path (default: this process's executable).
func ImageRef(path string) (string, error) {
	_, ref, err := readBinary(path)
	return ref, err
}

func readBinary(path string) ([]byte, string, error) {
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, "", fmt.Errorf("find the fleetd binary: %w", err)
		}
		path = exe
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read the fleetd binary: %w", err)
	}
	sum := sha256.Sum256(bin)
	return bin, ImageRepo + ":" + hex.EncodeToString(sum[:6]), nil
}

// static reports ErrDynamicBinary for an ELF binary with an interpreter
// (a dynamic loader).
func static(bin []byte) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("not an ELF binary: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return ErrDynamicBinary
		}
	}
	return nil
}
