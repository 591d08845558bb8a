package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// browser starts headless Chromium (Debian's chromium; scripts/test
// installs it). Without it the test fails under CI=true and is skipped
// loudly otherwise (dockertest.Unavailable, as without Docker).
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		dockertest.Unavailable(t, "chromium", err, "apt-get install chromium; scripts/test installs it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, bound to ctx
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// within runs steps with a timeout, failing the test with what was asked.
func within(t *testing.T, ctx context.Context, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
		t.Fatalf("%s: %v\npage:\n%s", what, err, html)
	}
}

// screenshot saves the page as docs/img/<name>.png when
// FLEETD_UI_SCREENSHOTS names the directory (the README's are made so).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("FLEETD_UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDashboard drives the agent's dashboard in headless Chromium against
// the real engine: the login, the overview of a real fleet, a docker stop
// shown as drift and then as healed in the open page (no reload), and a
// rollout's timeline pushed to the open rollouts page.
func TestDashboard(t *testing.T) {
	cli := setup(t)
	t.Parallel()
	ctx := browser(t)
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "dash")
	g := newGitServer(t)
	c1 := g.commit("", "v1 <b>not bold</b>", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "v1", 1)})
	d := startDaemon(t, daemonOpts{url: g.url(), interval: "1h", webhook: true})
	ids := waitConverged(t, d, cli, fleet, "v1", c1, 1, 3*time.Minute)
	name := fleet + "-web-1"

	// Login: a wrong token is refused, the API token lets one act.
	within(t, ctx, 30*time.Second, "login page",
		chromedp.Navigate(d.url("/ui/login")),
		chromedp.SendKeys(chromedp.CSS("#token"), "wrong-token"),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("p.err")),
		chromedp.SendKeys(chromedp.CSS("#token"), "api-token-1"),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-fleet="`+fleet+`"]`)),
	)
	row, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`tr[data-fleet="`+fleet+`"]`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"True", "1/1", "v1 <b>not bold</b>"} {
		if !strings.Contains(row, want) {
			t.Errorf("overview row %q lacks %q", row, want)
		}
	}
	within(t, ctx, 10*time.Second, "operator actions", chromedp.WaitVisible(chromedp.CSS(`a.button[href*="action=sync"]`)))
	screenshot(t, ctx, "overview")

	// The fleet's page, left open: a first docker stop is healed at once
	// (told on the events page); a second one inside the heal backoff
	// (10s) stays as drift until the backoff ends, then is healed.
	within(t, ctx, 30*time.Second, "fleet page",
		chromedp.Navigate(d.url("/ui/fleet?name="+fleet)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-container="`+name+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#in-sync")),
		chromedp.Evaluate[chromedp.Void](`window.fleetdNoReload = true`),
	)
	waitStreaming(t, ctx)
	docker(t, "stop", name)
	waitRunning(t, cli, name, ids[name])
	docker(t, "stop", name)
	stopped := time.Now()
	within(t, ctx, 30*time.Second, "drift shown without a reload", chromedp.WaitVisible(chromedp.CSS(`tr[data-kind="stopped"]`)))
	shown := time.Since(stopped)
	screenshot(t, ctx, "fleet-drift")
	within(t, ctx, 2*time.Minute, "healed shown without a reload", chromedp.WaitVisible(chromedp.CSS("#in-sync")))
	healed := time.Since(stopped)
	if still, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.fleetdNoReload === true`)); err != nil || !still {
		t.Errorf("the page was reloaded (marker %v, %v): live updates must come without a reload", still, err)
	}
	t.Logf("figure: docker stop -> drift visible in the open page %s; -> healed visible %s (heal backoff 10s)", shown.Round(time.Millisecond), healed.Round(time.Millisecond))

	within(t, ctx, 30*time.Second, "events page",
		chromedp.Navigate(d.url("/ui/events?fleet="+fleet)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-kind="drift-detected"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-kind="drift-resolved"]`)),
	)
	screenshot(t, ctx, "events")

	// A rollout, pushed to the rollouts page open before the commit.
	within(t, ctx, 30*time.Second, "rollouts page", chromedp.Navigate(d.url("/ui/rollouts")), chromedp.WaitVisible(chromedp.CSS("main#live")))
	waitStreaming(t, ctx)
	c2 := g.commit("", "v2", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "v2", 1)})
	d.push()
	waitConverged(t, d, cli, fleet, "v2", c2, 1, 3*time.Minute)
	within(t, ctx, 30*time.Second, "rollout timeline",
		chromedp.WaitVisible(chromedp.CSS(`li[data-kind="started"]`)),
		chromedp.WaitVisible(chromedp.CSS(`li[data-kind="succeeded"]`)),
	)
	screenshot(t, ctx, "rollouts")

	// The plan preview, on request.
	within(t, ctx, 60*time.Second, "plan preview",
		chromedp.Navigate(d.url("/ui/plan")),
		chromedp.Click(chromedp.CSS("#run-plan")),
		chromedp.WaitVisible(chromedp.CSS("#plan-text")),
	)
	screenshot(t, ctx, "plan")

	dashboardFigures(t, d)
	testDashboardCmd(t, ctx, d, fleet)
}

