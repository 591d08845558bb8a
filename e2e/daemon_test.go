//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/docker/docker/client"
)

// daemonStartTimeout bounds how long the private daemon may take to answer.
const daemonStartTimeout = 60 * time.Second

// privateDaemon is a dockerd started for this test process.
type privateDaemon struct {
	dir  string
	cmd  *exec.Cmd
	done chan error
}

// startDaemon starts dockerd with its state under a temporary directory,
// no default bridge, and no iptables or masquerading changes (the host's
// daemon owns those; the tests publish ports on 127.0.0.1 through the
// userland proxy), and points DOCKER_HOST at it.
func startDaemon() (*privateDaemon, error) {
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, fmt.Errorf("no dockerd to start a private daemon (run as root with dockerd installed, or set %s=ambient on a dedicated daemon): %w", dockerModeEnv, err)
	}
	dir, err := os.MkdirTemp("", "fleetd-e2e-dockerd-")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "daemon.json")
	// An empty configuration file keeps the host's /etc/docker/daemon.json
	// (its data-root, its hosts) out of the way.
	if err := os.WriteFile(cfg, []byte("{}\n"), 0o644); err != nil {
		return nil, err
	}
	host := "unix://" + filepath.Join(dir, "docker.sock")
	log, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd := exec.Command(bin,
		"--config-file", cfg,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--host", host,
		"--bridge", "none",
		"--iptables=false",
		"--ip-masq=false",
		"--default-address-pool", "base=10.213.0.0/16,size=24",
	)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // no daemon outlives a killed test binary
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	d := &privateDaemon{dir: dir, cmd: cmd, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	if err := d.waitReady(host); err != nil {
		d.stop()
		return nil, err
	}
	os.Setenv("DOCKER_HOST", host)
	return d, nil
}

func (d *privateDaemon) waitReady(host string) error {
	cli, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(daemonStartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Ping(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case werr := <-d.done:
			d.done <- werr
			return fmt.Errorf("dockerd exited (%v); see %s", werr, filepath.Join(d.dir, "dockerd.log"))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd at %s not ready after %s: %w", host, daemonStartTimeout, err)
		}
	}
}

// stop terminates the daemon (which unmounts its layers) and removes its
// state.
func (d *privateDaemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	if err := os.RemoveAll(d.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "e2e: remove private daemon state:", err)
	}
}
