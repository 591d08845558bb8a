package agent

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// CheckImages asks the registries which digest each tag in Refs names now,
// without pulling; the result is an ImagesChecked input.
type CheckImages struct{ Refs []string }

// PullImage pulls Ref, whose registry names Digest now, for the services
// that follow its updates (x-fleetd.image_updates: apply); the result is
// an ImagePulled input.
type PullImage struct {
	Ref    string
	Digest string
}

func (CheckImages) effect() {}
func (PullImage) effect()   {}

// ImageCheck is what a registry says of one tag: the digest the local
// image came from (Running) and the one the tag names now (Remote). An
// empty Running means the local image came from no registry (built or
// loaded here): there is nothing to compare.
type ImageCheck struct {
	Ref     string
	Running string
	Remote  string
	Err     string
}

// ImagesChecked is a CheckImages' result.
type ImagesChecked struct {
	Results []ImageCheck
	At      time.Time
}

// ImagePulled is a PullImage's result.
type ImagePulled struct {
	Ref    string
	Digest string
	Err    string
}

// ImageState is what the agent knows of one tag the fleets run.
type ImageState struct {
	Running string
	Remote  string
	// Since is when the registry was first seen naming Remote while the
	// host runs another digest.
	Since   time.Time
	Checked time.Time
	// Err is the last check's or pull's failure; the digests are those
	// of the last check that got through.
	Err     string
	Pulling bool
}

// available reports whether the registry names a digest other than the
// one running.
func (s ImageState) available() bool {
	return s.Running != "" && s.Remote != "" && s.Remote != s.Running
}

// firstImageCheck is how long after the start the first check runs (or
// one period, if shorter): the engine is watched and the revision taken
// by then.
const firstImageCheck = time.Minute

// imageUser is one service that runs a tag.
type imageUser struct {
	fleet, service, policy string
}

// imageUsers returns, per tag, the services of docker fleets on this host
// that run an image pulled by tag and want to hear of its updates.
func (m *machine) imageUsers() map[string][]imageUser { return imageUsersOf(m.s.Fleets) }

func imageUsersOf(fl map[string]Fleet) map[string][]imageUser {
	out := map[string][]imageUser{}
	for _, name := range sortedKeys(fl) {
		f := fl[name]
		if f.Model == nil || f.Gone || f.Model.Engine == fleets.EngineSwarm || !f.Model.Targets {
			continue
		}
		for _, svc := range f.Model.Services {
			if !followsUpdates(svc) {
				continue
			}
			out[svc.Spec.Image] = append(out[svc.Spec.Image], imageUser{fleet: name, service: svc.Name, policy: policyOf(svc)})
		}
	}
	return out
}

// followsUpdates reports whether a service's image is checked: pulled from
// a registry by tag, and not opted out.
func followsUpdates(svc fleets.Service) bool {
	return svc.Targets && svc.Build == nil && svc.PullPolicy != "build" && svc.PullPolicy != "never" &&
		svc.Spec.Image != "" && !strings.Contains(svc.Spec.Image, "@") && policyOf(svc) != fleets.ImageUpdatesOff
}

func policyOf(svc fleets.Service) string {
	return cmp.Or(svc.ImageUpdates, fleets.ImageUpdatesNotify)
}

// imagesDue starts the image check when it is due (once shortly after the
// start, then every Rules.ImageCheck) and the pulls that may start.
func (m *machine) imagesDue() {
	if m.r.ImageCheck <= 0 {
		return
	}
	soon := min(firstImageCheck, m.r.ImageCheck)
	if m.s.NextImageCheck.IsZero() {
		m.s.NextImageCheck = m.now.Add(soon)
	}
	if !m.now.Before(m.s.NextImageCheck) {
		if !m.s.Engine.Up || m.s.CheckingImages {
			// Not now: the engine asks the registries, and one check at
			// a time. Look again shortly rather than a whole period later.
			m.s.NextImageCheck = m.now.Add(soon)
		} else {
			m.s.NextImageCheck = m.now.Add(jitter(m.r.ImageCheck, "images", int(m.now.Unix()), m.r.Seed))
			if refs := sortedKeys(m.imageUsers()); len(refs) > 0 {
				m.s.CheckingImages = true
				m.emit(CheckImages{Refs: refs})
			}
		}
	}
	m.pullUpdates()
}

