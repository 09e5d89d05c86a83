package sdk

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The leak checks use only the standard library so that the sdk module
// requires nothing its users do not need.

// goroutineStacks returns every goroutine's stack, keyed by its header
// line ("goroutine 7 [chan receive]:" without the state).
func goroutineStacks() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		s := string(g)
		head, _, _ := strings.Cut(s, " [")
		out[head] = s
	}
	return out
}

// ours returns the stacks that run code of this package, other than the
// calling goroutine's and those in before.
func ours(before map[string]string) []string {
	var leaked []string
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	selfHead, _, _ := strings.Cut(string(buf), " [")
	for head, s := range goroutineStacks() {
		if head == selfHead {
			continue
		}
		if _, ok := before[head]; ok {
			continue
		}
		if strings.Contains(s, "brownout-io/brownout/sdk.") && !strings.Contains(s, "testing.tRunner") {
			leaked = append(leaked, s)
		}
	}
	return leaked
}

// verifyNoLeak fails tb when goroutines running this package's code,
// started after before was taken, are still alive after a grace period.
func verifyNoLeak(tb testing.TB, before map[string]string) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		leaked := ours(before)
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d goroutines leaked:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(2 * time.Second)
		for {
			leaked := ours(nil)
			if len(leaked) == 0 {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goroutines leaked after the tests:\n\n%s\n", strings.Join(leaked, "\n\n"))
				code = 1
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	os.Exit(code)
}

func TestCloseIsPromptAndLeaksNothing(t *testing.T) {
	before := goroutineStacks()
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
	verifyNoLeak(t, before)
}
