package server_test

import (
	"net/http"
	"testing"

	"github.com/brownout-io/brownout/internal/netlimit"
	"github.com/brownout-io/brownout/internal/servertest"
)

func getFrom(t *testing.T, s *servertest.Server, path, token, xff string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTrustedProxyKeysThrottleOnClient: behind a trusted proxy every
// client shares the proxy's address, so the failed-authentication
// throttle must key on X-Forwarded-For, or one noisy client throttles
// everyone. From an untrusted peer the header is ignored, or an attacker
// could dodge the throttle by inventing addresses.
func TestTrustedProxyKeysThrottleOnClient(t *testing.T) {
	trusted, _ := netlimit.ParseProxies("127.0.0.1")
	for _, tc := range []struct {
		name    string
		proxies netlimit.Proxies
		want    int // status for the second client after the first is throttled
	}{
		{"trusted", trusted, http.StatusUnauthorized},
		{"untrusted", netlimit.Proxies{}, http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := servertest.Start(t, servertest.WithConfig(func(c *appConfig) {
				c.Server.AuthFailBurst = 3
				c.Server.Proxies = tc.proxies
			}))
			throttled := false
			for range 10 {
				if getFrom(t, s, "/api/v1/services", "bo_wrong", "198.51.100.1") == http.StatusTooManyRequests {
					throttled = true
					break
				}
			}
			if !throttled {
				t.Fatal("the noisy client was never throttled")
			}
			if got := getFrom(t, s, "/api/v1/services", "bo_wrong", "198.51.100.2"); got != tc.want {
				t.Fatalf("another client behind the same peer: %d, want %d", got, tc.want)
			}
		})
	}
}
