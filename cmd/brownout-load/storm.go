package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// StormResult is one reconnect storm: the controller is SIGKILLed with every
// subscriber connected and restarted on the same address and data.
type StormResult struct {
	Subscribers int `json:"subscribers"`
	Services    int `json:"services"`
	// RestartSeconds: SIGKILL until the new process answers /healthz.
	RestartSeconds float64 `json:"restart_seconds"`
	// AllBackSeconds: SIGKILL until the last subscriber has a new
	// connection on the current version; FromRestartSeconds the same from
	// the moment the new process was healthy.
	AllBackSeconds     float64 `json:"all_back_seconds"`
	FromRestartSeconds float64 `json:"from_restart_seconds"`
	Back               int     `json:"back"`
	// Connection attempts and successful handshakes, peak per 100 ms and
	// total, counted by the clients after the kill.
	PeakAttemptsPer100ms int      `json:"peak_attempts_per_100ms"`
	PeakConnectsPer100ms int      `json:"peak_connects_per_100ms"`
	Attempts             int      `json:"attempts"`
	VersionsWentBack     int      `json:"versions_went_back"`
	Backoff              string   `json:"backoff"`
	Errors               []string `json:"errors,omitempty"`
}

func runStorm(ctx context.Context, o *options, res *Results, log io.Writer) error {
	if o.bin == "" {
		return errors.New("storm needs --bin: the tool must start and kill the controller itself")
	}
	n := o.stormSubs
	r := &StormResult{Subscribers: n, Services: o.services,
		Backoff: fmt.Sprintf("full jitter, initial %s, cap %s", sdkBackoff.initial, sdkBackoff.max)}
	res.Storm = r
	if err := storm(ctx, o, n, r, log); err != nil {
		r.Errors = append(r.Errors, err.Error())
		return err
	}
	return nil
}

func storm(ctx context.Context, o *options, n int, r *StormResult, log io.Writer) error {
	t, err := openTarget(ctx, o, n, "storm")
	if err != nil {
		return err
	}
	defer t.cleanup()
	ctx, cancel := context.WithCancel(ctx)
	f := newFleet(t.wsBase(), t.services, t.tokens, n)
	f.reconnect, f.backoff = true, sdkBackoff
	defer func() {
		cancel() // ends every reconnect loop first
		f.closeAll()
	}()
	o.logf(log, "storm: connecting %d subscribers", n)
	if failed, _ := f.connectAll(ctx, o.par); failed > 0 {
		return fmt.Errorf("%d of %d connections failed", failed, n)
	}
	// A change first, so that the current version is not the first one.
	if _, err := t.api.do(ctx, http.MethodPost, "/api/v1/overrides", map[string]any{"service": "*", "level": 2, "reason": "storm"}, nil); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)
	if !f.waitConverged(ctx, 30*time.Second) {
		return errors.New("subscribers did not converge before the kill")
	}
	_, before := f.converged()

	o.logf(log, "storm: SIGKILL controller pid %d with %d subscribers connected", t.pid, f.connected())
	f.dials = newDialLog(time.Now())
	kill := time.Now()
	t.proc.kill()
	if err := t.proc.start(ctx); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	up := time.Now()
	t.pid = t.proc.pid()
	r.RestartSeconds = up.Sub(kill).Seconds()
	current := make([]uint64, len(t.services))
	for i, s := range t.services {
		if current[i], err = t.api.serviceVersion(ctx, s); err != nil {
			return err
		}
		if current[i] < before[i] {
			r.VersionsWentBack++
		}
	}
	o.logf(log, "storm: restarted in %.2fs; waiting for subscribers", r.RestartSeconds)
	deadline := time.Now().Add(o.stormTimeout)
	for {
		back, last := 0, int64(0)
		for _, s := range f.subs {
			at := s.sessionAt.Load()
			if s.sessions.Load() >= 2 && at > kill.UnixNano() && s.version.Load() >= current[s.svc] {
				back++
				last = max(last, at)
			}
		}
		r.Back = back
		if back == n {
			r.AllBackSeconds = time.Duration(last - kill.UnixNano()).Seconds()
			r.FromRestartSeconds = time.Duration(last - up.UnixNano()).Seconds()
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.PeakAttemptsPer100ms, r.PeakConnectsPer100ms = f.dials.peaks()
			return fmt.Errorf("only %d of %d subscribers back within %s", back, n, o.stormTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.PeakAttemptsPer100ms, r.PeakConnectsPer100ms = f.dials.peaks()
	f.dials.mu.Lock()
	for _, v := range f.dials.attempts {
		r.Attempts += v
	}
	f.dials.mu.Unlock()
	o.logf(log, "storm: all %d back %.2fs after the kill (%.2fs after restart); peak %d attempts, %d connects per 100 ms",
		n, r.AllBackSeconds, r.FromRestartSeconds, r.PeakAttemptsPer100ms, r.PeakConnectsPer100ms)
	if r.VersionsWentBack > 0 {
		return fmt.Errorf("%d services went back in version after the restart", r.VersionsWentBack)
	}
	return nil
}
