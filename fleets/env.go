package fleets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
)

// interpolationEnv is everything ${VAR} can see in a fleet's files: the
// fleet's .env, then FLEETD_HOST and FLEETD_HOST_LABEL_<KEY> for the host,
// which win over .env. The agent's process environment is deliberately
// absent: the desired state must be a function of the repository and the
// host's declared facts, so that `fleetd plan` on a laptop and the agent
// on the host agree, and no credential in the agent's environment can leak
// into a container spec or a plan.
//
// rd, when not nil, records whether .env looked a host variable up.
func interpolationEnv(ft fleetTree, host Host, rd *reads) (map[string]string, error) {
	hostVars := hostEnv(host)
	env, err := readDotEnv(ft, hostVars, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hostVars {
		env[k] = v
	}
	return env, nil
}

// hostEnv returns FLEETD_HOST and one FLEETD_HOST_LABEL_<KEY> per label,
// KEY upper-cased with every character other than A-Z and 0-9 turned to _.
func hostEnv(host Host) map[string]string {
	env := map[string]string{"FLEETD_HOST": host.Name}
	for k, v := range host.Labels {
		env["FLEETD_HOST_LABEL_"+envKey(k)] = v
	}
	return env
}

func envKey(label string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, label)
}

// readDotEnv parses the fleet's .env, if any. Its own ${VAR} references see
// the host's variables and the lines above them.
func readDotEnv(ft fleetTree, hostVars map[string]string, rd *reads) (map[string]string, error) {
	p := filepath.Join(ft.dir, ".env")
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	abs, err := ft.resolve(".env")
	if err != nil {
		return nil, err
	}
	data, err := readFile(abs, maxDataFileSize)
	if err != nil {
		return nil, err
	}
	if err := refuseSopsDotEnv(data); err != nil {
		return nil, err
	}
	env, err := dotenv.UnmarshalBytesWithLookup(data, func(k string) (string, bool) {
		if rd != nil {
			rd.lookup(k)
		}
		v, ok := hostVars[k]
		return v, ok
	})
	if err != nil {
		return nil, fmt.Errorf(".env: %w", err)
	}
	return env, nil
}
