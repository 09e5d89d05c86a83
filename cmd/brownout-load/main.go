// Command brownout-load measures a Brownout controller over loopback:
// propagation of changes to many websocket subscribers (against a bare
// websocket broadcaster measured by the same client code in the same run),
// report ingest over websockets and HTTP, memory and goroutines per
// subscriber, and a reconnect storm after the controller is killed.
//
// Usage:
//
//	brownout-load prop    --bin bin/controlplane --subs 1000,5000,10000
//	brownout-load ingest  --bin bin/controlplane --subs 1000 --reports 50000 --ingest-for 60s
//	brownout-load storm   --bin bin/controlplane --subs 10000
//	brownout-load failover --bin bin/controlplane --replicas 3 --subs 300 --kills 10
//	brownout-load soak    --bin bin/controlplane --subs 1000 --reports 1000 --soak-for 30m
//	brownout-load all     --bin bin/controlplane --json results.json
//	brownout-load flash   --bin bin/controlplane --bench-md BENCHMARKS.md
//	brownout-load baseline-server --addr 127.0.0.1:0
//
// With --bin the tool starts (and always stops) a fresh controller with a
// temporary data directory for each measurement; with --url, --token and
// --pid it measures a controller that is already running (storm needs
// --bin). Every target must be a loopback address, and every phase is
// bounded in count and time (--max-duration bounds the whole run).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "brownout-load:", err)
		os.Exit(1)
	}
}

const usage = `Usage: brownout-load <prop|ingest|failover|storm|soak|all|flash|baseline-server|shop-server|prop-clients> [flags]

  prop             propagation p50/p99/max over --changes overrides, against the
                   bare broadcaster floor; RSS and goroutines per idle subscriber
  ingest           reports/s over websockets (--reports, --ingest-for) and HTTP
                   batches (--http-for), checked against /metrics and history
  failover         --replicas N over PostgreSQL: SIGKILL the leader --kills times while
                   overrides are made on the others; time until levels move again and a
                   new leader is named, then kill every replica: no acked write lost
  storm            SIGKILL the controller with every subscriber connected, restart
                   it, time until all are back on the current version (needs --bin)
  soak             --soak-for at --reports/s with the first --subs count, sampling RSS
                   and goroutines every --soak-every; flat or not, and controller ERRORs
  all              prop, ingest and storm in sequence
  flash            examples/shop through a flash crowd (steady, --factor× for --burst,
                   steady) with an open-loop generator: without a controller, with
                   Brownout, with Brownout and Shed, and pinned at ESSENTIAL; writes
                   SVG plots (--svg) and a BENCHMARKS.md section (--bench-md)
  baseline-server  the bare websocket broadcaster (started by prop itself)
  prop-clients     a slice of prop's subscribers (started by prop itself past 15,000)
  shop-server      examples/shop behind the SDK (started by flash itself)

Run "brownout-load <mode> -h" for the flags.
`

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return errors.New("a mode is required")
		}
		return nil
	}
	mode, rest := args[0], args[1:]
	switch mode {
	case "baseline-server":
		return baselineServerCmd(rest)
	case "shop-server":
		return shopServerCmd(rest)
	case "flash":
		return runFlashCmd(rest, stdout, stderr)
	case "prop-clients":
		return propClientsCmd(rest, os.Stdin, stdout)
	}
	o, err := parseOptions(mode, rest, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.maxDuration)
	defer cancel()

	res := &Results{Machine: describeMachine(), StartedAt: time.Now().UTC(), Mode: mode}
	switch mode {
	case "prop":
		err = runProp(ctx, o, res, stderr)
	case "ingest":
		err = runIngest(ctx, o, res, stderr)
	case "storm":
		err = runStorm(ctx, o, res, stderr)
	case "failover":
		err = runFailover(ctx, o, res, stderr)
	case "soak":
		err = runSoak(ctx, o, res, stderr)
	case "all":
		err = errors.Join(runProp(ctx, o, res, stderr), runIngest(ctx, o, res, stderr), runStorm(ctx, o, res, stderr))
	default:
		return fmt.Errorf("unknown mode %q\n%s", mode, usage)
	}
	res.FinishedAt = time.Now().UTC()
	res.printTable(stdout)
	if o.jsonPath != "" {
		if jerr := res.writeJSON(o.jsonPath); jerr != nil {
			err = errors.Join(err, jerr)
		}
	}
	return err
}

