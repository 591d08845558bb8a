package source

import (
	"fmt"
	"os"
)

// private makes dir (and any missing parent) with mode 0700, and sets a
// directory that exists to 0700: the clone holds the whole repository, and
// nothing under Config.Dir is for other local users. Files and
// directories inside keep their own modes (the checked-out trees are
// bind-mounted into containers whose users may need to read them; a bind
// mount does not go through the directories above its source).
func private(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	if info.Mode().Perm() == 0o700 {
		return nil
	}
	return os.Chmod(dir, 0o700)
}
