package sdk

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestCloseIsPromptAndLeaksNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFakeController(t)
	silent := newFakeController(t)
	silent.set(func(f *fakeController) { f.silent = true })
	for _, base := range []string{f.srv.URL, silent.srv.URL, unreachable, "http://192.0.2.1:9"} {
		c := mustConnect(t, base, WithToken("secret"), fastOpts(), WithReportInterval(100*time.Millisecond))
		c.OnChange(func(State, State) {})
		switch base {
		case f.srv.URL:
			recvAck(t, f)
		case silent.srv.URL:
			eventually(t, "state", func() bool { return c.State().Version == 1 })
		}
		start := time.Now()
		c.Close()
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Close on %s took %v", base, d)
		}
		c.Close() // idempotent
	}
	f.close()
	silent.close()
}