type options struct {
	bin, url, token string
	pid             int
	baselineURL     string // an already running broadcaster (tests)
	subs            []int
	services        int
	changes         int
	rounds          int
	scope           string
	baseline        bool
	floorMode       string
	changeOn        string
	settle          time.Duration
	reports         int
	ingestFor       time.Duration
	httpFor         time.Duration
	httpBatch       int
	httpWorkers     int
	stormSubs       int
	soakFor         time.Duration
	soakEvery       time.Duration
	stormTimeout    time.Duration
	par             int
	jsonPath        string
	maxDuration     time.Duration
	dataDir         string
	extra           []string
	progress        bool
	replicas        int
	postgres        string
	clients         int
	kills           int
	// debugPort, when set, gives controller i (from 0) --debug-addr
	// 127.0.0.1:debugPort+i, so that each can be profiled during a run.
	debugPort int
	// cpuProfile, when set, is where ingest writes this tool's CPU
	// profile of the websocket sending phase.
	cpuProfile string
}

// clientProcs is how many client processes hold n subscribers: --client-procs,
// or as few as keep each under perProcessSubs (1: this process).
func (o *options) clientProcs(n int) int {
	if o.clients > 0 {
		return min(o.clients, n)
	}
	return (n + perProcessSubs - 1) / perProcessSubs
}

