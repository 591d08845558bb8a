package source

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// tokenUser is the basic-auth user sent with a token when Auth.Username is
// empty; GitHub requires a non-empty user and ignores it, as do GitLab and
// Gitea.
const tokenUser = "x-access-token"

// sshDialTimeout bounds the TCP connect and SSH handshake (go-git's SSH
// dial does not take the caller's context).
const sshDialTimeout = 30 * time.Second

// transportAuth is the go-git auth for an endpoint. The SSH key is parsed
// once here; known_hosts is re-read on every connection so that an operator
// can fix it without restarting fleetd.
func (a Auth) transportAuth(ep *transport.Endpoint) (transport.AuthMethod, error) {
	switch ep.Protocol {
	case "http", "https":
		return a.httpAuth(), nil
	case "ssh":
		return a.sshAuth(ep)
	}
	return nil, nil
}

func (a Auth) httpAuth() transport.AuthMethod {
	switch {
	case a.Token != "":
		user := a.Username
		if user == "" {
			user = tokenUser
		}
		return &githttp.BasicAuth{Username: user, Password: a.Token}
	case a.Username != "" || a.Password != "":
		return &githttp.BasicAuth{Username: a.Username, Password: a.Password}
	}
	return nil // credentials in the URL, if any, are used by go-git
}

func (a Auth) sshAuth(ep *transport.Endpoint) (*sshKeyAuth, error) {
	pem, err := os.ReadFile(a.SSHKeyFile)
	if err != nil {
		return nil, configError("auth.ssh_key_file", "%v", err)
	}
	signer, err := parseKey(pem, a.SSHKeyPassphrase)
	if err != nil {
		return nil, configError("auth.ssh_key_file", "%s: %v", a.SSHKeyFile, err)
	}
	if _, err := os.Stat(a.KnownHostsFile); err != nil {
		return nil, configError("auth.known_hosts_file", "%v", err)
	}
	user := ep.User
	if user == "" {
		user = "git"
	}
	port := ep.Port
	if port <= 0 {
		port = 22
	}
	return &sshKeyAuth{
		user:       user,
		signer:     signer,
		knownHosts: a.KnownHostsFile,
		hostPort:   net.JoinHostPort(ep.Host, strconv.Itoa(port)),
	}, nil
}

func parseKey(pem []byte, passphrase string) (ssh.Signer, error) {
	if passphrase == "" {
		return ssh.ParsePrivateKey(pem)
	}
	return ssh.ParsePrivateKeyWithPassphrase(pem, []byte(passphrase))
}

// sshKeyAuth is go-git's ssh.AuthMethod with strict known_hosts checking.
type sshKeyAuth struct {
	user       string
	signer     ssh.Signer
	knownHosts string
	hostPort   string
}

func (a *sshKeyAuth) Name() string   { return "ssh-public-keys" }
func (a *sshKeyAuth) String() string { return "user: " + a.user + ", name: ssh-public-keys" }

// ClientConfig is called by go-git for every connection.
func (a *sshKeyAuth) ClientConfig() (*ssh.ClientConfig, error) {
	db, err := knownhosts.NewDB(a.knownHosts)
	if err != nil {
		return nil, configError("auth.known_hosts_file", "%v", err)
	}
	return &ssh.ClientConfig{
		User:              a.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(a.signer)},
		HostKeyCallback:   strictHostKey(db, a.knownHosts),
		HostKeyAlgorithms: db.HostKeyAlgorithms(a.hostPort),
		Timeout:           sshDialTimeout,
	}, nil
}

// hostKeyError is an SSH host key that is unknown or has changed.
type hostKeyError struct{ msg string }

func (e *hostKeyError) Error() string { return e.msg }

// strictHostKey checks the server key against known_hosts and names the host
// in its error; there is no prompt and no trust on first use.
func strictHostKey(db *knownhosts.HostKeyDB, file string) ssh.HostKeyCallback {
	check := db.HostKeyCallback()
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := check(host, remote, key)
		switch {
		case err == nil:
			return nil
		case knownhosts.IsHostUnknown(err):
			return &hostKeyError{fmt.Sprintf("ssh host %s is not in %s (unknown %s host key %s)",
				host, file, key.Type(), ssh.FingerprintSHA256(key))}
		case knownhosts.IsHostKeyChanged(err):
			return &hostKeyError{fmt.Sprintf("ssh host %s presented %s host key %s, which does not match %s",
				host, key.Type(), ssh.FingerprintSHA256(key), file)}
		}
		return &hostKeyError{fmt.Sprintf("ssh host %s: %v", host, err)}
	}
}
