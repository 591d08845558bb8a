package redact

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// Handler returns a slog.Handler that redacts every record before h sees
// it: the message, string and error values (as text), and the value of any
// attribute whose key looks secret (wholly).
func Handler(h slog.Handler, r *Redactor) slog.Handler {
	l := &Live{}
	l.Set(r)
	return LiveHandler(h, l)
}

// Live is a redactor whose known values change while it is in use: the
// daemon's logger learns the secret values of each revision it loads.
// The zero Live applies the rules only. It is safe for concurrent use.
type Live struct{ p atomic.Pointer[Redactor] }

// Set makes r the redactor in use.
func (l *Live) Set(r *Redactor) { l.p.Store(r) }

// Learn adds known secret values to the redactor in use. Values are never
// forgotten: a value of an earlier revision may still run in a container,
// and be echoed by its errors.
func (l *Live) Learn(known ...string) {
	for {
		old := l.p.Load()
		if l.p.CompareAndSwap(old, old.With(known...)) {
			return
		}
	}
}

// Redactor returns the redactor in use (nil: the rules only).
func (l *Live) Redactor() *Redactor { return l.p.Load() }

// LiveHandler is Handler with the redactor l holds at each record.
func LiveHandler(h slog.Handler, l *Live) slog.Handler {
	return handler{next: h, live: l}
}

type handler struct {
	next slog.Handler
	live *Live
}

func (h handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h handler) Handle(ctx context.Context, rec slog.Record) error {
	r := h.live.Redactor()
	out := slog.NewRecord(rec.Time, rec.Level, r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(r, a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	// Attributes given once are redacted with the values known now; a
	// value learnt later is one no earlier revision held.
	r := h.live.Redactor()
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = attr(r, a)
	}
	return handler{next: h.next.WithAttrs(red), live: h.live}
}

func (h handler) WithGroup(name string) slog.Handler {
	return handler{next: h.next.WithGroup(name), live: h.live}
}

// attr redacts one attribute, groups included: wholly under a
// secret-looking key, else strings, errors and Stringers as text.
func attr(r *Redactor, a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() != slog.KindGroup && LooksSecret(a.Key) {
		return slog.String(a.Key, Mask)
	}
	switch v.Kind() {
	case slog.KindGroup:
		group := v.Group()
		red := make([]any, len(group))
		for i, g := range group {
			red[i] = attr(r, g)
		}
		return slog.Group(a.Key, red...)
	case slog.KindString:
		return slog.String(a.Key, r.String(v.String()))
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, r.String(x.Error()))
		case interface{ String() string }:
			return slog.String(a.Key, r.String(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
