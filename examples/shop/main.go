// Command shop is a demo service that lives with Brownout: its optional
// features switch off as the controller degrades it.
//
//	shop -controller http://127.0.0.1:8080 -token $SDK_TOKEN -addr :8081
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/brownout-io/brownout/examples/shop/shop"
	"github.com/brownout-io/brownout/sdk"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "shop:", err)
		os.Exit(1)
	}
}

func run() error {
	host, _ := os.Hostname()
	var (
		controller = flag.String("controller", envOr("BROWNOUT_URL", "http://127.0.0.1:8080"), "controller base URL")
		token      = flag.String("token", os.Getenv("BROWNOUT_TOKEN"), "sdk token for the service")
		service    = flag.String("service", "shop", "service name")
		instance   = flag.String("instance", "shop-"+sanitize(host), "instance name")
		addr       = flag.String("addr", "127.0.0.1:8081", "listen address")
		stateFile  = flag.String("state-file", "", "where to keep the last-known-good state")
	)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	opts := []sdk.Option{
		sdk.WithToken(*token),
		sdk.WithLogger(log),
		// Everything on until the controller says otherwise.
		sdk.WithDefaults(sdk.LevelFull, map[string]bool{
			shop.FlagRecommendations: true, shop.FlagPersonalization: true,
			shop.FlagAnalytics: true, shop.FlagRealTimeData: true,
		}),
		sdk.WithStalenessPolicy(sdk.FallTo(sdk.LevelReduced, 10*time.Minute)),
	}
	if *stateFile != "" {
		opts = append(opts, sdk.WithStateFile(*stateFile))
	}
	client, err := sdk.Connect(ctx, *controller, *service, *instance, opts...)
	if err != nil {
		return err
	}
	defer client.Close()

	srv := &http.Server{Addr: *addr, Handler: shop.New(client), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("shop listening", "addr", *addr, "service", *service, "instance", *instance)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// sanitize turns a host name into a valid instance name.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		default:
			b[i] = '-'
		}
	}
	if len(b) > 58 {
		b = b[:58]
	}
	if len(b) == 0 {
		return "local"
	}
	return string(b)
}
