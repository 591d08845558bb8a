package fleets

import (
	"fmt"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/fleetd/fleetd/hint"
	"slices"
	"strings"
	"time"
)

// Ingress defaults and choices.
const (
	IngressHTTP       = "http"
	IngressTCP        = "tcp"
	BalanceRoundRobin = "round_robin"
	BalanceLeastConn  = "least_conn"
	defaultDrain      = 30 * time.Second
)

var ingressKeys = []string{"drain", "health_path", "protocol", "balance", "rules", "tls"}

// ingress reads a service's x-fleetd.ingress (true, false, or a map) and
// takes its published TCP ports out of the spec: the ingress binds them,
// not the replicas. UDP and SCTP ports stay with the replicas. It reports
// every problem at its field.
func (c *converter) ingress(name string, raw any, spec *Spec) *Ingress {
	const field = extensionKey + ".ingress"
	opts := map[string]any{}
	switch v := raw.(type) {
	case nil:
		return nil
	case bool:
		if !v {
			return nil
		}
	case map[string]any:
		opts = v
	default:
		c.r.servicef(name, field, "want true or a map of %s, not %T", strings.Join(ingressKeys, ", "), raw)
		return nil
	}
	if c.fleet.Engine == EngineSwarm {
		c.r.servicef(name, field, "a swarm fleet publishes through Swarm's routing mesh: drop x-fleetd.ingress")
		return nil
	}
	if spec.NetworkMode != "" {
		c.r.servicef(name, field, "the ingress reaches replicas on the fleet's networks: drop network_mode %s", spec.NetworkMode)
		return nil
	}
	in := &Ingress{Protocol: IngressHTTP, Balance: BalanceRoundRobin, Drain: defaultDrain}
	for _, k := range sortedKeys(opts) {
		v := opts[k]
		str, isStr := v.(string)
		switch k {
		case "drain":
			d, err := time.ParseDuration(str)
			if !isStr || err != nil || d < 0 {
				c.r.servicef(name, field+".drain", "want a duration such as 30s, not %v", v)
				continue
			}
			in.Drain = d
		case "health_path":
			if !isStr || !strings.HasPrefix(str, "/") {
				c.r.servicef(name, field+".health_path", "want a path starting with /, not %v", v)
				continue
			}
			in.HealthPath = str
		case "protocol":
			if !isStr || (str != IngressHTTP && str != IngressTCP) {
				c.r.servicef(name, field+".protocol", "want http or tcp, not %v", v)
				continue
			}
			in.Protocol = str
		case "balance":
			if !isStr || (str != BalanceRoundRobin && str != BalanceLeastConn) {
				c.r.servicef(name, field+".balance", "want round_robin or least_conn, not %v", v)
				continue
			}
			in.Balance = str
		case "rules":
			in.Rules = c.ingressRules(name, field+".rules", v)
		case "tls":
			in.TLS = c.ingressTLS(name, field+".tls", v)
		default:
			c.r.servicef(name, field+"."+k, "unknown key%s: ingress takes %s", hint.DidYouMean(k, ingressKeys), strings.Join(ingressKeys, ", "))
		}
	}
	if in.Protocol == IngressTCP && (len(in.Rules) > 0 || in.HealthPath != "" || in.TLS != nil) {
		c.r.servicef(name, field, "host and path rules, health_path and tls need protocol http")
	}
	var kept []Port
	for i, p := range spec.Ports {
		if p.Protocol != defaultProtocol {
			kept = append(kept, p) // UDP and SCTP stay direct
			continue
		}
		if lo, _, ok := portRange(p.Published); !ok || lo == 0 || strings.Contains(p.Published, "-") {
			c.r.servicef(name, fmt.Sprintf("ports.%d", i), "the ingress listens on one fixed host port: publish one (such as \"8080:%d\"), not %q", p.Target, p.Published)
			continue
		}
		in.Ports = append(in.Ports, p)
	}
	if len(in.Ports) == 0 {
		c.r.servicef(name, field, "the service publishes no TCP port for the ingress to bind")
	}
	spec.Ports = kept
	return in
}

