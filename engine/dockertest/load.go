package dockertest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Load sends a steady stream of GET requests to one URL, half of them on
// kept-alive connections and half on a new connection each, and counts
// those that fail (a transport error or a status other than 200). It is
// bounded in rate, in concurrency (64) and in time.
type Load struct {
	total, failed atomic.Int64
	mu            sync.Mutex
	errors        []string
	stop          chan struct{}
	done          sync.WaitGroup
}

// LoadResult is what a Load counted.
type LoadResult struct {
	Total, Failed int64
	Errors        []string // the first ten failures, timed
}

// StartLoad sends about rate requests per second to url until Stop or
// limit, whichever comes first. Only loopback and test-namespace
// addresses are meant for it.
func StartLoad(url string, rate int, limit time.Duration) *Load {
	l := &Load{stop: make(chan struct{})}
	keep := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	sem := make(chan struct{}, 64)
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		deadline := time.After(limit)
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-deadline:
				return
			case <-tick.C:
			}
			c := keep
			if i%2 == 1 {
				c = fresh
			}
			sem <- struct{}{}
			l.done.Add(1)
			go func() {
				defer func() { <-sem; l.done.Done() }()
				l.total.Add(1)
				if err := getOK(c, url); err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errors) < 10 {
						l.errors = append(l.errors, time.Now().Format("15:04:05.000")+" "+err.Error())
					}
					l.mu.Unlock()
				}
			}()
		}
	}()
	return l
}

// Stop ends the load, waits for the requests in flight and returns the
// counts.
func (l *Load) Stop() LoadResult {
	close(l.stop)
	l.done.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return LoadResult{Total: l.total.Load(), Failed: l.failed.Load(), Errors: l.errors}
}

func getOK(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// FreePort returns a port on 127.0.0.1 that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
