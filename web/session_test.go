package web_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout/internal/servertest"
)

// Finding "an API revocation closes the dashboard's live sockets at once":
// only the dashboard's own revocation closed them; after an API DELETE
// they stayed open until the periodic recheck, seconds later.
func TestAPIRevocationClosesLiveSocketsAtOnce(t *testing.T) {
	s := servertest.Start(t)
	id, secret := s.Token(t, "viewer", "")
	c := signIn(t, s, secret)
	conn, _, err := c.dialLive("overview", s.URL)
	if err != nil {
		t.Fatalf("dial live: %v", err)
	}
	defer conn.CloseNow()
	// The first fragments arrive once the connection is registered.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if _, _, err := conn.Read(ctx); err != nil {
		t.Fatalf("first live message: %v", err)
	}
	cancel()
	s.MustDo(t, http.MethodDelete, "/api/v1/tokens/"+id, s.AdminToken, nil, http.StatusOK, nil)
	revoked := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		if got := websocket.CloseStatus(err); got != 4401 {
			t.Fatalf("live socket not closed within 1s of the API revocation: %v (close status %d, want 4401)", err, got)
		}
		t.Logf("closed %s after the revocation", time.Since(revoked).Round(time.Millisecond))
		return
	}
}

// Finding "no socket outlives its token", for the dashboard: the session
// was checked before the upgrade and the connection registered after it,
// so a revocation in between left the live socket open. Each round races
// live upgrades of one session against the revocation of its token.
func TestRevocationRacingLiveUpgradesLeavesNoSocket(t *testing.T) {
	s := servertest.Start(t)
	const rounds, dialers = 12, 20
	for round := range rounds {
		id, secret := s.Token(t, "viewer", "")
		c := signIn(t, s, secret)
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		open := map[*websocket.Conn]bool{}
		for range dialers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				conn, _, err := c.dialLive("global", s.URL)
				if err != nil {
					return
				}
				mu.Lock()
				open[conn] = true
				mu.Unlock()
				for {
					if _, _, err := conn.Read(context.Background()); err != nil {
						if websocket.CloseStatus(err) == 4401 {
							mu.Lock()
							delete(open, conn)
							mu.Unlock()
						}
						return
					}
				}
			}()
		}
		close(start)
		time.Sleep(time.Duration(round%4)*time.Millisecond + time.Duration(rand.IntN(2000))*time.Microsecond)
		s.MustDo(t, http.MethodDelete, "/api/v1/tokens/"+id, s.AdminToken, nil, http.StatusOK, nil)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		mu.Lock()
		n := len(open)
		for conn := range open {
			conn.CloseNow()
		}
		mu.Unlock()
		wg.Wait()
		if n != 0 {
			t.Fatalf("round %d: %d live sockets still open 2s after their token was revoked", round, n)
		}
	}
}
