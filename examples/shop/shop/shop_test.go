package shop_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout/examples/shop/shop"
	"github.com/brownout-io/brownout/sdk"
)

var allOn = map[string]bool{
	shop.FlagRecommendations: true, shop.FlagPersonalization: true,
	shop.FlagAnalytics: true, shop.FlagRealTimeData: true,
}

// offline returns a client that never reaches a controller and so serves
// its defaults, or the level forced by BROWNOUT_FORCE_LEVEL.
func offline(t *testing.T, opts ...sdk.Option) *sdk.Client {
	t.Helper()
	opts = append([]sdk.Option{sdk.WithLogger(slog.New(slog.DiscardHandler)), sdk.WithReportInterval(-1)}, opts...)
	c, err := sdk.Connect(context.Background(), "http://127.0.0.1:1", "shop", "shop-test", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("X-User", "ada")
	h.ServeHTTP(rec, req)
	return rec
}

func TestFullService(t *testing.T) {
	h := shop.New(offline(t, sdk.WithDefaults(sdk.LevelFull, allOn)))
	rec := get(t, h, "/products/42")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var page shop.Page
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Recommendations) != 5 || len(page.ForYou) != 3 || !page.StockRealTime || page.Level != "FULL" {
		t.Fatalf("page = %+v", page)
	}
	if rec := get(t, h, "/api/recommendations/42"); rec.Code != http.StatusOK {
		t.Fatalf("recommendations: %d", rec.Code)
	}
	if rec := get(t, h, "/api/analytics"); rec.Code != http.StatusOK {
		t.Fatalf("analytics: %d", rec.Code)
	}
	if rec := get(t, h, "/products/99999"); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown product: %d", rec.Code)
	}
}

func TestDegraded(t *testing.T) {
	t.Setenv("BROWNOUT_FORCE_LEVEL", "2")
	h := shop.New(offline(t, sdk.WithDefaults(sdk.LevelFull, allOn),
		sdk.WithLevelFlags(sdk.LevelEssential, map[string]bool{
			shop.FlagRecommendations: false, shop.FlagPersonalization: false,
			shop.FlagAnalytics: false, shop.FlagRealTimeData: false,
		})))
	var page shop.Page
	rec := get(t, h, "/products/42")
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
		t.Fatal(err)
	}
	if page.Recommendations != nil || page.ForYou != nil || page.StockRealTime || page.Level != "ESSENTIAL" {
		t.Fatalf("degraded page = %+v", page)
	}
	rec = get(t, h, "/api/recommendations/42")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("shed route: %d %v", rec.Code, rec.Header())
	}
	// The core keeps working.
	req := httptest.NewRequest(http.MethodPost, "/checkout/42", nil)
	out := httptest.NewRecorder()
	h.ServeHTTP(out, req)
	if out.Code != http.StatusCreated {
		t.Fatalf("checkout: %d", out.Code)
	}
}

// BenchmarkProductPage shows what degrading saves per request.
func BenchmarkProductPage(b *testing.B) {
	for _, tc := range []struct {
		name  string
		flags map[string]bool
	}{{"full", allOn}, {"essential", nil}} {
		c, err := sdk.Connect(context.Background(), "http://127.0.0.1:1", "shop", "shop-bench",
			sdk.WithLogger(slog.New(slog.DiscardHandler)), sdk.WithReportInterval(-1),
			sdk.WithDefaults(sdk.LevelFull, tc.flags))
		if err != nil {
			b.Fatal(err)
		}
		h := shop.New(c)
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/products/42", nil)
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
		c.Close()
	}
}

// With a bulkhead on optional work, a crowd of requests gets its essential
// answers, some without their optional content (all of it or none), and a
// lone request afterwards gets everything again.
func TestOptionalLimit(t *testing.T) {
	h := shop.New(offline(t, sdk.WithDefaults(sdk.LevelFull, allOn)), shop.WithWork(4), shop.WithOptionalLimit(1, time.Millisecond))
	const n = 32
	served := make(chan string, 2*n)
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/products/" + strconv.Itoa(i)
			if i%2 == 1 {
				path = "/api/recommendations/" + strconv.Itoa(i)
			}
			rec := get(t, h, path)
			if rec.Code != http.StatusOK {
				t.Errorf("%s: status %d", path, rec.Code)
			}
			served <- rec.Header().Get(shop.HeaderOptionalOffered) + "/" + rec.Header().Get(shop.HeaderOptionalServed)
		}()
	}
	wg.Wait()
	close(served)
	seen := map[string]int{}
	for s := range served {
		seen[s]++
	}
	// Which answers win the one slot is the scheduler's choice (under the
	// race detector a recommendation can hold it through the whole
	// crowd): some answer gets its optional content, product pages are
	// shed, and every answer is whole or without its optional part.
	if seen["4/0"] == 0 || seen["4/4"]+seen["1/1"] == 0 || seen["1/0"]+seen["1/1"] != n || seen["4/0"]+seen["4/4"] != n {
		t.Fatalf("answers (offered/served): %v", seen)
	}
	if rec := get(t, h, "/products/7"); rec.Header().Get(shop.HeaderOptionalServed) != "4" {
		t.Fatalf("a lone request after the crowd served %s optional parts", rec.Header().Get(shop.HeaderOptionalServed))
	}
}
