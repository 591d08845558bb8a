package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fleetd/fleetd/ingress"
)

// tableFile is the name of the saved table in the state directory.
const tableFile = "table.json"

// saveTable writes t to dir/table.json atomically, mode 0600; an empty
// dir saves nothing.
func saveTable(dir string, t ingress.Table) error {
	if dir == "" {
		return nil
	}
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("save table: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+tableFile+".*")
	if err != nil {
		return fmt.Errorf("save table: %w", err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }() // fails harmlessly after the rename
	if err := writeSync(f, data); err != nil {
		return fmt.Errorf("save table: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, tableFile)); err != nil {
		return fmt.Errorf("save table: %w", err)
	}
	return nil
}

// writeSync writes data to f, mode 0600, flushes and closes it.
func writeSync(f *os.File, data []byte) error {
	_, err := f.Write(data)
	err = errors.Join(err, f.Chmod(0o600), f.Sync())
	return errors.Join(err, f.Close())
}

// loadTable reads dir/table.json; found is false when there is none.
func loadTable(dir string) (t ingress.Table, found bool, err error) {
	if dir == "" {
		return t, false, nil
	}
	data, err := os.ReadFile(filepath.Join(dir, tableFile))
	if errors.Is(err, os.ErrNotExist) {
		return t, false, nil
	}
	if err != nil {
		return t, false, fmt.Errorf("load table: %w", err)
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return t, false, fmt.Errorf("load table %s: %w", filepath.Join(dir, tableFile), err)
	}
	return t, true, nil
}
