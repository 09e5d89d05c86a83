package ratelimit

import (
	"math"
	"net/http"
	"strconv"
)

// HTTPConfig configures Middleware.
type HTTPConfig struct {
	// Key maps a request to the key it is limited under (a client id, an
	// API key, r.RemoteAddr's host). Required. Requests whose key is ""
	// are not limited.
	Key func(*http.Request) string
	// Rate is each key's sustained rate, in requests per second. Required.
	Rate Limit
	// Burst is each key's bucket size. Default 1.
	Burst int
	// Keys bounds the keys held (see KeyedConfig); default 10000 keys.
	Keys KeyedConfig
	// Policy names the quota in the RateLimit headers. Default "default".
	Policy string
	// Refused answers a refused request after the headers are set. Default:
	// 429 Too Many Requests with a one-line text body.
	Refused http.Handler
}

// Middleware limits requests per key with a token bucket each (held by a
// Keyed limiter, in bounded memory). A refused request gets 429 Too Many
// Requests with Retry-After (whole seconds until the key's next token) and,
// on every answer, the IETF RateLimit header fields
// (draft-ietf-httpapi-ratelimit-headers):
//
//	RateLimit-Policy: "default";q=<burst>;w=<seconds to refill the burst>
//	RateLimit: "default";r=<requests left now>;t=<seconds until the next>
//
// It panics if Key is nil or Rate is not positive.
func Middleware(cfg HTTPConfig, next http.Handler) http.Handler {
	if cfg.Key == nil || !(cfg.Rate > 0) {
		panic("ratelimit: Middleware needs a Key function and a positive Rate")
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 1
	}
	if cfg.Policy == "" {
		cfg.Policy = "default"
	}
	if cfg.Refused == nil {
		cfg.Refused = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "too many requests", http.StatusTooManyRequests)
		})
	}
	keyed := NewKeyed(cfg.Keys, func(string) *TokenBucket {
		return NewTokenBucket(cfg.Rate, cfg.Burst, WithClock(cfg.Keys.Clock))
	})
	window := int64(math.Ceil(float64(cfg.Burst) / float64(cfg.Rate)))
	policy := strconv.Quote(cfg.Policy) + ";q=" + strconv.Itoa(cfg.Burst) + ";w=" + strconv.FormatInt(max(window, 1), 10)
	name := strconv.Quote(cfg.Policy)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := cfg.Key(r)
		if key == "" {
			next.ServeHTTP(w, r)
			return
		}
		b := keyed.Get(key)
		ok := b.Allow()
		tokens := b.Tokens()
		remaining := max(0, int(math.Floor(tokens)))
		// Seconds until a token is available again, rounded up so that a
		// client retrying then is admitted.
		wait := 0.0
		if tokens < 1 {
			wait = (1 - tokens) / float64(cfg.Rate)
		}
		secs := int64(math.Ceil(wait - 1e-9))
		h := w.Header()
		h.Set("RateLimit-Policy", policy)
		h.Set("RateLimit", name+";r="+strconv.Itoa(remaining)+";t="+strconv.FormatInt(secs, 10))
		if ok {
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		cfg.Refused.ServeHTTP(w, r)
	})
}
