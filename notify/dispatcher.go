package notify

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetd/fleetd/reconcile"
)

// Options configure a Dispatcher.
type Options struct {
	Routes []Route
	// QueueSize bounds each sink's queue (default 64).
	QueueSize int
	// QuietPeriod is how long an alert stays quiet before it is repeated
	// (default 1h).
	QuietPeriod time.Duration
	// CheckEvery is how often open alerts are checked for a reminder,
	// and flapping keys for an update or their end (default a tenth of
	// the quiet period, at most FlapUpdateEvery).
	CheckEvery time.Duration
	// FlapWindow and FlapThreshold: a problem key with FlapThreshold
	// incidents within FlapWindow flaps (default 3 in 10m); it stops once
	// healthy for a whole FlapWindow. FlapUpdateEvery spaces the in-place
	// updates of its message (default 30s).
	FlapWindow      time.Duration
	FlapThreshold   int
	FlapUpdateEvery time.Duration
	// StatusURL is fleetd's status page, linked from flapping messages.
	StatusURL string
	// WebURL is the repository's web address, for commit links.
	WebURL string
	// Secrets are values that must never appear in a message: tokens,
	// webhook secrets, webhook URLs.
	Secrets []string
	// OnDropped is called with the number of messages just lost (queue
	// full, or delivery failed); it must not block.
	OnDropped func(n int)
	// OnDeadLetter is called, per sink, with the number of messages that
	// sink just lost: a dead letter (queue full, or delivery failed after
	// its retries); it must not block.
	OnDeadLetter func(sink string, n int)
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// Dispatcher takes the agent's events and delivers them to its sinks. It
// implements reconcile.Notifier: Notify never blocks.
type Dispatcher struct {
	opts    Options
	scrub   *Scrubber
	workers []*worker

	// sendCtx bounds every delivery; Close cancels it when its bound
	// expires.
	sendCtx    context.Context
	cancelSend context.CancelFunc
	stop       chan struct{}
	wg         sync.WaitGroup

	mu     sync.Mutex
	dedup  *dedup
	closed bool
}

type worker struct {
	route   Route
	queue   chan Message
	dropped atomic.Int64
}

// New starts a dispatcher: one worker per route, and the reminder check.
func New(opts Options) *Dispatcher {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 64
	}
	if opts.QuietPeriod <= 0 {
		opts.QuietPeriod = time.Hour
	}
	if opts.FlapWindow <= 0 {
		opts.FlapWindow = 10 * time.Minute
	}
	if opts.FlapThreshold <= 0 {
		opts.FlapThreshold = 3
	}
	if opts.FlapUpdateEvery <= 0 {
		opts.FlapUpdateEvery = 30 * time.Second
	}
	if opts.CheckEvery <= 0 {
		opts.CheckEvery = min(opts.QuietPeriod/10, opts.FlapUpdateEvery)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	d := &Dispatcher{opts: opts, scrub: NewScrubber(opts.Secrets...), dedup: newDedup(opts.QuietPeriod, flapPolicy{opts.FlapWindow, opts.FlapThreshold, opts.FlapUpdateEvery}), stop: make(chan struct{})}
	d.sendCtx, d.cancelSend = context.WithCancel(context.Background())
	for _, r := range opts.Routes {
		w := &worker{route: r, queue: make(chan Message, opts.QueueSize)}
		d.workers = append(d.workers, w)
		d.wg.Add(1)
		go d.run(w)
	}
	go d.remind()
	return d
}

// Notify decides whether e becomes a message and queues it for every sink
// whose filter allows it. It never blocks: a full queue drops the message
// and counts it.
func (d *Dispatcher) Notify(e reconcile.Event) {
	now := d.opts.Now()
	if e.Time.IsZero() {
		e.Time = now
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	m, ok := d.dedup.admit(e, now)
	dropped := 0
	if ok {
		dropped = d.enqueue(m)
	}
	d.mu.Unlock()
	d.reportDropped(dropped)
}

// enqueue fans m out; d.mu is held, so no queue is closed meanwhile.
func (d *Dispatcher) enqueue(m Message) (dropped int) {
	m.Severity = SeverityOf(m.Kind)
	m.CommitURL = commitURL(d.opts.WebURL, m.Revision)
	if m.Flap != nil {
		m.StatusURL = d.opts.StatusURL
	}
	for _, w := range d.workers {
		if !w.route.Filter.Allows(m) || (m.Update && !canUpdate(w.route.Sink)) {
			continue
		}
		select {
		case w.queue <- m:
		default:
			w.dropped.Add(1)
			dropped++
			d.deadLetter(w)
		}
	}
	return dropped
}

func (d *Dispatcher) reportDropped(n int) {
	if n > 0 && d.opts.OnDropped != nil {
		d.opts.OnDropped(n)
	}
}

// deadLetter reports one message w's sink lost.
func (d *Dispatcher) deadLetter(w *worker) {
	if d.opts.OnDeadLetter != nil {
		d.opts.OnDeadLetter(w.route.Sink.Name(), 1)
	}
}

// run delivers one sink's queue, in order, until the queue is closed.
func (d *Dispatcher) run(w *worker) {
	defer d.wg.Done()
	for m := range w.queue {
		m.Dropped = int(w.dropped.Swap(0))
		m = d.scrub.Message(m)
		err := w.route.Sink.Send(d.sendCtx, m)
		if err == nil {
			continue
		}
		// The message is lost: count it, so that the next one says so.
		w.dropped.Add(int64(m.Dropped) + 1)
		d.reportDropped(1)
		d.deadLetter(w)
		if d.sendCtx.Err() != nil {
			continue // Close gave up; it reports what was left
		}
		d.opts.Log.Warn("notify: delivery failed", "sink", w.route.Sink.Name(), "event", m.Kind, "fleet", m.Fleet, "err", d.scrub.Error(err))
	}
}

// remind sends the reminders of alerts still open after a quiet period.
func (d *Dispatcher) remind() {
	t := time.NewTicker(d.opts.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.checkReminders()
		}
	}
}

func (d *Dispatcher) checkReminders() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	dropped := 0
	for _, m := range d.dedup.due(d.opts.Now()) {
		dropped += d.enqueue(m)
	}
	d.mu.Unlock()
	d.reportDropped(dropped)
}

