package dockertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// enginesDir holds the extra engines' data, exec roots and sockets.
const enginesDir = "/tmp/fleetd-engines"

// Engine is an extra Docker engine of the test's own: a dockerd in network
// and UTS namespaces of its own, with its own data root, exec root, socket
// and containerd, so that a test can stop, kill and restart it without
// touching the machine's engine or another test's. It needs root,
// iproute2, util-linux (nsenter, unshare) and dockerd; with CI=true a
// missing one fails the test (see ../../../shared/testbed/README.md for
// what was learned building it).
type Engine struct {
	t      testing.TB
	Name   string // network namespace and hostname
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	link   link
	// Addr is the engine's address on the machine's routed test network
	// (10.231.0.0/16), for engines started WithLink; empty otherwise.
	Addr string
}

// EngineOption configures StartEngine.
type EngineOption func(*engineOptions)

type engineOptions struct{ link bool }

// WithLink connects the engine to the root namespace with an address of
// its own (Engine.Addr), routed to every other linked engine: hosts on one
// LAN, as a swarm needs. Without it the engine has loopback only.
func WithLink() EngineOption { return func(o *engineOptions) { o.link = true } }

var engineSeq atomic.Int32

// StartEngine starts an engine and waits until it answers; it is stopped
// and everything it left (namespace, mounts, shims, files) removed when
// the test ends.
func StartEngine(t testing.TB, opts ...EngineOption) *Engine {
	t.Helper()
	var o engineOptions
	for _, opt := range opts {
		opt(&o)
	}
	tools := []string{"ip", "nsenter", "unshare", "dockerd"}
	if o.link {
		tools = append(tools, "iptables")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("dockertest: an extra engine needs %s: %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatalf("dockertest: an extra engine needs root (network namespaces, dockerd)")
	}
	e := &Engine{t: t, Name: fmt.Sprintf("%s-e%d", RunID(), engineSeq.Add(1))}
	e.dir = filepath.Join(enginesDir, e.Name)
	for _, d := range []string{"data", "exec"} {
		if err := os.MkdirAll(filepath.Join(e.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeEngineConfig(filepath.Join(e.dir, "daemon.json"), o.link); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "add", e.Name).CombinedOutput(); err != nil {
		t.Fatalf("dockertest: ip netns add %s: %v: %s", e.Name, err, out)
	}
	t.Cleanup(e.remove)
	if out, err := exec.Command("ip", "netns", "exec", e.Name, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("dockertest: loopback in %s: %v: %s", e.Name, err, out)
	}
	if o.link {
		l, err := addLink(e.Name)
		if err != nil {
			t.Fatalf("dockertest: link %s: %v", e.Name, err)
		}
		e.link, e.Addr = l, l.addr
	}
	e.Start()
	return e
}

// writeEngineConfig writes the engine's configuration: the machine's
// /etc/docker/daemon.json (a storage driver it needs carries over) minus
// the keys given as flags, which dockerd refuses twice.
//
// A linked engine also takes registries on the linked network as plain
// HTTP (StartRegistryOn an engine's RootAddr): the test's own registries.
func writeEngineConfig(path string, linked bool) error {
	cfg := map[string]any{}
	if b, err := os.ReadFile("/etc/docker/daemon.json"); err == nil {
		if err := json.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("/etc/docker/daemon.json: %w", err)
		}
	}
	for _, k := range []string{"data-root", "exec-root", "hosts", "pidfile", "graph", "containerd"} {
		delete(cfg, k)
	}
	if linked {
		cfg["insecure-registries"] = []string{linkNet}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// RootAddr is the machine's address on the engine's link (the engine's
// gateway), where a test can serve what the engines of a swarm must all
// reach (StartRegistryOn); empty for an engine without a link.
func (e *Engine) RootAddr() string { return e.link.root }

// Host is the engine's DOCKER_HOST.
func (e *Engine) Host() string { return "unix://" + filepath.Join(e.dir, "docker.sock") }

// Client returns a client of the engine, closed when the test ends.
func (e *Engine) Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.WithHost(e.Host()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// Start starts dockerd (again, after Stop or Kill: same data root) and
// waits until it answers.
func (e *Engine) Start() {
	e.t.Helper()
	e.clearStalePidFiles()
	log, err := os.OpenFile(filepath.Join(e.dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	defer log.Close()
	// nsenter (not `ip netns exec`, which remounts /sys) keeps the cgroup
	// mounts dockerd needs; unshare gives it a hostname of its own.
	script := fmt.Sprintf("hostname %s && exec dockerd --config-file %s --data-root %s --exec-root %s -H %s --pidfile %s",
		e.Name, filepath.Join(e.dir, "daemon.json"), filepath.Join(e.dir, "data"), filepath.Join(e.dir, "exec"),
		e.Host(), filepath.Join(e.dir, "docker.pid"))
	e.cmd = exec.Command("nsenter", "--net=/var/run/netns/"+e.Name, "unshare", "--uts", "sh", "-c", script)
	e.cmd.Stdout, e.cmd.Stderr = log, log
	e.cmd.Env = append(os.Environ(), "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1")
	if err := e.cmd.Start(); err != nil {
		e.t.Fatalf("dockertest: start dockerd: %v", err)
	}
	e.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(e.cmd, e.exited)
	cli, err := client.NewClientWithOpts(client.WithHost(e.Host()), client.WithAPIVersionNegotiation())
	if err != nil {
		e.t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Ping(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-e.exited:
			e.t.Fatalf("dockertest: dockerd of %s exited at start:\n%s", e.Name, e.logTail())
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("dockertest: dockerd of %s does not answer: %v\n%s", e.Name, err, e.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// clearStalePidFiles removes the pid files of a dockerd and containerd that
// were killed: this machine's init does not reap orphans, so a killed
// containerd stays a zombie, which dockerd takes for a running one (and
// waits for its socket). A host's init would have reaped it.
func (e *Engine) clearStalePidFiles() {
	for _, f := range []string{filepath.Join(e.dir, "docker.pid"), filepath.Join(e.dir, "exec", "containerd", "containerd.pid")} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var pid int
		fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &pid)
		if pid <= 0 || !running(pid) {
			os.Remove(f)
		}
	}
}

// running reports whether pid is a live process (not gone, not a zombie).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// Stop stops dockerd as a service manager would (SIGTERM; SIGKILL after 30s).
func (e *Engine) Stop() { e.signal(syscall.SIGTERM, 30*time.Second) }

// Kill kills dockerd at once; its containers' shims survive it, as they
// would on a host.
func (e *Engine) Kill() { e.signal(syscall.SIGKILL, 0) }

func (e *Engine) signal(sig syscall.Signal, grace time.Duration) {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	select {
	case <-e.exited:
		return
	default:
	}
	_ = e.cmd.Process.Signal(sig)
	select {
	case <-e.exited:
	case <-time.After(grace + 5*time.Second):
		_ = e.cmd.Process.Kill()
		<-e.exited
	}
}

// remove stops the engine and removes what it leaves: every process
// started under its directory (containerd, shims and their containers,
// fuse-overlayfs), its mounts, its namespace and its files.
func (e *Engine) remove() {
	e.Stop()
	e.killLeftovers()
	if mounts, err := os.ReadFile("/proc/mounts"); err == nil {
		var under []string
		for _, line := range strings.Split(string(mounts), "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], e.dir+"/") {
				under = append(under, f[1])
			}
		}
		for i := len(under) - 1; i >= 0; i-- {
			_ = syscall.Unmount(under[i], syscall.MNT_DETACH)
		}
	}
	if e.link.rootIf != "" {
		_ = exec.Command("ip", "link", "del", e.link.rootIf).Run() // gone with the namespace, normally
	}
	if out, err := exec.Command("ip", "netns", "del", e.Name).CombinedOutput(); err != nil {
		e.t.Errorf("dockertest: ip netns del %s: %v: %s", e.Name, err, out)
	}
	if err := os.RemoveAll(e.dir); err != nil {
		e.t.Errorf("dockertest: remove %s: %v", e.dir, err)
	}
}

// killLeftovers kills what dockerd started and left: its containerd, the
// shims with their containers, the fuse-overlayfs mounts' daemons.
func (e *Engine) killLeftovers() {
	for _, pid := range processesMentioning(e.dir + "/") {
		for _, child := range childrenOf(pid) {
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// processesMentioning lists the processes whose command line contains s.
func processesMentioning(s string) []int {
	var out []int
	eachProcess(func(pid, _ int, cmdline string) {
		if strings.Contains(cmdline, s) {
			out = append(out, pid)
		}
	})
	return out
}

func childrenOf(parent int) []int {
	var out []int
	eachProcess(func(pid, ppid int, _ string) {
		if ppid == parent {
			out = append(out, pid)
		}
	})
	return out
}

func eachProcess(fn func(pid, ppid int, cmdline string)) {
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		var pid int
		if _, err := fmt.Sscanf(ent.Name(), "%d", &pid); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		var ppid int
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			fmt.Sscanf(s[i+2:], "%*s %d", &ppid)
		}
		fn(pid, ppid, strings.ReplaceAll(string(cmd), "\x00", " "))
	}
}

func (e *Engine) logTail() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// LoadImage copies ref from the engine of from into this one (docker save
// | docker load): the extra engine reaches no registry.
func (e *Engine) LoadImage(t testing.TB, from *client.Client, ref string) {
	t.Helper()
	ctx := t.Context()
	rc, err := from.ImageSave(ctx, []string{ref})
	if err != nil {
		t.Fatalf("dockertest: save %s: %v", ref, err)
	}
	defer rc.Close()
	to := e.Client(t)
	resp, err := to.ImageLoad(ctx, rc, client.ImageLoadWithQuiet(true))
	if err != nil {
		t.Fatalf("dockertest: load %s into %s: %v", ref, e.Name, err)
	}
	defer resp.Body.Close()
	if err := readStream(resp.Body); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("dockertest: load %s into %s: %v", ref, e.Name, err)
	}
	if _, err := to.ImageInspect(ctx, ref); err != nil {
		t.Fatalf("dockertest: %s not in %s after load: %v", ref, e.Name, err)
	}
}
