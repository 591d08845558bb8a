package e2e

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fleets"
)

// The chaos soak: docs/performance.md ("Chaos soak") has the command for
// a long run and its figures. The test suite runs it for 2 minutes.
var (
	soakFor  = flag.Duration("soak", 2*time.Minute, "how long TestSoak makes chaos")
	soakSeed = flag.Uint64("soak.seed", 0, "TestSoak's seed (0: from the clock; the seed is logged)")
)

// Bounds the soak asserts at the end.
const (
	soakConverge   = 3 * time.Minute // chaos ended, last revision pushed -> every fleet converged
	soakGoroutines = 30              // goroutines above the baseline once idle again
	soakRSSFactor  = 3               // resident memory at most this times the baseline
)

// soak is the state of one chaos run.
type soak struct {
	t       *testing.T
	rng     *rand.Rand
	eng     *dockertest.Engine
	cli     *client.Client // the soak engine's
	g       *gitServer
	d       *daemon
	proxy   *dockerProxy
	ref     map[string]string // version -> image
	fleets  []string
	version map[string]string // fleet -> the version it runs once converged
	count   map[string]int    // chaos actions done, by kind
	gitDown bool
	gitUpAt time.Time
	lastEng time.Time
	rev     int
}

// soakFleet is a fleet of replicas of the test app with a named volume,
// restarting on failure when restart is set.
func soakFleet(fleet, image, version string, replicas int, restart bool) string {
	c := quickCompose(fleet, image, version, replicas)
	c += "    volumes: [\"data:/data\"]\n"
	if restart {
		c += "    restart: on-failure\n"
	}
	return c + "volumes:\n  data: {}\n"
}

