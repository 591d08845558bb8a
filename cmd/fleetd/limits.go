package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fleetd/fleetd/source"
)

// limitsConfig is source.limits: what one commit's tree may expand to on
// disk. Sizes take binary units ("64MiB", "64m", "1GiB") or bytes; an
// unset value is the default (source.DefaultLimits).
type limitsConfig struct {
	MaxFileSize  string `yaml:"max_file_size"`
	MaxFiles     int    `yaml:"max_files"`
	MaxTotalSize string `yaml:"max_total_size"`
}

// limits parses the sizes; errors name the key.
func (c limitsConfig) limits() (source.Limits, error) {
	var errs []error
	size := func(key, v string) int64 {
		if v == "" {
			return 0
		}
		n, err := parseSize(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("source.limits.%s: %q is not a size (such as 64MiB)", key, v))
		}
		return n
	}
	l := source.Limits{
		MaxFileSize:  size("max_file_size", c.MaxFileSize),
		MaxFiles:     c.MaxFiles,
		MaxTotalSize: size("max_total_size", c.MaxTotalSize),
	}
	if c.MaxFiles < 0 {
		errs = append(errs, fmt.Errorf("source.limits.max_files: must be at least 1"))
	}
	return l, errors.Join(errs...)
}

// sizeUnits are the binary units a size may end in, as Docker's
// (case-insensitive; "m", "mb" and "mib" are all MiB).
var sizeUnits = func() map[string]int64 {
	units := map[string]int64{"": 1, "b": 1}
	for i, p := range []string{"k", "m", "g", "t"} {
		for _, suffix := range []string{"", "b", "ib"} {
			units[p+suffix] = 1 << (10 * (i + 1))
		}
	}
	return units
}()

// parseSize reads a whole number of bytes with an optional binary unit:
// "1024", "64m", "64MiB", "1 GB".
func parseSize(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	mult, ok := sizeUnits[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size", v)
	}
	return n * mult, nil
}
