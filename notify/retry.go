package notify

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Retry bounds a sink's delivery attempts. The wait doubles from Base up to
// Max; a Retry-After from the server replaces it, capped at MaxRetryAfter
// (a longer one fails the message rather than hold the sink's queue).
type Retry struct {
	Attempts      int
	Base          time.Duration
	Max           time.Duration
	MaxRetryAfter time.Duration
}

// DefaultRetry is what sinks use when their Retry is zero.
var DefaultRetry = Retry{Attempts: 4, Base: 500 * time.Millisecond, Max: 10 * time.Second, MaxRetryAfter: 2 * time.Minute}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = DefaultRetry.Attempts
	}
	if r.Base <= 0 {
		r.Base = DefaultRetry.Base
	}
	if r.Max <= 0 {
		r.Max = DefaultRetry.Max
	}
	if r.MaxRetryAfter <= 0 {
		r.MaxRetryAfter = DefaultRetry.MaxRetryAfter
	}
	return r
}

// temporaryError marks a failure worth another attempt; after is the
// server's Retry-After, if it sent one.
type temporaryError struct {
	err   error
	after time.Duration
}

func (e *temporaryError) Error() string { return e.err.Error() }
func (e *temporaryError) Unwrap() error { return e.err }

func temporary(err error, after time.Duration) error { return &temporaryError{err: err, after: after} }

// do calls attempt until it succeeds, fails permanently, the attempts run
// out or ctx ends.
func (r Retry) do(ctx context.Context, attempt func(context.Context) error) error {
	r = r.withDefaults()
	wait := r.Base
	var err error
	for i := 0; i < r.Attempts; i++ {
		if err = attempt(ctx); err == nil {
			return nil
		}
		var tmp *temporaryError
		if !errors.As(err, &tmp) || i == r.Attempts-1 {
			return err
		}
		d := wait
		if tmp.after > 0 {
			if tmp.after > r.MaxRetryAfter {
				return err
			}
			d = tmp.after
		}
		wait = min(2*wait, r.Max)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
	return err
}

// retryAfter reads a Retry-After header in seconds or as an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
