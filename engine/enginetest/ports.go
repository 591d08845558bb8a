package enginetest

import (
	"cmp"
	"fmt"
	"net"
	"strconv"

	"github.com/fleetd/fleetd/fault"
)

// binding is one host address a container publishes on.
type binding struct {
	ip, port, proto string
}

func (b binding) addr() string { return net.JoinHostPort(b.ip, b.port) }

// overlaps reports whether two bindings need the same host socket: the same
// port and protocol on the same address, or on any address when one of
// them is the wildcard (a listener on 0.0.0.0 keeps 127.0.0.1 from binding).
func (b binding) overlaps(o binding) bool {
	return b.port == o.port && b.proto == o.proto && (b.ip == o.ip || wildcard(b.ip) || wildcard(o.ip))
}

func wildcard(ip string) bool { return ip == "0.0.0.0" || ip == "::" }

// bindings are the host addresses x's spec publishes: only single host
// ports (a range lets Docker pick a free one; an empty Published an
// ephemeral one), on HostIP or 0.0.0.0.
func bindings(x *ctr) []binding {
	var out []binding
	for _, p := range x.spec.Ports {
		if _, err := strconv.ParseUint(p.Published, 10, 16); err != nil {
			continue
		}
		out = append(out, binding{ip: cmp.Or(p.HostIP, "0.0.0.0"), port: p.Published, proto: cmp.Or(p.Protocol, "tcp")})
	}
	return out
}

// publishedPortsFree fails, as Docker does when it starts x, if a host
// address x publishes is taken: by another container that is up (running,
// paused or restarting) and publishes it, or out of band (HoldPort, TCP).
// The error is a Permanent PortAllocated naming the address and reads like
// Docker's.
func (f *Fake) publishedPortsFree(x *ctr) error {
	var taken []binding
	for addr := range f.heldPorts {
		host, port, _ := net.SplitHostPort(addr)
		taken = append(taken, binding{ip: host, port: port, proto: "tcp"})
	}
	for _, other := range f.containers {
		if other != x && isUp(other.c.State) {
			taken = append(taken, bindings(other)...)
		}
	}
	for _, want := range bindings(x) {
		for _, t := range taken {
			if want.overlaps(t) {
				return fault.New(fault.Permanent, fault.PortAllocated, want.addr(),
					fmt.Errorf("driver failed programming external connectivity on endpoint %s: Bind for %s failed: port is already allocated", x.c.Name, want.addr()))
			}
		}
	}
	return nil
}
