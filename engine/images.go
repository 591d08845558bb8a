package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/image"

	"github.com/fleetd/fleetd/fault"
)

// RegistryAuth returns the encoded X-Registry-Auth for the registry of
// image ref, from dir/config.json ("" when there is none): the credentials
// PullImage uses, for adapters of the same engine (engine/swarm sends them
// with service creates and updates, and to resolve tags).
func RegistryAuth(dir, ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", ref, err)
	}
	return registryAuth(dir, reference.Domain(named))
}

// PullImage pulls ref with the host's credentials for its registry (from
// config.json) and returns the image ID. The daemon answers 200 and reports
// failures in the stream; they are surfaced as errors naming the image and
// the registry.
func (d *Docker) PullImage(ctx context.Context, ref string) (_ string, err error) {
	defer func() { err = pullFault(ref, err) }()
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	registry := reference.Domain(named)
	auth, err := registryAuth(d.dockerConfigDir, registry)
	if err != nil {
		return "", fmt.Errorf("pull %s from %s: %w", ref, registry, err)
	}
	stream, err := d.cli.ImagePull(ctx, reference.FamiliarString(reference.TagNameOnly(named)), image.PullOptions{RegistryAuth: auth})
	if err != nil {
		return "", fmt.Errorf("pull %s from %s: %w", ref, registry, err)
	}
	defer stream.Close()
	if _, err := readStream(stream); err != nil {
		return "", fmt.Errorf("pull %s from %s: %w", ref, registry, err)
	}
	return d.ImageID(ctx, ref)
}

// ImageID returns the ID of the local image ref resolves to, or an error
// wrapping ErrNotFound.
func (d *Docker) ImageID(ctx context.Context, ref string) (_ string, err error) {
	defer classified(&err)
	img, err := d.cli.ImageInspect(ctx, ref)
	switch {
	case isNotFound(err):
		return "", fault.New(fault.Permanent, fault.ImageNotFound, ref, fmt.Errorf("image %s: %w", ref, ErrNotFound))
	case err != nil:
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return img.ID, nil
}

// streamMessage is one line of a pull or build progress stream.
type streamMessage struct {
	Stream      string                    `json:"stream"`
	Status      string                    `json:"status"`
	ErrorDetail *struct{ Message string } `json:"errorDetail"`
	Error       string                    `json:"error"`
	Aux         json.RawMessage           `json:"aux"`
}

// streamResult is what a stream reported besides progress.
type streamResult struct {
	ImageID string   // from a build's aux message
	Tail    []string // last output lines, for error context
}

// maxTail bounds the output lines kept for error context.
const maxTail = 5

// readStream consumes a progress stream to its end and returns an error
// carrying the daemon's message if the stream reported one.
func readStream(r io.Reader) (streamResult, error) {
	var res streamResult
	dec := json.NewDecoder(r)
	for {
		var msg streamMessage
		err := dec.Decode(&msg)
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("read progress: %w", err)
		}
		if text := messageError(msg); text != "" {
			return res, errors.New(text)
		}
		res.add(msg)
	}
}

func messageError(msg streamMessage) string {
	if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
		return oneLine(msg.ErrorDetail.Message)
	}
	return oneLine(msg.Error)
}

func (res *streamResult) add(msg streamMessage) {
	if len(msg.Aux) > 0 {
		var aux struct{ ID string }
		if json.Unmarshal(msg.Aux, &aux) == nil && aux.ID != "" {
			res.ImageID = aux.ID
		}
	}
	if line := strings.TrimSpace(msg.Stream); line != "" {
		res.Tail = append(res.Tail, line)
		if len(res.Tail) > maxTail {
			res.Tail = res.Tail[1:]
		}
	}
}
