package web_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/servertest"
)

// TestDashboardTellsTheStory opens the dashboard on a fresh store the way
// a phone would (390 px) and the way a desk would (1440 px) and checks
// what an operator relies on during a flash crowd: charts that are lines
// from the first minute, no page wider than the screen, actions on
// screen, one unit convention in causes, short "why" lines, and cards
// that say how old they are while the live connection is down.
func TestDashboardTellsTheStory(t *testing.T) {
	browser := startBrowser(t)
	s := servertest.Start(t)
	ctx := context.Background()

	// A fresh store: three minutes of one-second samples whose first is
	// mid-minute, and the rollup of the minutes already complete — what a
	// controller has a few minutes after its first start.
	now := time.Now().UTC()
	first := now.Add(-3 * time.Minute).Truncate(time.Minute).Add(30 * time.Second)
	var batch []brownout.Sample
	for at := first; at.Before(now); at = at.Add(time.Second) {
		batch = append(batch, brownout.Sample{Service: "shop", At: at, CPUPercent: 40, MemoryPercent: 50, Requests: 100, Instances: 1})
	}
	report(t, s, "shop", "shop-1", 40, 50, 0, nil)
	if err := s.App.DB.WriteSamples(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := s.App.DB.Rollup(ctx, now); err != nil {
		t.Fatal(err)
	}
	// A flash crowd: the shop's error rate and CPU climb, it degrades.
	report(t, s, "shop", "shop-1", 93, 50, 0.1032, nil)
	s.MustDo(t, "POST", "/api/v1/overrides", s.AdminToken, map[string]any{
		"service": "checkout-with-a-rather-long-service-name", "level": 1, "reason": "a deploy with a reason long enough to need wrapping on a phone screen"}, 201, nil)
	s.Token(t, "sdk", "shop")

	admin := newTab(t, browser, false)
	admin.login(s.URL, s.AdminToken)

	t.Run("charts continuous on a fresh store", func(t *testing.T) {
		admin.t = t
		admin.do(chromedp.Navigate(s.URL+"/services/shop"), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
		// Every chart's data is one unbroken line (one moveto).
		got := eval[[]int](admin, `Array.from(document.querySelectorAll('svg.chart path.data')).map(p => (p.getAttribute('d').match(/M/g)||[]).length)`)
		if len(got) == 0 {
			t.Fatal("no chart lines on the service page")
		}
		for i, n := range got {
			if n != 1 {
				t.Errorf("chart %d: %d separate pieces, want one line", i, n)
			}
		}
	})

	t.Run("one unit convention in causes", func(t *testing.T) {
		admin.t = t
		admin.do(chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.ID("svc-shop")))
		why := admin.text("#svc-shop .note")
		if !strings.Contains(why, "%") || strings.Contains(why, "0.1032") || strings.Contains(why, "93 ≥") {
			t.Errorf("cause %q: want percentages like the signals beside it", why)
		}
		// The "why" is one line, never taller than the state line above it.
		lines := eval[float64](admin, `(() => { const n = document.querySelector('#svc-shop .note'); const h = document.querySelector('#svc-shop .card-head'); return n.getBoundingClientRect().height / h.getBoundingClientRect().height; })()`)
		if lines > 1.05 {
			t.Errorf("why line is %.2f× the height of the state it explains", lines)
		}
		if title := eval[string](admin, `document.querySelector('#svc-shop .note').getAttribute('title') || ''`); !strings.Contains(title, "%") {
			t.Errorf("the full cause is not in the title: %q", title)
		}
	})

	for _, width := range []int64{390, 1440} {
		t.Run("no sideways scroll at "+itoa(int(width))+"px", func(t *testing.T) {
			admin.t = t
			admin.do(chromedp.EmulateViewport(width, 844))
			for _, path := range []string{"/", "/services/shop", "/overrides", "/tokens", "/history", "/audit"} {
				admin.do(chromedp.Navigate(s.URL+path), chromedp.WaitVisible(chromedp.ID("main")))
				sw := eval[int](admin, `document.documentElement.scrollWidth`)
				if sw > int(width) {
					wide := eval[string](admin, `Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 4).map(e => e.tagName + '.' + e.className).join(', ')`)
					t.Errorf("%s at %dpx: page is %dpx wide (%s)", path, width, sw, wide)
				}
				// Every button and every table is inside the screen.
				off := eval[string](admin, `Array.from(document.querySelectorAll('main button, main table, main .table-wrap')).filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.right > window.innerWidth + 1 || e.scrollWidth > e.clientWidth + 1); }).map(e => e.tagName + ':' + e.textContent.trim().slice(0, 20)).join(' | ')`)
				if off != "" {
					t.Errorf("%s at %dpx: off-screen or scrolling: %s", path, width, off)
				}
			}
		})
	}
	admin.do(chromedp.EmulateViewport(1280, 800))

	t.Run("cards grey out while the live connection is down", func(t *testing.T) {
		admin.t = t
		admin.do(chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.ID("svc-shop")))
		admin.liveReady()
		s.Stop(t)
		admin.waitJS(`document.body.dataset.liveState === 'down'`, 5*time.Second, "live connection down")
		asOf := eval[string](admin, `getComputedStyle(document.querySelector('#svc-shop'), '::after').content`)
		if !strings.Contains(asOf, "data as of") {
			t.Errorf("card says %q while offline, want \"data as of …\"", asOf)
		}
		if f := eval[string](admin, `getComputedStyle(document.querySelector('#svc-shop')).filter`); !strings.Contains(f, "grayscale") {
			t.Errorf("card filter %q while offline, want it greyed out", f)
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }
