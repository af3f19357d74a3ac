package hsm

import (
	"testing"
	"time"
)

// TestGateEnterWait: a call that waits (enterWait) is let in when the writer unlocks, and gives
// up when its stop channel closes first; enter still refuses at once.
func TestGateEnterWait(t *testing.T) {
	var g gate
	if !g.lockChan(nil) {
		t.Fatal("lock of an idle gate failed")
	}
	if g.enter() {
		t.Fatal("enter succeeded while a writer holds the gate")
	}
	stop := make(chan struct{})
	close(stop)
	if g.enterWait(stop) {
		t.Fatal("enterWait succeeded after its stop channel closed, with the writer still there")
	}
	entered := make(chan bool)
	go func() { entered <- g.enterWait(nil) }()
	select {
	case <-entered:
		t.Fatal("enterWait returned while the writer holds the gate")
	case <-time.After(50 * time.Millisecond):
	}
	g.unlock()
	select {
	case ok := <-entered:
		if !ok {
			t.Fatal("enterWait failed after unlock")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("enterWait still waiting 10s after unlock")
	}
	// The waiter is in flight now: a writer waits for it.
	locked := make(chan bool)
	go func() { locked <- g.lockChan(nil) }()
	g.leave()
	if !<-locked {
		t.Fatal("lock failed after the waiter left")
	}
	g.unlock()
}
