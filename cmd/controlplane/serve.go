package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/brownout-io/brownout/internal/app"
	"github.com/brownout-io/brownout/internal/certreload"
	"github.com/brownout-io/brownout/internal/demo"
	"github.com/brownout-io/brownout/internal/health"
	"github.com/brownout-io/brownout/internal/netlimit"
	"github.com/brownout-io/brownout/internal/notify"
	"github.com/brownout-io/brownout/internal/storage/postgres"
)

func serveCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	data := fs.String("data", "./data", "data directory (SQLite file and generated admin token), or a postgres:// URL; with --demo and no --data, "+demoDataDir)
	demoOn := fs.Bool("demo", false, "run simulated services so that a first run shows something alive (their data is kept apart, in "+demoDataDir+" unless --data says otherwise)")
	rawRet := fs.Duration("raw-retention", 24*time.Hour, "keep raw samples this long")
	rollRet := fs.Duration("rollup-retention", 30*24*time.Hour, "keep per-minute rollups this long")
	window := fs.Duration("window", 30*time.Second, "sliding window of reports per instance")
	stale := fs.Duration("stale-after", 30*time.Second, "an instance silent this long leaves the aggregate")
	evalEvery := fs.Duration("eval-interval", time.Second, "how often levels are evaluated")
	maxConns := fs.Int("max-conns-per-token", 10000, "most concurrent subscriptions one token may hold")
	maxServices := fs.Int("max-services", 10000, "most services the controller tracks")
	maxInstances := fs.Int("max-instances", 10000, "most instances of one service")
	maxOverrides := fs.Int("max-overrides", 1000, "most active overrides (emergency mode is exempt)")
	maxComponents := fs.Int("max-components", health.DefaultLimits().MaxComponents, "most components one report may carry")
	maxMetrics := fs.Int("max-metrics", health.DefaultLimits().MaxMetrics, "most metrics one component may carry")
	maxCompName := fs.Int("max-component-name-len", health.DefaultLimits().MaxNameLen, "longest component name, kind, state or metric name, in bytes (component names also follow the name rule, 64 at most)")
	maxCompBytes := fs.Int64("max-component-bytes", 16<<20, "memory budget for the components instances report, in bytes (the heap may hold about twice as much before the GC runs); past it reports count but their components are dropped")
	maxOpen := fs.Int("max-conns", 10000, "most concurrent TCP connections in total (0: no cap; kept below the open-file limit)")
	maxOpenPerAddr := fs.Int("max-conns-per-addr", 1024, "most concurrent TCP connections from one address, or concurrent requests from one client behind a trusted proxy (0: no cap)")
	maxSubs := fs.Int("max-subscribers", 10000, "most concurrent websocket subscribers in total (0: no cap)")
	maxSubsPerAddr := fs.Int("max-subscribers-per-addr", 1000, "most concurrent websocket subscribers from one client address (0: no cap)")
	proxies := fs.String("trusted-proxies", "", "comma-separated CIDRs or addresses of proxies whose X-Forwarded-For / X-Real-IP name the client (e.g. 10.0.0.0/8,127.0.0.1)")
	origins := fs.String("allowed-origins", "", "comma-separated extra hosts allowed to open websockets from a browser")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	debugAddr := fs.String("debug-addr", "", "if set, serve Go pprof profiles on this address (keep it on loopback)")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this PEM certificate (chain); re-read when the file changes")
	tlsKey := fs.String("tls-key", "", "the PEM private key of --tls-cert; re-read when the file changes")
	hstsAge := fs.Duration("hsts-max-age", 365*24*time.Hour, "with TLS, Strict-Transport-Security max-age (0: no HSTS header)")
	replicaID := fs.String("replica-id", "", "this replica's name in the replica set, with a postgres:// --data (default host-pid-random)")
	advertise := fs.String("advertise", "", "the URL operators reach this replica at, shown in the replica set (default the listen address)")
	leaseTTL := fs.Duration("lease-ttl", 2*time.Second, "with a postgres:// --data: how long a leader's lease lasts unrenewed; a dead leader is replaced within about this plus a quarter of it")
	drain := fs.Duration("drain", 5*time.Second, "on SIGTERM, answer /readyz with 503 for this long while still serving, then stop")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "after the drain, how long in-flight requests and websockets get to finish")
	hookAllow := fs.String("webhook-allow", "", "comma-separated hosts webhooks may be sent to: names, *.domain for its subdomains, or IP addresses (empty: no webhook can be created)")
	hookPrivate := fs.Bool("webhook-allow-private", false, "let webhooks reach loopback, private, link-local, CGNAT and other internal addresses (refused by default, checked on the address dialled)")
	hookAttempts := fs.Int("webhook-max-attempts", 3, "attempts per webhook delivery before it moves to the dead letters")
	hookTimeout := fs.Duration("webhook-timeout", 10*time.Second, "time limit of one webhook delivery attempt: connect, TLS and answer")
	maxHooks := fs.Int("max-webhooks", notify.MaxWebhooksDefault, "most webhooks")
	deadRet := fs.Duration("webhook-dead-letter-retention", notify.DeadLetterRetentionDefault, "keep webhook deliveries that ran out of attempts this long for a redrive")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: controlplane serve [flags]\n\nRuns the controller. Every flag can also be set as CONTROLPLANE_<FLAG> (e.g. CONTROLPLANE_ADDR,\nCONTROLPLANE_RAW_RETENTION); CONTROLPLANE_ADMIN_TOKEN sets the admin token.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := applyEnv(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	if *demoOn && !flagGiven(fs, "data") {
		*data = demoDataDir
	}
	if err := checkDemoMarker(*data, *demoOn); err != nil {
		return err
	}
	if *drain < 0 || *shutdownTimeout <= 0 {
		return usageError{"--drain must be ≥ 0 and --shutdown-timeout > 0"}
	}
	// sigCtx ends on the first SIGINT/SIGTERM; ctx, which the loops run
	// on, ends only after the drain, so that requests are served in full
	// while the load balancer takes this instance out.
	sigCtx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()

	cfg := app.Config{
		DataDir: *data, AdminToken: os.Getenv("CONTROLPLANE_ADMIN_TOKEN"),
		RawRetention: *rawRet, RollupRetention: *rollRet, Log: log,
	}
	cfg.Controller.Window, cfg.Controller.StaleAfter, cfg.Controller.EvalInterval = *window, *stale, *evalEvery
	if *leaseTTL < 200*time.Millisecond {
		return fmt.Errorf("--lease-ttl: %s is too short (at least 200ms)", *leaseTTL)
	}
	cfg.Replica.ID, cfg.Replica.LeaseTTL, cfg.Replica.Ship = *replicaID, *leaseTTL, *evalEvery
	cfg.Replica.Addr = *advertise
	if cfg.Replica.Addr == "" {
		cfg.Replica.Addr = "http://" + *addr
	}
	cfg.Server.MaxConnsPerToken = *maxConns
	for _, v := range []struct {
		name string
		n    int64
	}{{"max-services", int64(*maxServices)}, {"max-instances", int64(*maxInstances)}, {"max-overrides", int64(*maxOverrides)},
		{"max-components", int64(*maxComponents)}, {"max-metrics", int64(*maxMetrics)}, {"max-component-name-len", int64(*maxCompName)},
		{"max-component-bytes", *maxCompBytes}} {
		if v.n < 1 {
			return fmt.Errorf("--%s: %d, want at least 1", v.name, v.n)
		}
	}
	cfg.Controller.MaxServices, cfg.Controller.MaxInstances, cfg.Controller.MaxOverrides = *maxServices, *maxInstances, *maxOverrides
	cfg.Controller.MaxComponentBytes = *maxCompBytes
	cfg.Server.ReportLimits = health.Limits{MaxComponents: *maxComponents, MaxMetrics: *maxMetrics, MaxNameLen: *maxCompName}
	trusted, err := netlimit.ParseProxies(*proxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	cfg.Server.Proxies = trusted
	cfg.Server.MaxSubscribers, cfg.Server.MaxSubscribersPerAddr = flagCap(*maxSubs), flagCap(*maxSubsPerAddr)
	cfg.Server.MaxRequestsPerAddr = flagCap(*maxOpenPerAddr)
	total, err := connCap(*maxOpen, log)
	if err != nil {
		return err
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"max-conns-per-addr", *maxOpenPerAddr}, {"max-subscribers", *maxSubs}, {"max-subscribers-per-addr", *maxSubsPerAddr}} {
		if v.n < 0 {
			return fmt.Errorf("--%s: %d is negative (0 means no cap)", v.name, v.n)
		}
	}
	if *origins != "" {
		cfg.Server.OriginPatterns = strings.Split(*origins, ",")
	}
	allow, err := notify.ParseAllowList(*hookAllow)
	if err != nil {
		return fmt.Errorf("--webhook-allow: %w", err)
	}
	if *hookAttempts < 1 || *maxHooks < 1 || *hookTimeout <= 0 || *deadRet <= 0 {
		return usageError{"--webhook-max-attempts and --max-webhooks must be at least 1, --webhook-timeout and --webhook-dead-letter-retention positive"}
	}
	cfg.Notify = notify.Config{Allow: allow, AllowPrivate: *hookPrivate, MaxAttempts: *hookAttempts, Timeout: *hookTimeout, MaxWebhooks: *maxHooks, DeadLetterRetention: *deadRet}
	var certs *certreload.Reloader
	switch {
	case (*tlsCert == "") != (*tlsKey == ""):
		return usageError{"--tls-cert and --tls-key go together"}
	case *tlsCert != "":
		if certs, err = certreload.New(*tlsCert, *tlsKey, time.Second, log); err != nil {
			return err
		}
		cfg.Server.HSTSMaxAge = *hstsAge
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		return err
	}
	rawLn, err := net.Listen("tcp", *addr)
	if err != nil {
		_ = a.Close(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	ln := netlimit.NewListener(rawLn, total, *maxOpenPerAddr, trusted, log, func(reason string) {
		a.Metrics.ConnsRefused.WithLabelValues(reason).Inc()
	})
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if certs != nil {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
	}
	if *debugAddr != "" {
		go serveDebug(ctx, *debugAddr, log)
	}
	a.Run(ctx)
	scheme := "http://"
	if certs != nil {
		scheme = "https://"
	}
	url := scheme + ln.Addr().String()
	if *demoOn {
		go demo.Run(ctx, a.Controller, 2*time.Second, log)
		go demo.RunShop(ctx, url, a.AdminToken, log)
	}
	shown := *data
	if postgres.IsDSN(shown) {
		shown = "postgres" // the URL may hold a password
	}
	log.Info("controller listening", "addr", ln.Addr().String(), "url", url, "data", shown, "demo", *demoOn)
	switch {
	case a.AdminTokenPath != "" && a.AdminGenerated:
		fmt.Fprintf(stdout, "Brownout controller on %s\nAdmin token generated and saved to %s (mode 0600):\n  export BROWNOUT_TOKEN=$(cat %s)\n", url, a.AdminTokenPath, a.AdminTokenPath)
	case a.AdminTokenPath != "":
		fmt.Fprintf(stdout, "Brownout controller on %s\nAdmin token in %s:\n  export BROWNOUT_TOKEN=$(cat %s)\n", url, a.AdminTokenPath, a.AdminTokenPath)
	default:
		fmt.Fprintf(stdout, "Brownout controller on %s (admin token from CONTROLPLANE_ADMIN_TOKEN)\n", url)
	}
	errc := make(chan error, 1)
	go func() {
		if certs != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		_ = a.Close(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-sigCtx.Done():
	}
	stop() // a second signal kills at once
	a.Server.StartDraining()
	srv.SetKeepAlivesEnabled(false) // clients reconnect, to another instance
	log.Info("draining: /readyz answers 503, requests are still served", "drain", drain.String())
	if *drain > 0 {
		select {
		case <-time.After(*drain):
		case err := <-errc:
			cancelRun()
			_ = a.Close(context.Background())
			return fmt.Errorf("serve: %w", err)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(sctx) // stop accepting; hijacked websockets are ours to end
	a.Shutdown(sctx)
	cancelRun()
	if err := a.Close(sctx); err != nil {
		log.Error("close", "err", err)
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// flagCap maps a flag's "0: no cap" to the server's "negative: no cap".
func flagCap(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// reservedFiles are the open files kept free of client connections: the
// store, its WAL, logs, outgoing connections.
const reservedFiles = 256

// connCap checks --max-conns against the process's open-file limit: a
// cap above it would let idle connections starve the store and /healthz
// of descriptors, so it is lowered (with a warning) to leave
// reservedFiles free. 0 (no cap) becomes that same bound.
func connCap(n int, log *slog.Logger) (int, error) {
	if n < 0 {
		return 0, fmt.Errorf("--max-conns: %d is negative (0 means no cap)", n)
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 { // unreadable or practically unlimited
		return n, nil
	}
	limit := int(rl.Cur) - reservedFiles
	if limit < 64 {
		limit = 64
	}
	if n == 0 || n > limit {
		log.Warn("--max-conns lowered to fit the open-file limit", "max_conns", limit, "asked", n, "open_file_limit", rl.Cur)
		return limit, nil
	}
	return n, nil
}

// demoDataDir is where --demo keeps its data unless told otherwise, so
// that simulated services never appear in a real controller's ./data.
const demoDataDir = "./data-demo"

// demoMarker, in a data directory, says that it holds demo data.
const demoMarker = "DEMO"

// flagGiven reports whether a flag was set on the command line or through
// its environment variable.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	_, env := os.LookupEnv("CONTROLPLANE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")))
	return given || env
}

// checkDemoMarker keeps demo and real data apart: a directory that holds
// demo data (marked by demoMarker) refuses a real start, and a directory
// that already holds a real store refuses --demo.
func checkDemoMarker(dir string, demo bool) error {
	if strings.Contains(dir, "://") {
		return nil // a server database: its operator decides
	}
	marker := filepath.Join(dir, demoMarker)
	_, err := os.Stat(marker)
	marked := err == nil
	_, err = os.Stat(filepath.Join(dir, app.DBFile))
	hasStore := err == nil
	switch {
	case demo && hasStore && !marked:
		return fmt.Errorf("--demo refuses data directory %s: it holds a real store (use another --data, or leave --data unset for %s)", dir, demoDataDir)
	case !demo && marked:
		return fmt.Errorf("data directory %s holds demo data (it has a %s file): start with --demo, or use another --data", dir, demoMarker)
	case demo && !marked:
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
		if err := os.WriteFile(marker, []byte("This directory holds simulated services from controlplane serve --demo.\n"), 0o600); err != nil {
			return fmt.Errorf("mark demo data: %w", err)
		}
	}
	return nil
}

// applyEnv sets each flag from CONTROLPLANE_<NAME> when that is set; a
// flag on the command line still wins.
func applyEnv(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		key := "CONTROLPLANE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(key); ok && err == nil {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %w", key, e)
			}
		}
	})
	return err
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
}

// serveDebug serves net/http/pprof on its own listener, never on the API's.
func serveDebug(ctx context.Context, addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("pprof listening", "addr", addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("pprof server", "err", err)
	}
}