// testDashboardCmd runs `fleetd dashboard` over the agent and an address
// where nothing listens: the fleet shows, the other agent as unreachable.
func testDashboardCmd(t *testing.T, ctx context.Context, d *daemon, fleet string) {
	addr, nowhere := freeAddr(t), "http://"+freeAddr(t)
	cmd := exec.Command(fleetdBin, "dashboard", "--listen", addr, "--agents", d.url("")+","+nowhere, "--token-file", d.tokenFile, "--interval", "1s")
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("fleetd dashboard after SIGTERM: %v\n%s", err, out)
			}
		case <-time.After(stopBound):
			_ = cmd.Process.Kill()
			t.Errorf("fleetd dashboard did not stop within %s of SIGTERM", stopBound)
		}
	}()
	waitFor(t, 30*time.Second, "fleetd dashboard listening", func() (bool, string) {
		res, err := http.Get("http://" + addr + "/ui/login")
		if err != nil {
			return false, fmt.Sprintf("%v\n%s", err, out)
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK, res.Status
	})
	within(t, ctx, time.Minute, "fleetd dashboard",
		chromedp.Navigate("http://"+addr+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-fleet="`+fleet+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr.stalled[data-host="`+nowhere+`"]`)),
	)
	screenshot(t, ctx, "dashboard")
}

// waitStreaming waits until the page's EventSource is connected.
func waitStreaming(t *testing.T, ctx context.Context) {
	t.Helper()
	within(t, ctx, 20*time.Second, "live stream connected", chromedp.WaitVisible(chromedp.CSS(`body[data-stream="connected"]`)))
}

// waitRunning waits until the container id runs again under name.
func waitRunning(t *testing.T, cli *client.Client, name, id string) {
	t.Helper()
	waitFor(t, time.Minute, name+" healed", func() (bool, string) {
		list, err := cli.ContainerList(t.Context(), container.ListOptions{
			Filters: filters.NewArgs(filters.Arg("name", "^/"+name+"$"), filters.Arg("status", "running"))})
		if err != nil || len(list) == 0 {
			return false, fmt.Sprint("not running ", err)
		}
		return list[0].ID == id, "recreated instead of started"
	})
}

// dashboardFigures logs the page weight and the agent's resident memory
// with no dashboard client and with five streams open.
func dashboardFigures(t *testing.T, d *daemon) {
	t.Helper()
	weight := 0
	for _, path := range []string{"/ui/", "/ui/static/app.js", "/ui/static/app.css"} {
		weight += len(authedGet(t, d, path))
	}
	idle := rssKB(t, d.cmd.Process.Pid)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for range 5 {
		req, _ := http.NewRequestWithContext(ctx, "GET", d.url("/ui/stream?page=%2Fui%2F"), nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if _, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	busy := rssKB(t, d.cmd.Process.Pid)
	t.Logf("figure: page weight (overview HTML + JS + CSS) %.1f KB; agent RSS %d KB idle, %d KB with 5 streams", float64(weight)/1024, idle, busy)
}

// authedGet reads a dashboard page; the daemon has no read token, so
// reads are open as /v1/status is.
func authedGet(t *testing.T, d *daemon, path string) string {
	t.Helper()
	res, err := http.Get(d.url(path))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", path, res.StatusCode, b)
	}
	return string(b)
}

func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}
