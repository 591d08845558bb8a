package dockertest

import (
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// linkNet holds every extra engine's address: engine K of all test runs
// gets a /30 of it, the root namespace side .1, the engine's .2.
const linkNet = "10.231.0.0/16"

// link is an engine's connection to the root namespace: a veth pair, the
// root side routed, the engine side its address and default route.
type link struct {
	rootIf string
	root   string // the root namespace's address on the link
	addr   string // the engine's address
}

// addLink connects the namespace ns to the root namespace: the engines of
// a swarm reach each other through it (routed, like hosts on a LAN). The
// address is chosen under a lock so that parallel test processes never
// share one.
func addLink(ns string) (link, error) {
	if err := os.MkdirAll(enginesDir, 0o700); err != nil {
		return link{}, err
	}
	lock, err := os.OpenFile(filepath.Join(enginesDir, "addr.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return link{}, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return link{}, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	used, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		return link{}, fmt.Errorf("ip addr show: %w", err)
	}
	h := fnv.New32a()
	h.Write([]byte(ns))
	const slots = 254 * 64 // /30s in 10.231.1.0 - 10.231.254.255
	for i := uint32(0); i < slots; i++ {
		idx := (h.Sum32() + i) % slots
		third, fourth := 1+idx/64, (idx%64)*4
		root := fmt.Sprintf("10.231.%d.%d", third, fourth+1)
		rootIf := fmt.Sprintf("fdl%05x", idx)
		if strings.Contains(string(used), " "+root+"/") || strings.Contains(string(used), " "+rootIf+" ") {
			continue
		}
		l := link{rootIf: rootIf, root: root, addr: fmt.Sprintf("10.231.%d.%d", third, fourth+2)}
		peer := rootIf + "p"
		steps := [][]string{
			{"ip", "link", "add", rootIf, "type", "veth", "peer", "name", peer},
			{"ip", "link", "set", peer, "netns", ns},
			{"ip", "addr", "add", root + "/30", "dev", rootIf},
			{"ip", "link", "set", rootIf, "up"},
			{"ip", "netns", "exec", ns, "ip", "addr", "add", l.addr + "/30", "dev", peer},
			{"ip", "netns", "exec", ns, "ip", "link", "set", peer, "up"},
			{"ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", root},
		}
		for _, s := range steps {
			if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
				_ = exec.Command("ip", "link", "del", rootIf).Run()
				return link{}, fmt.Errorf("%s: %w: %s", strings.Join(s, " "), err, out)
			}
		}
		return l, allowForwarding()
	}
	return link{}, fmt.Errorf("no free /30 left in %s", linkNet)
}

// allowForwarding lets the root namespace route between the engines:
// forwarding on, and an ACCEPT in DOCKER-USER (Docker's FORWARD policy
// drops traffic between interfaces it does not know). The rule is shared
// by every run and left in place; it only concerns linkNet.
func allowForwarding() error {
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable forwarding: %w", err)
	}
	rule := []string{"-s", linkNet, "-d", linkNet, "-j", "ACCEPT"}
	for _, chain := range []string{"DOCKER-USER", "FORWARD"} {
		if exec.Command("iptables", append([]string{"-C", chain}, rule...)...).Run() == nil {
			return nil
		}
		if exec.Command("iptables", append([]string{"-I", chain}, rule...)...).Run() == nil {
			return nil
		}
	}
	return fmt.Errorf("iptables: cannot accept forwarding within %s", linkNet)
}

// Cut takes the engine's link down (a network partition), Mend brings it
// back. Only for engines started WithLink.
func (e *Engine) Cut()  { e.setLink("down") }
func (e *Engine) Mend() { e.setLink("up") }

func (e *Engine) setLink(state string) {
	e.t.Helper()
	if e.link.rootIf == "" {
		e.t.Fatalf("dockertest: %s has no link (start it WithLink)", e.Name)
	}
	if out, err := exec.Command("ip", "link", "set", e.link.rootIf, state).CombinedOutput(); err != nil {
		e.t.Fatalf("dockertest: ip link set %s %s: %v: %s", e.link.rootIf, state, err, out)
	}
}