func (in ImagesChecked) apply(m *machine) {
	m.s.CheckingImages = false
	users := m.imageUsers()
	images := map[string]ImageState{}
	for ref, st := range m.s.Images {
		if _, used := users[ref]; used {
			images[ref] = st
		}
	}
	for _, r := range in.Results {
		if _, used := users[r.Ref]; !used {
			continue
		}
		st := images[r.Ref]
		st.Checked = m.now
		switch {
		case r.Err != "":
			st.Err = r.Err // what was known stays known
		case r.Running == "":
			delete(images, r.Ref) // built or loaded here: nothing to compare
			continue
		default:
			if r.Remote != st.Remote || r.Running != st.Running {
				st.Since = time.Time{}
				if r.Remote != r.Running {
					st.Since = m.now
				}
			}
			st.Running, st.Remote, st.Err = r.Running, r.Remote, ""
		}
		images[r.Ref] = st
	}
	m.s.Images = images
	m.announce(users)
	m.pullUpdates()
}

// announce tells each fleet once of each new digest its services' tags
// name.
func (m *machine) announce(users map[string][]imageUser) {
	for _, ref := range sortedKeys(users) {
		st := m.s.Images[ref]
		if !st.available() {
			continue
		}
		byFleet := map[string][]imageUser{}
		for _, u := range users[ref] {
			byFleet[u.fleet] = append(byFleet[u.fleet], u)
		}
		for _, name := range sortedKeys(byFleet) {
			f := m.s.Fleets[name]
			if f.Announced[ref] == st.Remote {
				continue
			}
			f.Announced = maps.Clone(f.Announced)
			if f.Announced == nil {
				f.Announced = map[string]string{}
			}
			f.Announced[ref] = st.Remote
			m.s.Fleets[name] = f
			us := byFleet[name]
			services := make([]string, len(us))
			for i, u := range us {
				services[i] = u.service
			}
			m.tell(reconcile.Event{Kind: reconcile.EventImageUpdateAvailable, Fleet: name, Service: strings.Join(services, ", "), Revision: revOf(f),
				Message: fmt.Sprintf("update available: image %s (%s → %s)", ref, shortDigest(st.Running), shortDigest(st.Remote)),
				Reason:  updateNote(us, m.s.Fleets)})
		}
	}
}

// updateNote says what happens next to an update for these services.
func updateNote(us []imageUser, fl map[string]Fleet) string {
	if allApply(us) && !suspended(us, fl) {
		return "image_updates: apply: pulled and rolled out within the sync windows"
	}
	return "image_updates: notify: nothing changes until the image is pulled or the service's image changes"
}

func allApply(us []imageUser) bool {
	return len(us) > 0 && !slices.ContainsFunc(us, func(u imageUser) bool { return u.policy != fleets.ImageUpdatesApply })
}

func suspended(us []imageUser, fl map[string]Fleet) bool {
	return slices.ContainsFunc(us, func(u imageUser) bool {
		f := fl[u.fleet]
		return f.Model != nil && f.Model.Policy.Suspend
	})
}

// pullUpdates pulls the tags with an update when every service that runs
// them asks for it (a pulled tag changes for every container of it on the
// host), no fleet of theirs is suspended, the engine is up and a sync
// window is open.
func (m *machine) pullUpdates() {
	if len(m.s.Images) == 0 || !m.s.Engine.Up || !m.windowOpen() {
		return // nothing checked yet: no map of users to build on every step
	}
	users := m.imageUsers()
	for _, ref := range sortedKeys(m.s.Images) {
		st := m.s.Images[ref]
		if !st.available() || st.Pulling || st.Err != "" || !allApply(users[ref]) || suspended(users[ref], m.s.Fleets) {
			continue
		}
		st.Pulling = true
		m.s.Images[ref] = st
		m.emit(PullImage{Ref: ref, Digest: st.Remote})
	}
}

func (m *machine) windowOpen() bool { return m.r.InWindow == nil || m.r.InWindow(m.now) }

// apply records a pull: on success the tag runs the new digest locally,
// and the fleets that run it are applied (the image drift rolls out
// through each service's rollout); a failure is reported in the status
// and tried again after the next check.
func (in ImagePulled) apply(m *machine) {
	st, ok := m.s.Images[in.Ref]
	if !ok {
		return
	}
	st.Pulling = false
	if in.Err != "" {
		st.Err = "pull: " + in.Err
		m.s.Images[in.Ref] = st
		return
	}
	st.Running, st.Since, st.Err = cmp.Or(in.Digest, st.Remote), time.Time{}, ""
	m.s.Images[in.Ref] = st
	for _, u := range m.imageUsers()[in.Ref] {
		f := m.s.Fleets[u.fleet]
		m.wake(&f, WakeImage)
		m.s.Fleets[u.fleet] = f
	}
}

