package sdk

import (
	"errors"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk/wire"
	"github.com/coder/websocket"
)

func TestFlagsArriveAndAreAcked(t *testing.T) {
	f := newFakeController(t)
	c := mustConnect(t, f.srv.URL, WithToken("secret"), fastOpts())

	if got, want := recvAck(t, f), uint64(1); got != want {
		t.Fatalf("ack = %d, want %d", got, want)
	}
	if !c.Enabled("analytics") || c.Level() != LevelFull || c.State().Source != SourceController {
		t.Fatalf("state after connect = %+v", c.State())
	}
	f.push(func(s *wire.Frame) {
		s.Version, s.Level, s.Cause = 2, 2, "override"
		s.Flags["analytics"] = false
		s.Override = &Override{ID: "7", Service: "checkout", Level: 2, Reason: "test"}
	})
	if got, want := recvAck(t, f), uint64(2); got != want {
		t.Fatalf("ack = %d, want %d", got, want)
	}
	st := c.State()
	if st.Enabled("analytics") || st.Level != LevelEssential || st.Version != 2 || st.Override == nil || st.Override.ID != "7" {
		t.Fatalf("state after push = %+v", st)
	}
	eventually(t, "acked version in stats", func() bool { return c.Stats().AckedVersion == 2 })
	if s := c.Stats(); !s.Connected || s.Version != 2 || s.StatesApplied != 2 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestOlderVersionsAreIgnored(t *testing.T) {
	f := newFakeController(t)
	f.set(func(f *fakeController) { f.state.Version = 10 })
	c := mustConnect(t, f.srv.URL, WithToken("secret"), fastOpts())
	recvAck(t, f)
	f.push(func(s *wire.Frame) { s.Version, s.Level = 9, 3 })
	f.push(func(s *wire.Frame) { s.Version, s.Level = 11, 1 })
	if got, want := recvAck(t, f), uint64(11); got != want {
		t.Fatalf("ack = %d, want %d (9 must not be acked)", got, want)
	}
	if got := c.Level(); got != LevelReduced {
		t.Fatalf("level = %v, want REDUCED", got)
	}
}

func TestReconnectSendsVersionAndResyncs(t *testing.T) {
	f := newFakeController(t)
	c := mustConnect(t, f.srv.URL, WithToken("secret"), fastOpts())
	recvAck(t, f)

	// Going away: the client comes back with its version and is told
	// nothing changed, which it acknowledges too.
	f.closeAll(websocket.StatusGoingAway)
	if got, want := recvAck(t, f), uint64(1); got != want {
		t.Fatalf("ack after unchanged = %d, want %d", got, want)
	}
	if got := f.subscribes(); len(got) < 2 || got[0] != "" || got[len(got)-1] != "1" {
		t.Fatalf("version parameters = %q, want first empty then 1", got)
	}

	// A change missed while disconnected arrives as a full state.
	f.set(func(f *fakeController) { f.status = http.StatusServiceUnavailable })
	f.closeAll(websocket.StatusGoingAway)
	eventually(t, "disconnect", func() bool { return !c.Stats().Connected })
	f.set(func(f *fakeController) {
		f.status = 0
		f.state.Version, f.state.Level = 5, 3
		f.state.Flags = map[string]bool{}
	})
	if got, want := recvAck(t, f), uint64(5); got != want {
		t.Fatalf("ack after resync = %d, want %d", got, want)
	}
	if c.Level() != LevelMaintenance || c.Enabled("analytics") {
		t.Fatalf("state after resync = %+v", c.State())
	}
	if c.Stats().Connections < 3 {
		t.Fatalf("connections = %d, want ≥ 3", c.Stats().Connections)
	}
}

func TestFinalErrorsStopReconnecting(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		token  string
		want   error
	}{
		{"bad token", 0, "wrong", ErrUnauthorized},
		{"401", http.StatusUnauthorized, "secret", ErrUnauthorized},
		{"403", http.StatusForbidden, "secret", ErrForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeController(t)
			f.set(func(f *fakeController) { f.status = tc.status })
			var called atomic.Int32
			c := mustConnect(t, f.srv.URL, WithToken(tc.token), fastOpts(),
				WithErrorHandler(func(error) { called.Add(1) }))
			eventually(t, "final error", func() bool { return c.Err() != nil })
			if !errors.Is(c.Err(), tc.want) {
				t.Fatalf("Err() = %v, want %v", c.Err(), tc.want)
			}
			var se *StatusError
			if !errors.As(c.Err(), &se) || se.Body != "refused by test" {
				t.Fatalf("Err() = %#v, want a StatusError with the controller's message", c.Err())
			}
			time.Sleep(100 * time.Millisecond) // several backoff periods
			if got := len(f.subscribes()); got != 1 {
				t.Fatalf("subscribe attempts = %d, want 1", got)
			}
			if called.Load() != 1 {
				t.Fatalf("error handler called %d times, want 1", called.Load())
			}
			if c.Level() != LevelFull {
				t.Fatalf("level = %v, want the defaults still served", c.Level())
			}
		})
	}
}