// TestSoak runs fleetd against an engine of its own (its own dockerd, data
// root and network namespace) for -soak while it: stops, kills, removes,
// pauses and `docker update`s managed containers; stops and kills the
// engine and starts it again; takes the Git remote away; and pushes new
// revisions, invalid ones and ones with broken images among them. Then it
// pushes a last good revision and checks: every fleet converged to it
// within a bound, one container per slot, no call of fleetd's touched an
// unmanaged object, no volume was removed, no goroutine leak, resident
// memory bounded.
func TestSoak(t *testing.T) {
	main := setup(t)
	t.Parallel()
	seed := *soakSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("soak for %s, seed %d (rerun: go test -run TestSoak -v ./e2e -soak=%s -soak.seed=%d)", *soakFor, seed, *soakFor, seed)
	s := &soak{t: t, rng: rand.New(rand.NewPCG(seed, 1)), ref: map[string]string{}, version: map[string]string{}, count: map[string]int{}}
	s.eng = dockertest.StartEngine(t)
	s.cli = s.eng.Client(t)
	for _, v := range []string{"v1", "v2"} {
		ref, _ := dockertest.TestImage(t, main, v)
		s.eng.LoadImage(t, main, ref)
		s.ref[v] = ref
	}
	// Bystanders fleetd must never touch.
	byName := dockertest.Name(t, "soak-bystander")
	if _, err := s.cli.VolumeCreate(t.Context(), volume.CreateOptions{Name: byName}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cli.NetworkCreate(t.Context(), byName, network.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	created, err := s.cli.ContainerCreate(t.Context(), &container.Config{Image: s.ref["v1"]}, nil, nil, nil, byName)
	if err != nil {
		t.Fatal(err)
	}
	bystanderID := created.ID
	if err := s.cli.ContainerStart(t.Context(), bystanderID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}

	s.g = newGitServer(t)
	files := map[string]string{}
	for i := 1; i <= 3; i++ {
		f := dockertest.Name(t, fmt.Sprintf("soak-%d", i))
		s.fleets = append(s.fleets, f)
		s.version[f] = "v1"
		files[f+"/compose.yaml"] = soakFleet(f, s.ref["v1"], "v1", 2, i == 3)
	}
	s.g.commit("", "soak fleets", files)
	s.proxy = newDockerProxyTo(t, s.eng.Host())
	s.d = startDaemon(t, daemonOpts{url: s.g.url(), interval: "2s", webhook: true, resync: "30s", proxy: s.proxy})
	s.converged(soakConverge)
	time.Sleep(3 * time.Second)
	baseG, baseRSS := s.d.metric("go_goroutines"), s.d.metric("process_resident_memory_bytes")
	maxG, maxRSS := baseG, baseRSS

	begin := time.Now()
	for deadline := begin.Add(*soakFor); time.Now().Before(deadline); {
		s.chaos()
		if s.gitDown && time.Now().After(s.gitUpAt) {
			s.g.start()
			s.gitDown = false
		}
		time.Sleep(time.Duration(300+s.rng.IntN(1700)) * time.Millisecond)
		if st := s.scrape(); st != nil {
			maxG, maxRSS = max(maxG, st[0]), max(maxRSS, st[1])
		}
	}
	chaos := time.Since(begin)
	if s.gitDown {
		s.g.start()
	}
	// The last good revision: every fleet on a new version.
	final := map[string]string{}
	for i, f := range s.fleets {
		s.version[f] = "final"
		final[f+"/compose.yaml"] = soakFleet(f, s.ref["v2"], "final", 2, i == 2)
	}
	s.g.commit("", "final", final)
	s.d.push()
	took := s.converged(soakConverge)
	time.Sleep(5 * time.Second) // the converge's aftermath: health events, the applies they cause
	endG, endRSS := s.d.metric("go_goroutines"), s.d.metric("process_resident_memory_bytes")
	maxG, maxRSS = max(maxG, endG), max(maxRSS, endRSS)

	// Invariants.
	s.oneContainerPerSlot()
	touched, volumesRemoved := 0, 0
	for _, c := range s.proxy.since(begin.Add(-time.Hour)) {
		if !c.mutating() {
			continue
		}
		if strings.Contains(c.Path, byName) || strings.Contains(c.Path, bystanderID) || strings.Contains(c.Path, bystanderID[:12]) {
			touched++
			t.Errorf("fleetd touched an unmanaged object: %s", c)
		}
		if c.Method == http.MethodDelete && strings.HasPrefix(c.Path, "/volumes/") {
			volumesRemoved++
			t.Errorf("fleetd removed a volume: %s", c)
		}
	}
	for _, f := range s.fleets {
		if _, err := s.cli.VolumeInspect(t.Context(), f+"_data"); err != nil {
			t.Errorf("volume %s_data: %v", f, err)
		}
	}
	if _, err := s.cli.VolumeInspect(t.Context(), byName); err != nil {
		t.Errorf("the bystander volume: %v", err)
	}
	if _, err := s.cli.ContainerInspect(t.Context(), bystanderID); err != nil {
		t.Errorf("the bystander container: %v", err)
	}
	if endG > baseG+soakGoroutines {
		t.Errorf("goroutines: %v at the start, %v at the end: a leak", baseG, endG)
	}
	if endRSS > soakRSSFactor*baseRSS {
		t.Errorf("resident memory: %.1f MiB at the start, %.1f MiB at the end", baseRSS/(1<<20), endRSS/(1<<20))
	}
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(s.count)) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, s.count[k]))
	}
	t.Logf("chaos for %s: %s", chaos.Round(time.Second), strings.Join(kinds, ", "))
	var told []string
	log := s.d.log.String()
	for _, kind := range []string{"drift-detected", "rollout-rolled-back", "fleet-stalled", "fleet-failing", "fleet-recovered",
		"invalid-revision", "source-unreachable", "engine-unreachable", "engine-recovered"} {
		told = append(told, fmt.Sprintf("%s %d", kind, strings.Count(log, "event="+kind+" ")))
	}
	t.Logf("fleetd told: %s", strings.Join(told, ", "))
	t.Logf("last good revision pushed -> every fleet converged: %s (bound %s)", secs(took), soakConverge)
	t.Logf("goroutines %v -> %v (max %v); RSS %.1f -> %.1f MiB (max %.1f); fleetd's engine calls %d; unmanaged objects touched %d; volumes removed %d",
		baseG, endG, maxG, baseRSS/(1<<20), endRSS/(1<<20), maxRSS/(1<<20), len(s.proxy.since(begin)), touched, volumesRemoved)
	s.d.stop()
}

// scrape reads the daemon's goroutines and resident memory, or nil.
func (s *soak) scrape() []float64 {
	resp, err := http.Get(s.d.url("/metrics"))
	if err != nil {
		return nil
	}
	resp.Body.Close()
	return []float64{s.d.metric("go_goroutines"), s.d.metric("process_resident_memory_bytes")}
}

// chaos does one random thing to the host, the engine or the repository.
func (s *soak) chaos() {
	switch r := s.rng.IntN(100); {
	case r < 50:
		s.toContainer()
	case r < 58 && time.Since(s.lastEng) > 20*time.Second:
		s.lastEng = time.Now()
		if s.rng.IntN(2) == 0 {
			s.count["engine stop/start"]++
			s.eng.Stop()
		} else {
			s.count["engine kill/start"]++
			s.eng.Kill()
		}
		time.Sleep(time.Duration(s.rng.IntN(3000)) * time.Millisecond)
		s.eng.Start()
	case r < 64 && !s.gitDown:
		s.count["git outage"]++
		s.g.stop()
		s.gitDown, s.gitUpAt = true, time.Now().Add(time.Duration(2+s.rng.IntN(8))*time.Second)
	case r < 80:
		s.push("valid")
	case r < 88:
		s.push("invalid")
	case r < 94:
		s.push("missing image")
	default:
		s.push("crashing")
	}
}

