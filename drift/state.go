package drift

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fleetd/fleetd/fleets"
)

// specDrift compares the container's spec hash with the desired one and
// returns the spec the container was created from (nil when its label is
// missing or malformed) and, when the hashes differ, the spec item. Equal
// hashes return the desired spec without decoding the label.
func specDrift(base Item, svc *fleets.Service, c *Container) (*fleets.Spec, *Item) {
	version, have := c.Labels[fleets.LabelHashVersion], c.Labels[fleets.LabelSpecHash]
	want, notes := svc.Hash, []string(nil)
	if version != fleets.HashVersion {
		h, err := fleets.HashSpec(version, svc.Spec)
		if err != nil {
			want = ""
			notes = append(notes, fmt.Sprintf("hash version %q is unknown to this fleetd", version))
		} else {
			want = h
		}
	}
	if want != "" && want == have {
		return &svc.Spec, nil
	}
	it := with(base, SpecChange, "")
	raw, ok := c.Labels[fleets.LabelSpec]
	if !ok {
		it.Detail = strings.Join(append(notes, "spec label missing; cannot name fields"), "; ")
		return nil, &it
	}
	applied, err := fleets.DecodeSpec(raw)
	if err != nil {
		it.Detail = strings.Join(append(notes, "spec label malformed; cannot name fields"), "; ")
		return nil, &it
	}
	it.Fields = SpecFields(*svc, applied)
	if len(it.Fields) == 0 {
		notes = append(notes, "spec hash differs but no field does")
	}
	it.Detail = strings.Join(notes, "; ")
	return &applied, &it
}

// stateDrift reports a container that is not running, or running unhealthy.
func stateDrift(base Item, c *Container) (Item, bool) {
	switch c.State {
	case "created", "exited", "dead", "removing":
		return with(base, Stopped, stoppedDetail(c)), true
	case "paused":
		return with(base, Paused, c.Status), true
	case "restarting":
		detail := c.Status
		if in := c.Inspected; in != nil {
			detail = joinDetail(detail, fmt.Sprintf("restarted %d times, last exit code %d", in.RestartCount, in.ExitCode))
		}
		return with(base, Restarting, detail), true
	case "running":
		if c.Health == "unhealthy" {
			detail := c.Status
			if in := c.Inspected; in != nil && in.HealthLog != "" {
				detail = joinDetail(detail, "last check: "+oneLine(in.HealthLog, 200))
			}
			return with(base, Unhealthy, detail), true
		}
	}
	return Item{}, false
}

func stoppedDetail(c *Container) string {
	detail := c.Status
	in := c.Inspected
	if in == nil {
		return detail
	}
	if detail == "" && c.State == "exited" {
		detail = fmt.Sprintf("exit code %d", in.ExitCode)
	}
	if in.OOMKilled {
		detail = joinDetail(detail, "OOM killed")
	}
	return detail
}

// modifiedFields names what was changed out of band: the name, a network
// the container was disconnected from, and what `docker update` changes.
// Networks and limits are compared with the spec the container was created
// from (applied), not the desired one, so a change in Git shows only as
// spec drift. applied is nil when the container's spec is unknown.
func modifiedFields(wantName string, applied *fleets.Spec, c *Container) []Field {
	var fs []Field
	if c.Name != wantName {
		fs = append(fs, Field{Field: "name", Want: wantName, Have: c.Name})
	}
	if applied == nil {
		return fs
	}
	if applied.NetworkMode == "" {
		for _, att := range applied.Networks {
			if !slices.Contains(c.Networks, att.Network) {
				fs = append(fs, Field{Field: "networks." + att.Network, Want: "connected", Have: "disconnected"})
			}
		}
	}
	if in := c.Inspected; in != nil {
		fs = append(fs, resourceFields(applied, in)...)
	}
	return fs
}

func resourceFields(spec *fleets.Spec, in *Inspected) []Field {
	r := spec.Resources
	var fs []Field
	num := func(name string, want, have int64) {
		if max(want, 0) != max(have, 0) { // Docker reports 0 or -1 for "no limit"
			fs = append(fs, Field{Field: "resources." + name, Want: strconv.FormatInt(want, 10), Have: strconv.FormatInt(have, 10)})
		}
	}
	num("memory", r.Memory, in.Memory)
	num("memory_reservation", r.MemoryReservation, in.MemoryReservation)
	num("nano_cpus", r.NanoCPUs, in.NanoCPUs)
	num("cpu_shares", r.CPUShares, in.CPUShares)
	num("pids_limit", r.PidsLimit, in.PidsLimit)
	if want, have := normRestart(spec.Restart), normRestart(in.RestartPolicy); want != have {
		fs = append(fs, Field{Field: "restart", Want: want, Have: have})
	}
	return fs
}

// normRestart spells equivalent restart policies one way.
func normRestart(p string) string {
	switch p {
	case "", "no":
		return "no"
	case "on-failure:0":
		return "on-failure"
	}
	return p
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// oneLine folds s onto one line of at most limit bytes.
func oneLine(s string, limit int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "") + "…"
	}
	return s
}