// Close stops taking events and delivers what is queued, until ctx ends;
// then it abandons the rest (in-flight retries are cancelled) and says how
// many messages were left.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.stop)
	for _, w := range d.workers {
		close(w.queue)
	}
	d.mu.Unlock()
	if finished(ctx, &d.wg) {
		d.cancelSend()
		return nil
	}
	left := 0
	for _, w := range d.workers {
		left += len(w.queue)
	}
	d.cancelSend()
	return fmt.Errorf("notify: flush: %d messages left: %w", left, ctx.Err())
}

// finished waits for wg until ctx ends and reports whether it got there
// first: the flush of Dispatcher.Close and Forge.Close.
func finished(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// TestResult is the outcome of a test message to one sink.
type TestResult struct {
	Sink string
	Err  error
}

// Test sends a test message straight to every sink (no queue, no dedup, no
// filter) and reports each one's result; errors are scrubbed.
func (d *Dispatcher) Test(ctx context.Context, host string) []TestResult {
	m := Message{Event: reconcile.Event{Time: d.opts.Now(), Kind: KindTest, Host: host,
		Message: "fleetd can reach this destination; notifications will arrive here."}}
	m = d.scrub.Message(m)
	res := make([]TestResult, len(d.workers))
	var wg sync.WaitGroup
	for i, w := range d.workers {
		wg.Go(func() {
			res[i] = TestResult{Sink: w.route.Sink.Name(), Err: d.scrub.Error(w.route.Sink.Send(ctx, m))}
		})
	}
	wg.Wait()
	return res
}