// toContainer stops, kills, removes, pauses or updates a random managed
// container, as someone with the docker CLI would.
func (s *soak) toContainer() {
	ctx, cancel := context.WithTimeout(s.t.Context(), 20*time.Second)
	defer cancel()
	list, err := s.cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", fleets.LabelInstance+"="+instanceFor(s.t)))})
	if err != nil || len(list) == 0 {
		return // the engine is restarting
	}
	c := list[s.rng.IntN(len(list))]
	var kind string
	switch s.rng.IntN(5) {
	case 0:
		kind = "stop"
		secs := 1
		err = s.cli.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &secs})
	case 1:
		kind = "kill"
		err = s.cli.ContainerKill(ctx, c.ID, "SIGKILL")
	case 2:
		kind = "rm -f"
		err = s.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	case 3:
		kind = "pause"
		err = s.cli.ContainerPause(ctx, c.ID)
	default:
		kind = "update --memory"
		_, err = s.cli.ContainerUpdate(ctx, c.ID, container.UpdateConfig{Resources: container.Resources{Memory: 300 << 20, MemorySwap: 600 << 20}})
	}
	if err == nil {
		s.count[kind]++
	}
}

// push commits a revision changing one fleet: a valid one (new version or
// replica count), one that does not load, one whose image does not exist,
// or one whose containers crash (its rollout is rolled back).
func (s *soak) push(kind string) {
	i := s.rng.IntN(len(s.fleets))
	f := s.fleets[i]
	s.rev++
	version := "r" + strconv.Itoa(s.rev)
	var body string
	switch kind {
	case "valid":
		body = soakFleet(f, s.ref[[]string{"v1", "v2"}[s.rng.IntN(2)]], version, 1+s.rng.IntN(3), i == 2)
	case "invalid":
		body = "services:\n  web: [unclosed\n"
	case "missing image":
		body = soakFleet(f, "fleetd-soak-missing:"+version, version, 2, i == 2)
	case "crashing":
		body = strings.Replace(soakFleet(f, s.ref["v1"], version, 2, i == 2), "      VERSION:", "      CRASH_AFTER: 1ms\n      VERSION:", 1)
	}
	s.g.commit("", kind, map[string]string{f + "/compose.yaml": body})
	s.count["push "+kind]++
	if s.rng.IntN(2) == 0 {
		s.d.push()
	}
}

// converged waits until every fleet runs its version, healthy, with the
// revision applied, and returns how long that took.
func (s *soak) converged(bound time.Duration) time.Duration {
	s.t.Helper()
	head := s.g.run("rev-parse", "HEAD")
	return waitFor(s.t, bound, "every fleet converged", func() (bool, string) {
		st := s.d.status()
		for _, f := range s.fleets {
			ok, _, detail := fleetState(s.t.Context(), s.cli, f, s.version[f], 2)
			if !ok {
				return false, f + ": " + detail
			}
			if got := appliedOf(st, f); got != head {
				return false, fmt.Sprintf("%s applied %s, want %s", f, got, head)
			}
		}
		return true, ""
	})
}

// oneContainerPerSlot checks that each fleet has exactly its containers,
// one per slot, no leftovers.
func (s *soak) oneContainerPerSlot() {
	list, err := s.cli.ContainerList(s.t.Context(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", fleets.LabelInstance+"="+instanceFor(s.t)))})
	if err != nil {
		s.t.Fatal(err)
	}
	bySlot := map[string]int{}
	for _, c := range list {
		bySlot[c.Labels[fleets.LabelFleet]+"/"+c.Labels[fleets.LabelSlot]]++
		if !strings.HasSuffix(firstName(c.Names), "-web-"+c.Labels[fleets.LabelSlot]) {
			s.t.Errorf("leftover container %s", firstName(c.Names))
		}
	}
	for slot, n := range bySlot {
		if n != 1 {
			s.t.Errorf("slot %s has %d containers", slot, n)
		}
	}
	if len(list) != 2*len(s.fleets) {
		s.t.Errorf("%d containers, want %d", len(list), 2*len(s.fleets))
	}
}