// imageTimer is when Next must look at the clock for image updates: the
// next check, and the next minute while an update waits for a window.
func (m *machine) imageTimer() time.Time {
	if m.r.ImageCheck <= 0 {
		return time.Time{}
	}
	at := m.s.NextImageCheck
	if len(m.s.Images) > 0 && !m.windowOpen() {
		users := m.imageUsers()
		for ref, st := range m.s.Images {
			if st.available() && allApply(users[ref]) {
				return earliest(at, m.now.Truncate(time.Minute).Add(time.Minute))
			}
		}
	}
	return at
}

// ImageUpdate is one service's image with an update, or whose check
// failed, for the status.
type ImageUpdate struct {
	Service   string    `json:"service"`
	Image     string    `json:"image"`
	Running   string    `json:"running,omitempty"`
	Available string    `json:"available,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Policy    string    `json:"policy"`
	// Waiting says why an update to apply is not applied yet.
	Waiting string `json:"waiting,omitempty"`
	Error   string `json:"error,omitempty"`
}

// imageUpdates returns the fleet's services whose image has an update or
// could not be checked.
func imageUpdates(s State, f Fleet, users map[string][]imageUser, inWindow bool) []ImageUpdate {
	if f.Model == nil || f.Gone {
		return nil
	}
	var out []ImageUpdate
	for _, svc := range f.Model.Services {
		st, ok := s.Images[svc.Spec.Image]
		if !ok || !followsUpdates(svc) || (!st.available() && st.Err == "") {
			continue
		}
		u := ImageUpdate{Service: svc.Name, Image: svc.Spec.Image, Running: st.Running, Policy: policyOf(svc), Error: st.Err}
		if st.available() {
			u.Available, u.Since = st.Remote, st.Since
		}
		if u.Available != "" && u.Policy == fleets.ImageUpdatesApply {
			switch {
			case !allApply(users[u.Image]):
				u.Waiting = "another service on this host runs the same tag without image_updates: apply"
			case suspended(users[u.Image], s.Fleets):
				u.Waiting = "a fleet that runs this tag is suspended"
			case st.Pulling:
				u.Waiting = "pulling"
			case !inWindow:
				u.Waiting = "outside the sync windows"
			}
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b ImageUpdate) int { return cmp.Compare(a.Service, b.Service) })
	return out
}

// shortDigest is a digest's algorithm and first 12 hex digits.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12] + "…"
}

// checkImages runs a CheckImages effect.
func (sh *shell) checkImages(ctx context.Context, e CheckImages) Input {
	in := ImagesChecked{At: time.Now()}
	if sh.cfg.CheckImages != nil {
		in.Results = sh.cfg.CheckImages(ctx, e.Refs)
	}
	return in
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// updateKey is one service's image, for the metric.
type updateKey struct{ fleet, service, image string }

// updateGauges is, per service image that was checked, whether an update
// is available.
func updateGauges(s State) map[updateKey]bool {
	out := map[updateKey]bool{}
	for ref, us := range imageUsersOf(s.Fleets) {
		st, ok := s.Images[ref]
		if !ok || st.Running == "" {
			continue
		}
		for _, u := range us {
			out[updateKey{u.fleet, u.service, ref}] = st.available()
		}
	}
	return out
}

// publishImageUpdates sets the image update metric where it changed.
func (sh *shell) publishImageUpdates(prev State) {
	before, now := updateGauges(prev), updateGauges(sh.state)
	for k, v := range now {
		if was, ok := before[k]; !ok || was != v {
			sh.metrics.SetImageUpdate(k.fleet, k.service, k.image, v)
		}
	}
	for k := range before {
		if _, ok := now[k]; !ok {
			sh.metrics.SetImageUpdate(k.fleet, k.service, k.image, false)
		}
	}
}

// String is the update for people: "update available: image ref
// (sha256:abcd… → sha256:ef01…)", what happens to it, or why the check
// failed.
func (u ImageUpdate) String() string {
	var b strings.Builder
	if u.Available != "" {
		fmt.Fprintf(&b, "update available: image %s (%s → %s), %s", u.Image, shortDigest(u.Running), shortDigest(u.Available), u.Policy)
		if u.Waiting != "" {
			fmt.Fprintf(&b, ", waiting: %s", u.Waiting)
		}
	}
	if u.Error != "" {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "image %s: check failed: %s", u.Image, u.Error)
	}
	return b.String()
}
