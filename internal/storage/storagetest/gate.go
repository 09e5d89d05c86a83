package storagetest

import (
	"sync/atomic"
	"testing"
	"time"
)

// Gate pauses one read of a store, after it has read, until the test lets
// it go: a reload whose read another change overtakes. A test wraps the
// store's read method to call Pause after the read, and drives the race
// with Race.
type Gate struct {
	armed   atomic.Bool
	read    chan struct{}
	release chan struct{}
}

// Pause holds the read that Race armed; any other call returns at once.
func (g *Gate) Pause() {
	if g.armed.CompareAndSwap(true, false) {
		close(g.read)
		<-g.release
	}
}

// Race runs reload with the next Pause armed, runs change once reload has
// read, and lets reload go once change is done, or after 300 ms when
// change waits for the reload (as it should).
func (g *Gate) Race(t *testing.T, reload func() error, change func()) {
	t.Helper()
	g.read, g.release = make(chan struct{}), make(chan struct{})
	g.armed.Store(true)
	reloaded := make(chan error, 1)
	go func() { reloaded <- reload() }()
	<-g.read
	changed := make(chan struct{})
	go func() { change(); close(changed) }()
	select {
	case <-changed:
	case <-time.After(300 * time.Millisecond):
	}
	close(g.release)
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	<-changed
}
