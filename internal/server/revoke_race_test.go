package server_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout/internal/servertest"
)

// Finding "no socket outlives its token": authorisation ran before the
// upgrade and the revocation's close could run before the subscriber was
// registered, so upgrades in flight during a revocation left sockets open
// on a revoked token. Each round races dozens of upgrades against one
// revocation; afterwards every socket that opened must be closed with
// 4401 and the controller must hold no subscription for the token.
func TestRevocationRacingUpgradesLeavesNoSocket(t *testing.T) {
	s := servertest.Start(t)
	const rounds, dialers = 20, 40
	wsURL := strings.Replace(s.URL, "http://", "ws://", 1) + "/api/v1/subscribe?service=race&instance=i-"
	opened, survivors := 0, 0
	for round := range rounds {
		id, tok := s.Token(t, "sdk", "race")
		start := make(chan struct{})
		var wg sync.WaitGroup
		closes := make(chan int, dialers)
		var mu sync.Mutex
		var conns []*websocket.Conn
		for i := range dialers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, _, err := websocket.Dial(ctx, wsURL+string(rune('a'+i%26))+string(rune('a'+i/26)), &websocket.DialOptions{
					HTTPHeader:   http.Header{"Authorization": {"Bearer " + tok}},
					Subprotocols: []string{"brownout.v1"},
				})
				if err != nil {
					return // refused: the revocation came first
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				// Read until the server ends the connection.
				for {
					if _, _, err := c.Read(context.Background()); err != nil {
						closes <- int(websocket.CloseStatus(err))
						return
					}
				}
			}()
		}
		close(start)
		time.Sleep(time.Duration(round%5)*time.Millisecond + time.Duration(rand.IntN(2000))*time.Microsecond)
		s.MustDo(t, http.MethodDelete, "/api/v1/tokens/"+id, s.AdminToken, nil, http.StatusOK, nil)

		// Every dial has finished (opened or refused) once the revocation
		// has answered and the handshakes are done; give the closes a
		// moment to arrive.
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		timedOut := false
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			timedOut = true
			mu.Lock()
			n := len(conns)
			mu.Unlock()
			survivors += n - len(closes)
			t.Errorf("round %d: %d of %d sockets opened on a revoked token were still open 5s after the revocation", round, n-len(closes), n)
		}
		mu.Lock()
		opened += len(conns)
		for _, c := range conns {
			c.CloseNow()
		}
		mu.Unlock()
		wg.Wait()
		close(closes)
		for code := range closes {
			if code != 4401 && !timedOut {
				t.Errorf("round %d: a socket closed with %d, want 4401 (token revoked)", round, code)
			}
		}
		deadline := time.Now().Add(2 * time.Second)
		for s.App.Hub.ConnectionsForToken(id) != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := s.App.Hub.ConnectionsForToken(id); n != 0 {
			t.Errorf("round %d: the controller still holds %d subscriptions for the revoked token", round, n)
		}
		if t.Failed() {
			break
		}
	}
	t.Logf("%d rounds, %d sockets opened, %d survived", rounds, opened, survivors)
}
