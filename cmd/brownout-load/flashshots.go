package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshot signs in to the controller's dashboard in headless Chromium
// and saves the service's page as it stands at the end of a run: its
// charts and level timeline tell the flash crowd's story. It writes
// NAME.png at 1440 px and NAME-phone.png at 390 px.
func screenshot(ctx context.Context, base, token, service, dir, name string) error {
	path := os.Getenv("BROWNOUT_CHROMIUM")
	if path == "" {
		for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(n); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		return errors.New("no Chromium found for --screenshots (apt-get install -y chromium, or set BROWNOUT_CHROMIUM)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	profile, err := os.MkdirTemp("", "brownout-flash-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	actx, cancelA := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("hide-scrollbars", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1440, 1000))
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	tctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	page := base + "/services/" + service + "?range=15m"
	if err := chromedp.Do(tctx,
		chromedp.EmulateViewport(1440, 1000),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("services")),
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS("svg.chart")),
		chromedp.Sleep(time.Second),
	); err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	for _, shot := range []struct {
		file string
		w, h int64
	}{{name + ".png", 1440, 1000}, {name + "-phone.png", 390, 844}} {
		if err := chromedp.Do(tctx, chromedp.EmulateViewport(shot.w, shot.h), chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("svg.chart")), chromedp.Sleep(time.Second)); err != nil {
			return fmt.Errorf("dashboard at %d px: %w", shot.w, err)
		}
		png, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
		if err != nil {
			return fmt.Errorf("screenshot: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, shot.file), png, 0o644); err != nil {
			return err
		}
	}
	return nil
}