func parseOptions(mode string, args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.StringVar(&o.bin, "bin", "", "controller binary to start for each measurement (e.g. bin/controlplane)")
	fs.StringVar(&o.url, "url", "", "a running controller, e.g. http://127.0.0.1:8080 (instead of --bin)")
	fs.StringVar(&o.token, "token", os.Getenv("CONTROLPLANE_ADMIN_TOKEN"), "admin token (with --url; generated with --bin)")
	fs.IntVar(&o.pid, "pid", 0, "pid of the running controller, for RSS (with --url)")
	subs := fs.String("subs", "1000", "comma-separated subscriber counts for prop and ingest")
	fs.IntVar(&o.services, "services", 10, "services the subscribers are spread over")
	fs.IntVar(&o.changes, "changes", 60, "override changes per propagation measurement")
	fs.IntVar(&o.rounds, "rounds", 3, "split the changes into this many alternating floor/controller rounds")
	fs.StringVar(&o.scope, "scope", "all", `which subscribers a change reaches: "all" (a global override) or "one" (an override of the first service)`)
	fs.BoolVar(&o.baseline, "baseline", true, "measure the bare broadcaster floor in the same run")
	fs.StringVar(&o.changeOn, "change-on", "follower", `with --replicas: the replica each change is made on: "follower" (the longest path: the follower commits the override, the leader evaluates and commits the states) or "leader"`)
	fs.StringVar(&o.floorMode, "floor", "goroutine", `the floor's broadcaster: "direct" (writes to each connection in turn) or "goroutine" (a writer goroutine per connection, the controller's shape)`)
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "idle time after connecting before RSS and goroutines are read")
	fs.IntVar(&o.reports, "reports", 50000, "websocket reports per second to offer (ingest)")
	fs.DurationVar(&o.ingestFor, "ingest-for", 60*time.Second, "how long to send websocket reports")
	fs.DurationVar(&o.httpFor, "http-for", 20*time.Second, "how long to send HTTP report batches (0: skip)")
	fs.IntVar(&o.httpBatch, "http-batch", 500, "reports per HTTP batch (at most 1000)")
	fs.IntVar(&o.httpWorkers, "http-workers", 4, "concurrent HTTP senders")
	fs.IntVar(&o.stormSubs, "storm-subs", 10000, "subscribers connected when the controller is killed")
	fs.DurationVar(&o.stormTimeout, "storm-timeout", 60*time.Second, "give up waiting for subscribers after a restart after this long")
	fs.DurationVar(&o.soakFor, "soak-for", 30*time.Minute, "soak: how long to run")
	fs.DurationVar(&o.soakEvery, "soak-every", 30*time.Second, "soak: how often to sample RSS and goroutines")
	fs.IntVar(&o.par, "dial-parallel", 128, "connections dialled concurrently while connecting")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.DurationVar(&o.maxDuration, "max-duration", 0, "hard bound on the whole run (default 30m, or --soak-for plus 10m for soak)")
	fs.StringVar(&o.dataDir, "data", "", "parent of the controllers' data directories (default: a temporary directory, removed afterwards)")
	extra := fs.String("controller-args", "", "extra flags for the controller, space-separated (e.g. \"--eval-interval 1s\")")
	fs.BoolVar(&o.progress, "v", true, "print progress to stderr")
	fs.IntVar(&o.replicas, "replicas", 1, "with --bin: run this many controller replicas over PostgreSQL (--postgres), spread subscribers over them and make each change on a follower")
	fs.StringVar(&o.postgres, "postgres", envOr("BROWNOUT_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL server for --replicas (a fresh database is made for each measurement and dropped after)")
	fs.IntVar(&o.kills, "kills", 5, "failover: how many times to SIGKILL the leader")
	fs.IntVar(&o.clients, "client-procs", 0, "prop: child processes to hold the subscribers (0: as few as keep each under 15,000 open sockets; 1: this process)")
	fs.IntVar(&o.debugPort, "debug-port", 0, "with --bin: serve controller i's pprof profiles on 127.0.0.1:(this+i) (0: none)")
	fs.StringVar(&o.cpuProfile, "cpu-profile", "", "ingest: write this tool's CPU profile of the websocket phase to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.debugPort < 0 || o.debugPort > 65535-o.replicas {
		return nil, fmt.Errorf("--debug-port: %d is not a port", o.debugPort)
	}
	if o.clients < 0 || o.clients > 16 {
		return nil, fmt.Errorf("--client-procs: %d is not between 0 and 16", o.clients)
	}
	if o.replicas < 1 || o.replicas > 16 {
		return nil, fmt.Errorf("--replicas: %d is not between 1 and 16", o.replicas)
	}
	if mode == "failover" && (o.replicas < 2 || o.bin == "") {
		return nil, errors.New("failover needs --bin and --replicas 2 or more")
	}
	if o.kills < 1 || o.kills > 100 {
		return nil, errors.New("--kills must be 1 to 100")
	}
	if o.replicas > 1 && o.bin == "" {
		return nil, errors.New("--replicas needs --bin: the tool starts the replicas")
	}
	for _, s := range strings.Split(*subs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 60000 {
			return nil, fmt.Errorf("--subs: %q is not a count from 1 to 60000", s)
		}
		// Each controller process holds its share of the sockets, and a
		// process may hold only so many open files.
		if per := (n + o.replicas - 1) / o.replicas; per > perProcessSubs && o.url == "" {
			return nil, fmt.Errorf("--subs %d over %d replica(s) is %d sockets per controller process, more than %d: use more --replicas", n, o.replicas, per, perProcessSubs)
		}
		if mode != "prop" && n > perProcessSubs {
			return nil, fmt.Errorf("--subs: %s holds at most %d subscribers (only prop spreads them over client processes)", mode, perProcessSubs)
		}
		o.subs = append(o.subs, n)
	}
	if *extra != "" {
		o.extra = strings.Fields(*extra)
	}
	switch {
	case o.bin == "" && o.url == "":
		return nil, errors.New("give --bin (start a controller) or --url (use a running one)")
	case o.bin != "" && o.url != "":
		return nil, errors.New("give --bin or --url, not both")
	case o.url != "":
		if err := checkLoopbackURL(o.url); err != nil {
			return nil, err
		}
		if o.token == "" {
			return nil, errors.New("--url needs --token (or CONTROLPLANE_ADMIN_TOKEN)")
		}
	}
	if o.soakFor <= 0 || o.soakFor > 24*time.Hour || o.soakEvery < time.Second {
		return nil, errors.New("--soak-for must be up to 24h and --soak-every at least 1s")
	}
	if o.maxDuration <= 0 {
		o.maxDuration = 30 * time.Minute
		if mode == "soak" {
			o.maxDuration = o.soakFor + 10*time.Minute
		}
	}
	if o.services < 1 || o.services > 1000 {
		return nil, errors.New("--services must be 1 to 1000")
	}
	if o.changes < 1 || o.changes > 10000 {
		return nil, errors.New("--changes must be 1 to 10000")
	}
	if o.rounds < 1 || o.rounds > o.changes {
		return nil, errors.New("--rounds must be 1 to --changes")
	}
	if o.changeOn != "follower" && o.changeOn != "leader" {
		return nil, fmt.Errorf("--change-on: %q is neither follower nor leader", o.changeOn)
	}
	if o.floorMode != "direct" && o.floorMode != "goroutine" {
		return nil, errors.New(`--floor must be "direct" or "goroutine"`)
	}
	if o.scope != "all" && o.scope != "one" {
		return nil, errors.New(`--scope must be "all" or "one"`)
	}
	if o.httpBatch < 1 || o.httpBatch > 1000 {
		return nil, errors.New("--http-batch must be 1 to 1000")
	}
	if o.stormSubs < 1 || o.stormSubs > 15000 {
		return nil, errors.New("--storm-subs must be 1 to 15000")
	}
	if o.reports < 0 || o.reports > 1_000_000 {
		return nil, errors.New("--reports must be 0 to 1,000,000")
	}
	if o.ingestFor > 30*time.Minute || o.httpFor > 30*time.Minute {
		return nil, errors.New("--ingest-for and --http-for are at most 30m")
	}
	return o, nil
}

func (o *options) logf(w io.Writer, format string, args ...any) {
	if o.progress {
		fmt.Fprintf(w, time.Now().Format("15:04:05.000")+" "+format+"\n", args...)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
