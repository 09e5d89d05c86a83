package web_test

import (
	"context"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/servertest"
)

// demoService shapes one service of the screenshot fleet.
type demoService struct {
	name      string
	cpu, mem  float64
	errRate   float64
	instances int
	// rampFrom is the CPU the service had before its recent climb.
	rampFrom float64
	subs     int
}

var demoFleet = []demoService{
	{name: "checkout", cpu: 46, mem: 58, errRate: 0.004, instances: 4, subs: 4},
	{name: "payments", cpu: 84, mem: 71, errRate: 0.012, instances: 3, rampFrom: 48, subs: 3},
	{name: "recommendations", cpu: 62, mem: 66, errRate: 0.31, instances: 2, subs: 2},
	{name: "search", cpu: 74, mem: 63, errRate: 0.008, instances: 3, rampFrom: 52, subs: 3},
	{name: "catalog", cpu: 31, mem: 44, errRate: 0.001, instances: 2, subs: 2},
	{name: "shipping", cpu: 38, mem: 52, errRate: 0.02, instances: 2, subs: 2},
	{name: "inventory", cpu: 27, mem: 49, errRate: 0.002, instances: 2, subs: 1},
	{name: "auth", cpu: 22, mem: 35, errRate: 0.0005, instances: 3, subs: 3},
	{name: "notifications", cpu: 18, mem: 29, errRate: 0.003, instances: 1},
}

// TestScreenshots regenerates docs/screenshots. It runs only when
// BROWNOUT_SCREENSHOTS=1.
func TestScreenshots(t *testing.T) {
	if os.Getenv("BROWNOUT_SCREENSHOTS") == "" {
		t.Skip("set BROWNOUT_SCREENSHOTS=1 to regenerate docs/screenshots")
	}
	browser := startBrowser(t)
	s := servertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seedFleet(t, ctx, s)
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	admin := newTab(t, browser, false)
	admin.login(s.URL, s.AdminToken)
	admin.liveReady()
	time.Sleep(1500 * time.Millisecond) // sparklines fill in live
	shoot(t, admin, filepath.Join(dir, "overview.png"))

	admin.do(chromedp.Navigate(s.URL+"/services/payments?range=1h"), chromedp.WaitVisible(chromedp.ID("svc-status")))
	admin.liveReady()
	time.Sleep(500 * time.Millisecond)
	shoot(t, admin, filepath.Join(dir, "service.png"))

	s.MustDo(t, http.MethodPost, "/api/v1/emergency", s.AdminToken,
		map[string]string{"reason": "primary database failover in progress", "ttl": "30m"}, http.StatusCreated, nil)
	admin.do(chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#banner .banner")))
	admin.liveReady()
	time.Sleep(1200 * time.Millisecond)
	shoot(t, admin, filepath.Join(dir, "emergency.png"))

	phone := newTab(t, browser, false)
	phone.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.ID("services")))
	phone.liveReady()
	time.Sleep(800 * time.Millisecond)
	shoot(t, phone, filepath.Join(dir, "overview-phone.png"))
}

func shoot(t *testing.T, b *tab, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// seedFleet backfills a day of history, keeps every instance reporting,
// subscribes SDK-like clients that ack, and sets one override.
func seedFleet(t *testing.T, ctx context.Context, s *servertest.Server) {
	t.Helper()
	now := time.Now()
	var batch []brownout.Sample
	for si, d := range demoFleet {
		add := func(at time.Time) {
			age := now.Sub(at).Minutes()
			phase := float64(si) * 0.7
			wave := 6*math.Sin(age/37+phase) + 3*math.Sin(age/5.3+phase*2)
			cpu := d.cpu + wave
			if d.rampFrom > 0 {
				// Climbed over the last 12 minutes.
				f := math.Max(0, math.Min(1, (12-age)/12))
				cpu = d.rampFrom + (d.cpu-d.rampFrom)*f + wave/2
			}
			er := d.errRate * (1 + 0.3*math.Sin(age/9+phase))
			if d.name == "recommendations" && age > 6 {
				er = 0.02 + 0.01*math.Sin(age/7)
			}
			batch = append(batch, brownout.Sample{
				Service: d.name, At: at, CPUPercent: clamp(cpu), MemoryPercent: clamp(d.mem + 2*math.Sin(age/50+phase)),
				ErrorRate: er, Requests: 1000, Errors: 1000 * er, Instances: d.instances,
			})
		}
		for at := now.Add(-24 * time.Hour); at.Before(now.Add(-time.Hour)); at = at.Add(time.Minute) {
			add(at)
		}
		for at := now.Add(-time.Hour); at.Before(now.Add(-2 * time.Second)); at = at.Add(5 * time.Second) {
			add(at)
		}
	}
	if err := s.App.DB.WriteSamples(ctx, batch); err != nil {
		t.Fatalf("backfill samples: %v", err)
	}

	send := func() {
		for _, d := range demoFleet {
			for i := range d.instances {
				jit := float64(i) * 1.5
				extra := map[string]any{}
				if d.name == "payments" || d.name == "checkout" {
					state := "closed"
					if d.name == "payments" && i == 0 {
						state = "half_open"
					}
					extra["components"] = map[string]any{
						"ledger-db":  map[string]any{"kind": "breaker", "state": state, "metrics": map[string]float64{"failure_rate": 0.02 + float64(i)*0.01}},
						"http-pool":  map[string]any{"kind": "bulkhead", "metrics": map[string]float64{"in_use": float64(12 + 3*i), "capacity": 64}},
						"api-limits": map[string]any{"kind": "ratelimit", "metrics": map[string]float64{"rejected": float64(i * 4)}},
					}
				}
				report(t, s, d.name, d.name+"-"+strconv.Itoa(i+1), clamp(d.cpu+jit), clamp(d.mem+jit), d.errRate, extra)
			}
		}
	}
	send()
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				send()
			}
		}
	}()
	for _, d := range demoFleet {
		if d.subs == 0 {
			continue
		}
		_, tok := s.Token(t, "sdk", d.name)
		for i := range d.subs {
			subscribe(t, s, tok, d.name, d.name+"-"+strconv.Itoa(i+1))
		}
	}
	s.MustDo(t, http.MethodPost, "/api/v1/overrides", s.AdminToken, map[string]any{
		"service": "shipping", "level": 1, "reason": "carrier API degraded; shed optional calls", "ttl": "45m",
	}, http.StatusCreated, nil)
	time.Sleep(500 * time.Millisecond)
}

func clamp(v float64) float64 { return math.Max(0, math.Min(100, v)) }

// TestScreenshotFullService is a reviewing aid: the whole service page.
func TestScreenshotFullService(t *testing.T) {
	if os.Getenv("BROWNOUT_REVIEW") == "" {
		t.Skip()
	}
	browser := startBrowser(t)
	s := servertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seedFleet(t, ctx, s)
	b := newTab(t, browser, false)
	b.login(s.URL, s.AdminToken)
	for _, p := range []struct{ path, file string }{{"/services/payments?range=15m", "svc"}, {"/history", "hist"}, {"/audit", "audit"}, {"/overrides", "ovr"}, {"/tokens", "tok"}} {
		b.do(chromedp.Navigate(s.URL+p.path), chromedp.WaitVisible(chromedp.ID("main")))
		time.Sleep(700 * time.Millisecond)
		png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile("/tmp/review-"+p.file+".png", png, 0o644)
	}
}
