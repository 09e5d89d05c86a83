package demo

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/brownout-io/brownout/examples/shop/shop"
	"github.com/brownout-io/brownout/sdk"
)

// RunShop runs one instance of the example shop in this process, connected
// to the controller at baseURL through the real SDK, and drives it with
// traffic that rises and falls. Its costly optional features
// (recommendations, personalization, analytics, real-time stock) spend real
// CPU; as the controller degrades the "shop" service the SDK switches them
// off and the shop gets cheaper — degradation you can watch, not only
// numbers. The shop reports the process's CPU and memory, which include the
// controller's own.
func RunShop(ctx context.Context, baseURL, token string, log *slog.Logger) {
	client, err := sdk.Connect(ctx, baseURL, "shop", "shop-demo-1",
		sdk.WithToken(token), sdk.WithLogger(log.With("component", "demo-shop")),
		sdk.WithReportInterval(2*time.Second))
	if err != nil {
		log.Warn("demo shop not started", "err", err)
		return
	}
	defer client.Close()
	h := shop.New(client)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// 10 to 200 requests a second over a four-minute cycle: at the top,
		// with every feature on, the shop spends about a third of a core.
		el := time.Since(start).Seconds()
		rate := 10 + 190*(0.5+0.5*math.Sin(2*math.Pi*el/240))
		n := int(rate / 50)
		if rng.Float64() < rate/50-float64(n) {
			n++
		}
		for i := 0; i < n; i++ {
			id := strconv.Itoa(rng.IntN(500))
			path := "/products/" + id + "?user=u" + strconv.Itoa(rng.IntN(50))
			switch rng.IntN(10) {
			case 0:
				path = "/api/recommendations/" + id
			case 1:
				path = "/api/analytics"
			}
			req := httptest.NewRequest(http.MethodGet, path, nil)
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
}
