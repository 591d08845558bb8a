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

	credclient "github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
	registrytypes "github.com/docker/docker/api/types/registry"
)

// dockerHubConfigKey is the key under which the Docker CLI stores Docker
// Hub credentials.
const dockerHubConfigKey = "https://index.docker.io/v1/"

// configFile is the part of ~/.docker/config.json fleetd reads: the
// credentials kept in the file, and the credential helpers
// (docker-credential-<name> programs) that keep them elsewhere.
type configFile struct {
	Auths map[string]struct {
		Auth          string `json:"auth"`
		IdentityToken string `json:"identitytoken"`
	} `json:"auths"`
	CredsStore  string            `json:"credsStore"`
	CredHelpers map[string]string `json:"credHelpers"`
}

// helperFor names the credential helper the Docker CLI would ask about
// registry: its own in credHelpers, else the credsStore; "" for none.
func (c configFile) helperFor(registry string) string {
	for key, helper := range c.CredHelpers {
		if configKeyHost(key) == configKeyHost(registryKey(registry)) {
			return helper
		}
	}
	return c.CredsStore
}

// helperAuth asks the credential helper docker-credential-<helper> for
// registry's credentials, through the docker-credential-helpers client (as
// the Docker CLI does); "" when it has none.
func helperAuth(helper, registry string) (string, error) {
	creds, err := credclient.Get(credclient.NewShellProgramFunc("docker-credential-"+helper), registryKey(registry))
	if credentials.IsErrCredentialsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("credential helper docker-credential-%s for %s: %w", helper, registry, err)
	}
	ac := registrytypes.AuthConfig{ServerAddress: creds.ServerURL, Username: creds.Username, Password: creds.Secret}
	if creds.Username == "<token>" { // an identity token, as the CLI stores one
		ac.Username, ac.Password, ac.IdentityToken = "", "", creds.Secret
	}
	return registrytypes.EncodeAuthConfig(ac)
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
	if helper := cfg.helperFor(registry); helper != "" {
		return helperAuth(helper, registry)
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
