package ingress_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/go-connections/nat"

	"github.com/fleetd/fleetd/engine/dockertest"
	eingress "github.com/fleetd/fleetd/engine/ingress"
)

// BenchmarkIngress measures the ingress against direct access to the
// replicas, on loopback and the bridge network only (run with
// -benchtime 1x; see docs/performance.md):
//   - latency: sequential GETs on one kept-alive connection, p50 and p99,
//     to one replica directly and through the ingress;
//   - throughput: 32 kept-alive clients for 5 s, round robin over the
//     three replicas directly, through the ingress, and to one replica
//     publishing its own port (Docker's port publishing, as before);
//   - the ingress container's RSS, idle and right after the load.
func BenchmarkIngress(b *testing.B) {
	bed := newBed(b)
	bed.write("1", 3)
	bed.converge()
	direct := bed.replicaURLs(b)
	via := bed.url()
	for _, u := range append(slices.Clone(direct), via) {
		if _, _, err := get(&http.Client{Timeout: 5 * time.Second}, u); err != nil {
			b.Fatalf("GET %s: %v", u, err)
		}
	}
	idle := bed.ingressRSS(b)
	b.ResetTimer()
	for range b.N {
		d50, d99 := latency(b, []string{direct[0]}, 2000)
		i50, i99 := latency(b, []string{via}, 2000)
		dRate := throughput(b, direct, 32, 5*time.Second)
		iRate := throughput(b, []string{via}, 32, 5*time.Second)
		pub := bed.published(b)
		p50, p99 := latency(b, []string{pub}, 2000)
		pRate := throughput(b, []string{pub}, 32, 5*time.Second)
		b.Logf("one replica publishing its own port on 127.0.0.1 (Docker's port publishing, as before the ingress): p50/p99 %s/%s, %.0f req/s; the ingress's ratio to it %.2f, overhead p50/p99 %s/%s",
			p50, p99, pRate, iRate/pRate, i50-p50, i99-p99)
		b.ReportMetric(iRate/pRate, "throughput-ratio-published")
		own := bed.ingressURL(b)
		o50, o99 := latency(b, []string{own}, 2000)
		oRate := throughput(b, []string{own}, 32, 5*time.Second)
		b.Logf("the ingress at its own address (no docker-proxy): p50/p99 %s/%s, %.0f req/s: ratio %.2f", o50, o99, oRate, oRate/dRate)
		loaded := bed.ingressRSS(b)
		b.ReportMetric(float64((i50 - d50).Microseconds()), "µs-p50-overhead")
		b.ReportMetric(float64((i99 - d99).Microseconds()), "µs-p99-overhead")
		b.ReportMetric(iRate/dRate, "throughput-ratio")
		b.ReportMetric(float64(idle)/1024, "MiB-rss-idle")
		b.ReportMetric(float64(loaded)/1024, "MiB-rss-loaded")
		b.Logf("latency p50/p99: direct %s/%s, through the ingress %s/%s (overhead %s/%s)", d50, d99, i50, i99, i50-d50, i99-d99)
		b.Logf("throughput (32 kept-alive clients, 5 s): direct %.0f req/s, through the ingress %.0f req/s: ratio %.2f", dRate, iRate, iRate/dRate)
		b.Logf("ingress RSS: idle %.1f MiB, after the load %.1f MiB", float64(idle)/1024, float64(loaded)/1024)

		// The same service as plain TCP (protocol: tcp): bytes copied,
		// no HTTP parsed; one kept-alive connection stays on one replica.
		bed.protocol = "tcp"
		bed.write("1", 3)
		bed.converge()
		eventually(b, &http.Client{Timeout: time.Second}, via, "1")
		t50, t99 := latency(b, []string{via}, 2000)
		tRate := throughput(b, []string{via}, 32, 5*time.Second)
		b.ReportMetric(tRate/dRate, "throughput-ratio-tcp")
		b.Logf("protocol tcp: p50/p99 %s/%s (overhead %s/%s), %.0f req/s: ratio %.2f", t50, t99, t50-d50, t99-d99, tRate, tRate/dRate)
	}
}

// replicaURLs are the replicas' own addresses on the fleet's network.
func (b *bed) replicaURLs(tb testing.TB) []string {
	list, err := b.cli.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "io.fleetd.fleet="+b.fleet))})
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, c := range list {
		for _, n := range c.NetworkSettings.Networks {
			if n.IPAddress != "" {
				out = append(out, "http://"+net.JoinHostPort(n.IPAddress, "8080")+"/")
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// published runs one more replica of the test image publishing its port
// on 127.0.0.1 itself, as the service did before the ingress, and returns
// its URL.
func (b *bed) published(tb testing.TB) string {
	port := dockertest.FreePort(tb)
	p := nat.Port("8080/tcp")
	cfg := &container.Config{Image: b.image, ExposedPorts: nat.PortSet{p: {}}, Labels: map[string]string{dockertest.LabelTestRun: dockertest.RunID()}}
	host := &container.HostConfig{PortBindings: nat.PortMap{p: {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(port)}}}}
	c, err := b.cli.ContainerCreate(context.Background(), cfg, host, nil, nil, dockertest.Name(tb, "published"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}) })
	if err := b.cli.ContainerStart(context.Background(), c.ID, container.StartOptions{}); err != nil {
		tb.Fatal(err)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, _, err := get(hc, url); err == nil {
			return url
		}
	}
	tb.Fatalf("the published replica does not answer on %s", url)
	return ""
}

// ingressURL is the ingress's own address on the bridge network, past
// Docker's port publishing.
func (b *bed) ingressURL(tb testing.TB) string {
	c, err := b.cli.ContainerInspect(context.Background(), eingress.ContainerName(b.instance))
	if err != nil {
		tb.Fatal(err)
	}
	return "http://" + net.JoinHostPort(c.NetworkSettings.Networks["bridge"].IPAddress, strconv.Itoa(b.port)) + "/"
}

// ingressRSS reads the ingress process's resident set, in KiB.
func (b *bed) ingressRSS(tb testing.TB) int {
	c, err := b.cli.ContainerInspect(context.Background(), eingress.ContainerName(b.instance))
	if err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.State.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// latency times n sequential GETs on one kept-alive connection, round
// robin over urls, and returns the p50 and p99.
func latency(tb testing.TB, urls []string, n int) (time.Duration, time.Duration) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	ds := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if _, _, err := get(c, urls[i%len(urls)]); err != nil {
			tb.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[n/2], ds[n*99/100]
}

// throughput runs workers kept-alive clients for d, round robin over
// urls, and returns the requests answered per second.
func throughput(tb testing.TB, urls []string, workers int, d time.Duration) float64 {
	var ok, failed atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for i := w; time.Now().Before(stop); i++ {
				resp, err := c.Get(urls[i%len(urls)])
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		tb.Errorf("%d requests failed during the throughput run", failed.Load())
	}
	return float64(ok.Load()) / d.Seconds()
}