func TestCloseCodes(t *testing.T) {
	for _, tc := range []struct {
		code  websocket.StatusCode
		final error
	}{
		{4401, ErrUnauthorized},
		{4403, ErrForbidden},
		{websocket.StatusGoingAway, nil},
		{websocket.StatusPolicyViolation, nil},
		{websocket.StatusMessageTooBig, nil},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			f := newFakeController(t)
			c := mustConnect(t, f.srv.URL, WithToken("secret"), fastOpts())
			recvAck(t, f)
			f.closeAll(tc.code)
			if tc.final != nil {
				eventually(t, "final error", func() bool { return c.Err() != nil })
				if !errors.Is(c.Err(), tc.final) {
					t.Fatalf("Err() = %v, want %v", c.Err(), tc.final)
				}
				var ce *CloseError
				if !errors.As(c.Err(), &ce) || ce.Code != int(tc.code) {
					t.Fatalf("Err() = %v, want CloseError %d", c.Err(), tc.code)
				}
				time.Sleep(100 * time.Millisecond)
				if got := len(f.subscribes()); got != 1 {
					t.Fatalf("subscribe attempts = %d, want 1", got)
				}
				if !c.Enabled("analytics") {
					t.Fatal("last state no longer served")
				}
				return
			}
			eventually(t, "reconnect", func() bool { return len(f.subscribes()) >= 2 && c.Stats().Connected })
			if c.Err() != nil {
				t.Fatalf("Err() = %v, want nil", c.Err())
			}
		})
	}
}

func TestThrottledUpgradeIsRetried(t *testing.T) {
	f := newFakeController(t)
	f.set(func(f *fakeController) { f.status = http.StatusTooManyRequests })
	c := mustConnect(t, f.srv.URL, WithToken("secret"), fastOpts())
	eventually(t, "retries", func() bool { return len(f.subscribes()) >= 3 })
	var se *StatusError
	if err := c.Stats().LastError; !errors.As(err, &se) || se.StatusCode != 429 {
		t.Fatalf("LastError = %v, want the 429", err)
	}
	f.set(func(f *fakeController) { f.status = 0 })
	recvAck(t, f)
	if c.Err() != nil {
		t.Fatalf("Err() = %v", c.Err())
	}
}

func TestSilentControllerIsDropped(t *testing.T) {
	f := newFakeController(t)
	f.set(func(f *fakeController) { f.silent = true })
	c := mustConnect(t, f.srv.URL, WithToken("secret"), fastOpts())
	eventually(t, "first state", func() bool { return c.State().Source == SourceController })
	// The controller neither reads nor answers pings: after deadAfter the
	// client gives up on the connection and dials again.
	eventually(t, "redial", func() bool { return len(f.subscribes()) >= 2 && c.Stats().Connections >= 2 })
}

func TestLivePingsKeepConnection(t *testing.T) {
	f := newFakeController(t)
	c := mustConnect(t, f.srv.URL, WithToken("secret"), fastOpts())
	recvAck(t, f)
	// No data for several deadAfter periods, but pongs arrive.
	time.Sleep(time.Second)
	if got := c.Stats().Connections; got != 1 {
		t.Fatalf("connections = %d, want 1: a quiet but live connection was dropped", got)
	}
}

func TestReportsFlowAndBufferWhileDisconnected(t *testing.T) {
	f := newFakeController(t)
	c := mustConnect(t, f.srv.URL, WithToken("secret"), fastOpts(), WithReportInterval(100*time.Millisecond))
	recvAck(t, f)
	for range 3 {
		c.Record(nil)
	}
	c.Record(errors.New("boom"))
	var got Report
	deadline := time.After(5 * time.Second)
	for got.Requests == 0 {
		select {
		case got = <-f.reports:
		case <-deadline:
			t.Fatal("no report with requests")
		}
	}
	if got.Requests != 4 || got.Errors != 1 || got.CPUPercent == nil || *got.CPUPercent != 12.5 || got.MemoryPercent == nil || *got.MemoryPercent != 40 || got.At == nil || got.At.IsZero() {
		t.Fatalf("report = %+v", got)
	}

	// Disconnected: reports pile up, then flush in order on reconnect.
	f.set(func(f *fakeController) { f.status = http.StatusServiceUnavailable })
	f.closeAll(websocket.StatusGoingAway)
	eventually(t, "buffered reports", func() bool { return c.Stats().ReportsBuffered >= 3 })
	for len(f.reports) > 0 {
		<-f.reports
	}
	f.set(func(f *fakeController) { f.status = 0 })
	recvAck(t, f)
	var ats []time.Time
	for len(ats) < 3 {
		select {
		case r := <-f.reports:
			ats = append(ats, *r.At)
		case <-time.After(5 * time.Second):
			t.Fatal("buffered reports not flushed")
		}
	}
	if !slices.IsSortedFunc(ats, func(a, b time.Time) int { return a.Compare(b) }) {
		t.Fatalf("reports out of order: %v", ats)
	}
}

func TestStateFilePersistedAndLoaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	f := newFakeController(t)
	c := mustConnect(t, f.srv.URL, WithToken("secret"), WithStateFile(path), fastOpts())
	recvAck(t, f)
	f.push(func(s *wire.Frame) { s.Version, s.Level, s.Flags = 4, 1, map[string]bool{"analytics": false} })
	recvAck(t, f)
	c.Close()

	// A process started while the controller is down serves the file.
	f.srv.Close()
	c2 := mustConnect(t, f.srv.URL, WithToken("secret"), WithStateFile(path), fastOpts())
	st := c2.State()
	if st.Source != SourceFile || st.Version != 4 || st.Level != LevelReduced || st.Enabled("analytics") {
		t.Fatalf("state from file = %+v", st)
	}
}

func TestStateFileVersionSentOnFirstConnect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	err := saveState(path, &remembered{State: wire.Frame{Service: "checkout", Version: 1, Level: 0,
		Flags: map[string]bool{"analytics": true}}})
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeController(t)
	c := mustConnect(t, f.srv.URL, WithToken("secret"), WithStateFile(path), fastOpts())
	// The controller is at version 1 too: it answers "unchanged", which the
	// client acknowledges, and the persisted state becomes the live one.
	if got := recvAck(t, f); got != 1 {
		t.Fatalf("ack = %d", got)
	}
	if got := f.subscribes(); got[0] != "1" {
		t.Fatalf("version parameter = %q, want 1", got[0])
	}
	eventually(t, "confirmed", func() bool { return c.State().Source == SourceController })
	if st := c.Stats(); st.StatesApplied != 0 || !st.Connected {
		t.Fatalf("stats = %+v: no state should have been sent", st)
	}
}

// TestSnapshotsAreConsistent reads from many goroutines while states change:
// every State read must be one the controller sent, never a mix of two.
func TestSnapshotsAreConsistent(t *testing.T) {
	f := newFakeController(t)
	c := mustConnect(t, f.srv.URL, WithToken("secret"), fastOpts())
	recvAck(t, f)
	stop := make(chan struct{})
	var reads atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				st := c.State()
				if st.Version > 1 && (st.Enabled("even") != (st.Version%2 == 0) || int(st.Level) != int(st.Version%4)) {
					t.Errorf("torn state: %+v", st)
					return
				}
				reads.Add(1)
			}
		}()
	}
	for v := uint64(2); v <= 200; v++ {
		f.push(func(s *wire.Frame) {
			s.Version, s.Level = v, wire.Level(v%4)
			s.Flags = map[string]bool{"even": v%2 == 0}
		})
	}
	eventually(t, "last state", func() bool { return c.State().Version == 200 })
	close(stop)
	wg.Wait()
	if reads.Load() == 0 {
		t.Fatal("no reads")
	}
}

// switchSampler reads a CPU the test sets.
type switchSampler struct{ cpu atomic.Uint64 }

func (s *switchSampler) sample() (float64, float64) {
	return math.Float64frombits(s.cpu.Load()), 40
}

// A jump in CPU is reported at once, not at the next report: with reports
// a minute apart, the controller hears of a burst within a second or so.
func TestJumpIsReportedEarly(t *testing.T) {
	f := newFakeController(t)
	s := &switchSampler{}
	s.cpu.Store(math.Float64bits(30))
	c := mustConnect(t, f.srv.URL, WithToken("secret"), fastOpts(func(c *config) { c.sampler = s }), WithReportInterval(time.Minute))
	recvAck(t, f)
	// Steady: nothing early (30 % is where the jumps count from).
	select {
	case r := <-f.reports:
		t.Fatalf("a report before any jump: %+v", r)
	case <-time.After(time.Second):
	}
	c.Record(nil)
	s.cpu.Store(math.Float64bits(45)) // +15: not a jump
	select {
	case r := <-f.reports:
		t.Fatalf("a report on +15 points: %+v", r)
	case <-time.After(time.Second):
	}
	jumped := time.Now()
	s.cpu.Store(math.Float64bits(95))
	select {
	case r := <-f.reports:
		if r.CPUPercent == nil || *r.CPUPercent < 65 || r.Requests != 1 {
			t.Fatalf("early report %+v (cpu %v)", r, *r.CPUPercent)
		}
		t.Logf("early report %v after the jump, cpu %.1f", time.Since(jumped), *r.CPUPercent)
	case <-time.After(20 * time.Second):
		t.Fatal("no early report within 20s of a jump to 95 %")
	}
	// Staying high is no new jump.
	select {
	case r := <-f.reports:
		if *r.CPUPercent < 85 {
			t.Fatalf("second report %+v (cpu %v)", r, *r.CPUPercent)
		}
		// A second early report may follow the first while the two-probe
		// reading climbs to 95; then nothing.
		select {
		case r := <-f.reports:
			t.Fatalf("a third report while CPU stays at 95: %+v", r)
		case <-time.After(time.Second):
		}
	case <-time.After(time.Second):
	}
}
