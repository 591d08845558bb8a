package agent

import "testing"

func TestChangesCoalesceAndNeverBlock(t *testing.T) {
	var c Changes
	a, stopA := c.Subscribe()
	b, stopB := c.Subscribe()
	for range 100 {
		c.Signal() // nobody reads: must not block
	}
	for name, ch := range map[string]<-chan struct{}{"a": a, "b": b} {
		select {
		case <-ch:
		default:
			t.Errorf("%s: no signal", name)
		}
		select {
		case <-ch:
			t.Errorf("%s: a second signal: asks must coalesce", name)
		default:
		}
	}
	stopA()
	c.Signal()
	select {
	case <-a:
		t.Error("signal after unsubscribing")
	default:
	}
	if got := c.Subscribers(); got != 1 {
		t.Errorf("Subscribers = %d, want 1", got)
	}
	stopB()
}
