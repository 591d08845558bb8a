package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/reconcile"
)

// stateDirFlag is --state-dir; see stateDir.
var stateDirFlag string

func registerStateDir(cmd *cobra.Command) {
	cmd.Flags().StringVar(&stateDirFlag, "state-dir", "", "where fleetd keeps its state (default $FLEETD_STATE_DIR, /var/lib/fleetd as root, else ~/.local/state/fleetd)")
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

// privateStateDir makes this instance's state directory (and any missing
// parent) 0700, fixing the mode of one made before: the clone, the
// checked-out trees, the state and the ingress's files are not for other
// local users. What is inside keeps its own modes: the checked-out trees
// are bind-mounted into containers, whose users may need to read them, and
// a bind mount does not go through the directories above its source. The
// state_dir itself is left as it is when it exists (it may be shared).
func privateStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("state directory %s: not a directory", dir)
	}
	if info.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
	}
	return nil
}

// stateFile holds the agent's state: rollout records (shared by `apply` and
// `run`) and, per fleet, the revision of its model and the last applied.
const stateFile = "state.json"

// loadAgentState reads the state; a missing file is an empty state.
func loadAgentState() (agent.Persisted, error) {
	st := agent.Persisted{Rollouts: reconcile.Rollouts{}}
	dir, err := stateDir()
	if err != nil {
		return st, err
	}
	path := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state %s: %w", path, err)
	}
	if st.Rollouts == nil {
		st.Rollouts = reconcile.Rollouts{}
	}
	return st, nil
}

// saveAgentState writes the state atomically (temporary file, fsync,
// rename), so that a fleetd killed mid-write leaves the previous state.
func saveAgentState(st agent.Persisted) error {
	dir, err := stateDir()
	if err != nil {
		return err
	}
	if err := privateStateDir(dir); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return writeAtomic(filepath.Join(dir, stateFile), b)
}

// loadRollouts and saveRollouts are the rollout part of the state, for
// `apply`, which leaves the rest as it is.
func loadRollouts() (reconcile.Rollouts, error) {
	st, err := loadAgentState()
	return st.Rollouts, err
}

func saveRollouts(r reconcile.Rollouts) error {
	st, err := loadAgentState()
	if err != nil {
		return err
	}
	st.Rollouts = r
	return saveAgentState(st)
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
