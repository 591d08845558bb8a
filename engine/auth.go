package engine

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	registrytypes "github.com/docker/docker/api/types/registry"
)

// dockerHubConfigKey is the key under which the Docker CLI stores Docker
// Hub credentials.
const dockerHubConfigKey = "https://index.docker.io/v1/"

// configFile is the part of ~/.docker/config.json fleetd reads. Credential
// helpers (credsStore, credHelpers) are not supported.
type configFile struct {
	Auths map[string]struct {
		Auth          string `json:"auth"`
		IdentityToken string `json:"identitytoken"`
	} `json:"auths"`
}

// registryAuth returns the encoded X-Registry-Auth for registry from
// dir/config.json, or "" when there is no file or no entry.
func registryAuth(dir, registry string) (string, error) {
	if dir == "" {
		return "", nil
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read docker config: %w", err)
	}
	var cfg configFile
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return "", fmt.Errorf("parse docker config %s: %w", filepath.Join(dir, "config.json"), err)
	}
	for key, entry := range cfg.Auths {
		if configKeyHost(key) != configKeyHost(registryKey(registry)) {
			continue
		}
		ac := registrytypes.AuthConfig{ServerAddress: key, IdentityToken: entry.IdentityToken}
		if entry.Auth != "" {
			if ac.Username, ac.Password, err = decodeAuth(entry.Auth); err != nil {
				return "", fmt.Errorf("docker config entry %s: %w", key, err)
			}
		}
		return registrytypes.EncodeAuthConfig(ac)
	}
	return "", nil
}

func registryKey(registry string) string {
	if registry == "docker.io" || registry == "index.docker.io" || registry == "registry-1.docker.io" {
		return dockerHubConfigKey
	}
	return registry
}

// configKeyHost reduces a config key ("https://host:5000/v1/", "host:5000")
// to its host.
func configKeyHost(key string) string {
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	host, _, _ := strings.Cut(key, "/")
	return host
}

func decodeAuth(s string) (user, pass string, err error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", "", fmt.Errorf("decode auth: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errors.New("decode auth: want user:password")
	}
	return user, pass, nil
}
