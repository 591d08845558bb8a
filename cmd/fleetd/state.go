package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/reconcile"
)

// stateDirFlag is --state-dir; see stateDir.
var stateDirFlag string

func registerStateDir(cmd *cobra.Command) {
	cmd.Flags().StringVar(&stateDirFlag, "state-dir", "", "where fleetd keeps rollout state (default $FLEETD_STATE_DIR, /var/lib/fleetd as root, else ~/.local/state/fleetd)")
}

// stateDir is where this instance keeps its state: one directory per
// instance, so that two agents on a host never share a file.
func stateDir() (string, error) {
	dir := stateDirFlag
	if dir == "" {
		dir = os.Getenv("FLEETD_STATE_DIR")
	}
	if dir == "" && os.Geteuid() == 0 {
		dir = "/var/lib/fleetd"
	}
	if dir == "" {
		base := os.Getenv("XDG_STATE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("state directory: %w", err)
			}
			base = filepath.Join(home, ".local", "state")
		}
		dir = filepath.Join(base, "fleetd")
	}
	return filepath.Join(dir, instanceName()), nil
}

const rolloutsFile = "rollouts.json"

// loadRollouts reads the rollout state; a missing file is an empty state.
func loadRollouts() (reconcile.Rollouts, error) {
	dir, err := stateDir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, rolloutsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return reconcile.Rollouts{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read rollout state: %w", err)
	}
	var r reconcile.Rollouts
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("rollout state %s: %w", path, err)
	}
	return r, nil
}

// saveRollouts writes the rollout state atomically (temporary file, fsync,
// rename), so that a fleetd killed mid-write leaves the old state.
func saveRollouts(r reconcile.Rollouts) error {
	dir, err := stateDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode rollout state: %w", err)
	}
	return writeAtomic(filepath.Join(dir, rolloutsFile), b)
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
