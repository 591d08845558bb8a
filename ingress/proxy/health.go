package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"
)

// probeTimeout bounds one active health check.
const probeTimeout = time.Second

// newHealthClient returns the client of the active health checks: no
// proxy from the environment, no redirects followed (3xx is healthy).
func newHealthClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: probeTimeout}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     60 * time.Second,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       probeTimeout,
	}
}

// syncChecker runs b's active health check if info asks for one, and
// restarts it when its address or path changed. s.bmu is held.
func (s *Server) syncChecker(b *backend, info backendInfo) {
	url := ""
	if info.healthPath != "" {
		url = "http://" + info.addr + info.healthPath
	}
	if url == b.checking {
		return
	}
	if b.stopCheck != nil {
		b.stopCheck()
	}
	b.stopCheck, b.checking = nil, url
	b.healthy.Store(true)
	if url == "" {
		return
	}
	ctx, cancel := context.WithCancel(s.base)
	b.stopCheck = cancel
	s.bg.Go(func() { s.checkLoop(ctx, b, url) })
}

// checkLoop probes url every CheckEvery until ctx is done.
func (s *Server) checkLoop(ctx context.Context, b *backend, url string) {
	t := time.NewTicker(s.opts.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, reason := s.probe(ctx, url)
		if ctx.Err() != nil {
			return
		}
		s.setHealth(b, ok, reason)
	}
}

// probe GETs url once: healthy on 2xx or 3xx. reason says why not.
func (s *Server) probe(ctx context.Context, url string) (ok bool, reason string) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, "bad health url"
	}
	req.Header.Set("User-Agent", "fleetd-ingress-health")
	resp, err := s.health.Do(req)
	if err != nil {
		return false, shortReason(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return healthyStatus(resp.StatusCode), fmt.Sprintf("status %d", resp.StatusCode)
}

// healthyStatus decides whether a health check's answer is healthy. It
// is pure.
func healthyStatus(code int) bool { return code >= 200 && code < 400 }

// setHealth records a check's result, logging changes.
func (s *Server) setHealth(b *backend, ok bool, reason string) {
	if b.healthy.Swap(ok) == ok {
		return
	}
	info := b.info.Load()
	if ok {
		s.log.Info("backend healthy again", "route", info.route, "backend", info.name)
		return
	}
	s.log.Warn("backend unhealthy", "route", info.route, "backend", info.name, "reason", reason)
}

// shortReason says in a few words why talking to a backend failed.
func shortReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "request canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed early"
	}
	var de *dialError
	if errors.As(err, &de) {
		return "connect failed"
	}
	return "upstream error"
}
