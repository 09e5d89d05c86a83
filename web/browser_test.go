package web_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/brownout-io/brownout/internal/servertest"
)

// chromiumPath finds the browser. Locally a missing browser skips the
// browser tests; in CI (CI=true) it fails them.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BROWNOUT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (apt-get install -y chromium, or set BROWNOUT_CHROMIUM)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// startBrowser starts one headless browser for a whole test; tabs and
// browser contexts made from the returned context share it.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start browser: %v", err)
	}
	return bctx
}

// tab is one browser tab with its own cookie jar when isolated.
type tab struct {
	t   *testing.T
	ctx context.Context
}

func newTab(t *testing.T, browser context.Context, isolated bool) *tab {
	t.Helper()
	var opts []chromedp.ContextOption
	if isolated {
		opts = append(opts, chromedp.WithNewBrowserContext())
	}
	ctx, cancel := chromedp.NewContext(browser, opts...)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	return &tab{t: t, ctx: ctx}
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is truthy.
func (b *tab) waitJS(expr string, within time.Duration, what string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.t.Fatalf("%s: not within %s: %v", what, within, err)
	}
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%q)||{textContent:""}).textContent`, sel))
}

func (b *tab) login(base, token string) {
	b.t.Helper()
	b.do(
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("services")),
	)
}

// liveReady waits for the page's live connection.
func (b *tab) liveReady() {
	b.t.Helper()
	b.waitJS(`document.querySelector('#live-status[data-state="live"]') !== null`, 5*time.Second, "live connection")
}

// markPage tags the current document so that a test can tell a live
// update from a reload.
func (b *tab) markPage() { eval[bool](b, `window.__noReload = true`) }

func (b *tab) assertNoReload() {
	b.t.Helper()
	if !eval[bool](b, `window.__noReload === true`) {
		b.t.Fatal("the page reloaded; the update should have arrived live")
	}
}

func TestBrowser(t *testing.T) {
	browser := startBrowser(t)
	s := servertest.Start(t)
	_, viewerSecret := s.Token(t, "viewer", "")
	_, sdkSecret := s.Token(t, "sdk", "orders")
	report(t, s, "checkout", "checkout-1", 35, 50, 0.001, nil)

	admin := newTab(t, browser, false)

	t.Run("login", func(t *testing.T) {
		admin.t = t
		// A wrong token is refused with a message.
		admin.do(
			chromedp.Navigate(s.URL+"/"),
			chromedp.WaitVisible(chromedp.ID("token")),
			chromedp.SendKeys(chromedp.ID("token"), "bo_not-a-real-token"),
			chromedp.Submit(chromedp.ID("token")),
			chromedp.WaitVisible(chromedp.ID("login-error")),
		)
		if got := admin.text("#login-error"); !strings.Contains(got, "not valid") {
			t.Errorf("login error = %q, want it to say the token is not valid", got)
		}
		admin.login(s.URL, s.AdminToken)
		if got := admin.text("#svc-checkout h2"); got != "checkout" {
			t.Errorf("checkout card heading = %q", got)
		}
		// The session cookie is HttpOnly: scripts cannot read it.
		if c := eval[string](admin, `document.cookie`); strings.Contains(c, "brownout_session") {
			t.Errorf("session cookie visible to scripts: %q", c)
		}
	})

	t.Run("service appears live", func(t *testing.T) {
		admin.t = t
		admin.liveReady()
		admin.markPage()
		report(t, s, "payments", "payments-1", 20, 30, 0, nil)
		admin.waitJS(`document.getElementById('svc-payments') !== null`, 2*time.Second, "payments card")
		admin.assertNoReload()
	})

	t.Run("level change live", func(t *testing.T) {
		admin.t = t
		admin.markPage()
		report(t, s, "checkout", "checkout-1", 40, 50, 0.9, nil) // error rate (1+900)/2000 ≥ 0.25
		admin.waitJS(`(document.querySelector('#svc-checkout .badge')||{}).textContent === 'L3 MAINTENANCE'`, 2*time.Second, "checkout at L3")
		admin.assertNoReload()
		// Worst first: checkout now leads the list.
		if first := eval[string](admin, `document.querySelector('#services > li').id`); first != "svc-checkout" {
			t.Errorf("first card = %s, want svc-checkout", first)
		}
	})

	t.Run("emergency mode", func(t *testing.T) {
		admin.t = t
		sub := subscribe(t, s, sdkSecret, "orders", "orders-1")
		sub.waitLevel(t, 0, 3*time.Second)
		// A second page, left alone, gets the banner live.
		other := newTab(t, browser, false)
		other.do(chromedp.Navigate(s.URL+"/history"), chromedp.WaitVisible(chromedp.ID("banner"), chromedp.NodeReady))
		other.liveReady()
		other.markPage()

		admin.do(
			chromedp.Click(chromedp.CSS(".emergency-control summary")),
			chromedp.WaitVisible(chromedp.ID("em-reason")),
			chromedp.SendKeys(chromedp.ID("em-reason"), "database failover"),
			chromedp.SendKeys(chromedp.ID("em-ttl"), "30m"),
			chromedp.Click(chromedp.CSS(`.emergency-control input[name="confirm"]`)),
			chromedp.Click(chromedp.CSS(`.emergency-control button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS("#banner .banner")),
		)
		sub.waitLevel(t, 3, 3*time.Second)
		banner := admin.text("#banner")
		for _, want := range []string{"Emergency mode", "admin", "database failover", "until"} {
			if !strings.Contains(banner, want) {
				t.Errorf("banner %q does not mention %q", banner, want)
			}
		}
		other.waitJS(`document.querySelector('#banner .banner') !== null`, 2*time.Second, "banner on the other page")
		other.assertNoReload()
		if s.App.Controller.ActiveEmergency() == nil {
			t.Fatal("controller: no active emergency")
		}

		admin.do(
			chromedp.Click(chromedp.CSS(`#banner button.end`)),
			chromedp.WaitNotPresent(chromedp.CSS("#banner .banner")),
		)
		sub.waitLevel(t, 0, 3*time.Second)
		other.waitJS(`document.querySelector('#banner .banner') === null`, 2*time.Second, "banner gone on the other page")
		if s.App.Controller.ActiveEmergency() != nil {
			t.Fatal("controller: emergency still active")
		}
	})

	t.Run("invalid thresholds refused", func(t *testing.T) {
		admin.t = t
		admin.do(
			chromedp.Navigate(s.URL+"/services/checkout"),
			chromedp.WaitVisible(chromedp.ID("th-form")),
			chromedp.SetValue(chromedp.CSS(`input[name="levels[0].cpu.exit"]`), "75"),
			chromedp.Click(chromedp.CSS(`#th-form button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.ID("th-error")),
		)
		if got, want := admin.text("#th-error"), "levels[0].cpu.exit: must be below enter (70)"; got != want {
			t.Errorf("error = %q, want %q", got, want)
		}
		if got := eval[string](admin, `document.querySelector('input[name="levels[0].cpu.exit"]').getAttribute('aria-invalid')`); got != "true" {
			t.Errorf("offending input aria-invalid = %q", got)
		}
		if got := eval[string](admin, `document.querySelector('input[name="levels[0].cpu.exit"]').value`); got != "75" {
			t.Errorf("typed value not kept: %q", got)
		}
		if _, custom := s.App.Controller.ServiceThresholds("checkout"); custom {
			t.Error("checkout has thresholds of its own after a refused edit")
		}
	})

	t.Run("forged form refused", func(t *testing.T) {
		admin.t = t
		for _, body := range []string{
			`new URLSearchParams({reason: "forged", confirm: "yes"})`,
			`new URLSearchParams({reason: "forged", confirm: "yes", _csrf: "AAAA"})`,
		} {
			st := eval[int](admin, `fetch('/emergency', {method: 'POST', body: `+body+`}).then(r => r.status)`)
			if st != 403 {
				t.Errorf("POST /emergency with %s: status %d, want 403", body, st)
			}
		}
		if s.App.Controller.ActiveEmergency() != nil {
			t.Fatal("a forged form forced emergency mode")
		}
	})

	t.Run("viewer finds no forms", func(t *testing.T) {
		viewer := newTab(t, browser, true)
		viewer.login(s.URL, viewerSecret)
		for _, path := range []string{"/", "/services/checkout", "/overrides", "/history", "/audit"} {
			viewer.do(chromedp.Navigate(s.URL+path), chromedp.WaitVisible(chromedp.ID("main")))
			n := eval[int](viewer, `document.querySelectorAll('form[method="post"]:not([action="/logout"]), input[type="checkbox"], .emergency-control').length`)
			if n != 0 {
				t.Errorf("%s: viewer sees %d forms or controls that change things", path, n)
			}
		}
		csrf := eval[string](viewer, `document.querySelector('meta[name="csrf-token"]').content`)
		st := eval[int](viewer, `fetch('/emergency', {method: 'POST', body: new URLSearchParams({reason: "viewer", confirm: "yes", _csrf: `+fmt.Sprintf("%q", csrf)+`})}).then(r => r.status)`)
		if st != 403 {
			t.Errorf("viewer POST /emergency: status %d, want 403", st)
		}
		st = eval[int](viewer, `fetch('/tokens').then(r => r.status)`)
		if st != 403 {
			t.Errorf("viewer GET /tokens: status %d, want 403", st)
		}
	})
}
