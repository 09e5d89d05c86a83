package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

func TestMiddleware(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	h := Middleware(HTTPConfig{
		Key:   func(r *http.Request) string { return r.Header.Get("X-Client") },
		Rate:  0.5, // a token every 2 s
		Burst: 2,
		Keys:  KeyedConfig{Clock: clk},
	}, ok)
	do := func(client string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-Client", client)
		h.ServeHTTP(rec, req)
		return rec
	}
	for i, want := range []struct {
		code      int
		ratelimit string
	}{{200, `"default";r=1;t=0`}, {200, `"default";r=0;t=2`}, {429, `"default";r=0;t=2`}} {
		rec := do("a")
		if rec.Code != want.code || rec.Header().Get("RateLimit") != want.ratelimit {
			t.Fatalf("request %d: %d %q, want %d %q", i+1, rec.Code, rec.Header().Get("RateLimit"), want.code, want.ratelimit)
		}
		if got := rec.Header().Get("RateLimit-Policy"); got != `"default";q=2;w=4` {
			t.Fatalf("RateLimit-Policy = %q", got)
		}
		if want.code == 429 && rec.Header().Get("Retry-After") != "2" {
			t.Fatalf("Retry-After = %q, want 2", rec.Header().Get("Retry-After"))
		}
	}
	// Keys are independent; the empty key is not limited.
	if rec := do("b"); rec.Code != 200 {
		t.Fatalf("another key: %d", rec.Code)
	}
	for i := 0; i < 10; i++ {
		if rec := do(""); rec.Code != 200 || rec.Header().Get("RateLimit") != "" {
			t.Fatalf("empty key: %d %v", rec.Code, rec.Header())
		}
	}
	// After Retry-After the client is admitted.
	clk.Advance(2 * time.Second)
	if rec := do("a"); rec.Code != 200 {
		t.Fatalf("after Retry-After: %d", rec.Code)
	}
}
