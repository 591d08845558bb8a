package fleets

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/compose-spec/compose-go/v2/types"
)

// ports converts published ports, protocol defaulted to tcp, sorted and
// deduplicated, so that listing the same ports in another order or
// spelling does not change the spec. A swarm fleet's ports carry Swarm's
// publish mode (ingress unless the file says host).
func ports(in []types.ServicePortConfig, swarm bool) []Port {
	var out []Port
	for _, p := range in {
		port := Port{
			Target:    p.Target,
			Published: p.Published,
			HostIP:    p.HostIP,
			Protocol:  cmpOr(p.Protocol, defaultProtocol),
		}
		if swarm {
			port.Mode = "ingress"
			if p.Mode == "host" {
				port.Mode = "host"
			}
		}
		out = append(out, port)
	}
	slices.SortFunc(out, comparePorts)
	return slices.Compact(out)
}

func comparePorts(a, b Port) int {
	return cmp.Or(
		cmp.Compare(a.Target, b.Target),
		cmp.Compare(a.Protocol, b.Protocol),
		cmp.Compare(a.Published, b.Published),
		cmp.Compare(a.HostIP, b.HostIP),
	)
}

// portRange parses a published host port "8080" or range "8000-8010".
func portRange(published string) (lo, hi int, ok bool) {
	a, b, isRange := cut(published, '-')
	lo, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, false
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil {
			return 0, 0, false
		}
	}
	return lo, hi, lo <= hi
}

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
