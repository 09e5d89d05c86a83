package web_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/servertest"
)

// BenchmarkOverview200 renders the overview with 200 services of 5
// instances each, 15 minutes of history behind every sparkline, some
// overrides and components: the whole request through the real handler,
// from session check to the last byte. The sparkline cache is warm, as it
// is once the page has been open for a moment; a cold cache adds at most
// the page's fetch budget (20 ms).
func BenchmarkOverview200(b *testing.B) {
	s := servertest.Start(b)
	ctx := context.Background()
	now := time.Now()
	var reports []map[string]any
	var samples []brownout.Sample
	for i := range 200 {
		name := fmt.Sprintf("service-%03d", i)
		cpu := 20 + float64(i%80)
		for j := range 5 {
			reports = append(reports, map[string]any{
				"service": name, "instance": fmt.Sprintf("%s-%d", name, j), "cpu_percent": cpu, "memory_percent": 40 + float64(j),
				"requests": 1000, "errors": i % 40,
				"components": map[string]any{"db": map[string]any{"kind": "breaker", "state": "closed", "metrics": map[string]float64{"failure_rate": 0.01}}},
			})
		}
		for at := now.Add(-15 * time.Minute); at.Before(now); at = at.Add(5 * time.Second) {
			samples = append(samples, brownout.Sample{Service: name, At: at, CPUPercent: cpu + 5*math.Sin(float64(at.Unix())/60),
				MemoryPercent: 45, ErrorRate: 0.01, Requests: 1000, Errors: 10, Instances: 5})
		}
	}
	s.MustDo(b, http.MethodPost, "/api/v1/reports", s.AdminToken, reports, http.StatusAccepted, nil)
	if err := s.App.DB.WriteSamples(ctx, samples); err != nil {
		b.Fatal(err)
	}
	for i := range 5 {
		s.MustDo(b, http.MethodPost, "/api/v1/overrides", s.AdminToken, map[string]any{
			"service": fmt.Sprintf("service-%03d", i*7), "level": 2, "reason": "load shedding drill", "ttl": "1h",
		}, http.StatusCreated, nil)
	}
	time.Sleep(200 * time.Millisecond) // one evaluation round

	c := signIn(b, s, s.AdminToken)
	u, _ := url.Parse(s.URL)
	cookies := c.http.Jar.Cookies(u)
	h := s.App.Handler()
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	// Warm the sparkline cache, and check what is measured.
	for range 20 {
		get()
	}
	rec := get()
	if rec.Code != http.StatusOK {
		b.Fatalf("status %d", rec.Code)
	}
	if n := countCards(rec.Body.String()); n != 200 {
		b.Fatalf("%d cards, want 200", n)
	}
	b.SetBytes(int64(rec.Body.Len()))
	b.ResetTimer()
	for b.Loop() {
		if rec := get(); rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

func countCards(html string) int {
	n := 0
	for i := 0; ; {
		j := indexFrom(html, `<li id="svc-`, i)
		if j < 0 {
			return n
		}
		n++
		i = j + 1
	}
}

func indexFrom(s, sub string, from int) int {
	for i := from; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