// UsesIngress reports whether some service of the fleet goes through
// fleetd's ingress.
func (f Fleet) UsesIngress() bool {
	for _, s := range f.Services {
		if s.Ingress != nil {
			return true
		}
	}
	return false
}

// ingressOn reports whether x-fleetd.ingress turns the ingress on.
func ingressOn(raw any) bool {
	switch v := raw.(type) {
	case bool:
		return v
	case map[string]any:
		return true
	}
	return false
}

func (c *converter) ingressRules(name, field string, v any) []IngressRule {
	list, ok := v.([]any)
	if !ok {
		c.r.servicef(name, field, "want a list of {host, path}, not %T", v)
		return nil
	}
	var out []IngressRule
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			c.r.servicef(name, fmt.Sprintf("%s.%d", field, i), "want {host, path}, not %T", item)
			continue
		}
		var rule IngressRule
		for _, k := range sortedKeys(m) {
			str, isStr := m[k].(string)
			switch {
			case k == "host" && isStr && str != "" && !strings.ContainsAny(str, "/: "):
				rule.Host = strings.ToLower(str)
			case k == "path" && isStr && strings.HasPrefix(str, "/"):
				rule.Path = cmpOr(strings.TrimRight(str, "/"), "/") // as the ingress matches it
			default:
				c.r.servicef(name, fmt.Sprintf("%s.%d.%s", field, i, k), "want host (a name) or path (starting with /), not %s: %v", k, m[k])
			}
		}
		if rule == (IngressRule{}) {
			c.r.servicef(name, fmt.Sprintf("%s.%d", field, i), "a rule needs a host or a path")
			continue
		}
		if j := slices.Index(out, rule); j >= 0 {
			c.r.servicef(name, fmt.Sprintf("%s.%d", field, i), "the same rule as rules.%d", j)
			continue
		}
		out = append(out, rule)
	}
	slices.SortFunc(out, func(a, b IngressRule) int { return strings.Compare(a.Host+" "+a.Path, b.Host+" "+b.Path) })
	return out
}

// ingressTLS reads tls: {cert: <secret>, key: <secret>}: two top-level
// secrets of the fleet (from file:, environment: or content:), which the
// agent hands to the ingress and nothing else.
func (c *converter) ingressTLS(name, field string, v any) *IngressTLS {
	m, ok := v.(map[string]any)
	if !ok {
		c.r.servicef(name, field, "want {cert: <secret>, key: <secret>}, not %T", v)
		return nil
	}
	var refs [2]FileRef
	for i, k := range []string{"cert", "key"} {
		secret, isStr := m[k].(string)
		obj, found := c.project.Secrets[secret]
		switch {
		case !isStr || secret == "":
			c.r.servicef(name, field+"."+k, "want the name of one of the fleet's secrets")
			return nil
		case !found:
			c.r.servicef(name, field+"."+k, "secret %q is not defined under the top-level secrets", secret)
			return nil
		case bool(obj.External):
			c.r.servicef(name, field+"."+k, "secret %q is external: the ingress needs its contents (file:, environment: or content:)", secret)
			return nil
		}
		refs[i] = c.fileRef(fileObject{"secrets", secret, types.FileObjectConfig(obj)}, "", nil)
		if isSopsDigest(refs[i].Digest) {
			c.r.servicef(name, field+"."+k, "secret %q is SOPS-encrypted: the ingress reads its TLS files from its state directory, where fleetd writes no plaintext", secret)
			return nil
		}
	}
	for k := range m {
		if k != "cert" && k != "key" {
			c.r.servicef(name, field+"."+k, "unknown key: tls takes cert and key")
		}
	}
	return &IngressTLS{Cert: refs[0], Key: refs[1]}
}
