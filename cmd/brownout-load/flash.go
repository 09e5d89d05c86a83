package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/brownout-io/brownout/examples/shop/shop"
)

// The flash experiment: examples/shop behind the real SDK and a real
// controller, driven by an open-loop generator (arrivals on a fixed
// schedule, latency measured from each request's scheduled send time, so a
// server that stalls cannot slow the generator down and hide its own
// queue) through steady load, a burst of --factor× for --burst, and steady
// load again.

// Run kinds.
const (
	runNone      = "none"      // no controller: every feature on throughout
	runBrownout  = "brownout"  // Brownout, default thresholds; optional routes not shed
	runShed      = "shed"      // Brownout plus Shed on the optional routes and a bulkhead on optional work
	runEssential = "essential" // pinned at ESSENTIAL throughout: the utility floor
)

var runLabels = map[string]string{
	runNone:      "(a) no controller, all features on",
	runBrownout:  "(b) Brownout, default thresholds",
	runShed:      "(c) Brownout + Shed and a bulkhead on optional work",
	runEssential: "floor: pinned at ESSENTIAL",
}

type flashConfig struct {
	bin, url, token string
	runs            []string
	rate            float64
	work            int
	steady, burst   time.Duration
	after           time.Duration
	warmup          time.Duration
	factor          float64
	timeout         time.Duration
	maxInflight     int
	calibrate       time.Duration
	busy            float64
	reportEvery     time.Duration
	optionalLimit   int
	sloFactor       float64
	outDir          string
	benchMD         string
	jsonPath        string
	controllerArgs  []string
	maxDuration     time.Duration
	nice            int
	screenshots     string
	name            string
	progress        bool
	command         string
	// self runs this binary's shop-server mode (tests replace it).
	self    []string
	selfEnv []string
}

func parseFlash(args []string, stderr io.Writer) (*flashConfig, error) {
	fs := flag.NewFlagSet("flash", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &flashConfig{}
	fs.StringVar(&c.bin, "bin", "", "controller binary, started fresh for each run (e.g. bin/controlplane)")
	fs.StringVar(&c.url, "url", "", "a running controller instead of --bin (each run uses its own service)")
	fs.StringVar(&c.token, "token", os.Getenv("CONTROLPLANE_ADMIN_TOKEN"), "admin token (with --url)")
	runs := fs.String("runs", "none,brownout,shed,essential", "runs, in order: none, brownout, shed, essential")
	fs.Float64Var(&c.rate, "rate", 0, "steady arrival rate in requests/s (0: calibrate so that the shop keeps --busy of the machine's CPU busy)")
	fs.Float64Var(&c.busy, "busy", 0.4, "with --rate 0: the share of the machine's CPU the shop uses at the steady rate")
	fs.DurationVar(&c.calibrate, "calibrate", 8*time.Second, "with --rate 0: how long to measure the shop's CPU per request")
	fs.IntVar(&c.work, "work", 4, "the shop's --work: repetitions of each optional feature's computation")
	fs.DurationVar(&c.steady, "steady", 60*time.Second, "steady load before the burst")
	fs.DurationVar(&c.burst, "burst", 2*time.Minute, "how long the burst lasts")
	fs.DurationVar(&c.after, "after", 2*time.Minute, "steady load after the burst")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "unrecorded steady load before each run")
	fs.Float64Var(&c.factor, "factor", 5, "the burst's rate as a multiple of the steady rate")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Second, "a request still unanswered after this long (from its scheduled time) fails")
	fs.IntVar(&c.maxInflight, "max-inflight", 4000, "requests outstanding at once; an arrival beyond it fails at once")
	fs.DurationVar(&c.reportEvery, "report-every", time.Second, "the shop's SDK report interval")
	fs.IntVar(&c.optionalLimit, "optional-limit", runtime.NumCPU(), "run (c): slots of the bulkhead the shop runs optional work in (0: none)")
	fs.Float64Var(&c.sloFactor, "slo-factor", 3, "the SLO on essential p99: this many times run (a)'s steady-phase p99")
	fs.StringVar(&c.outDir, "svg", "docs", "directory for flash-latency.svg and flash-utility.svg (empty: none)")
	fs.StringVar(&c.benchMD, "bench-md", "", "Markdown file whose flash section (between <!-- flash:begin --> and <!-- flash:end -->) is rewritten")
	fs.StringVar(&c.jsonPath, "json", "", "also write the results as JSON to this file")
	extra := fs.String("controller-args", "", "extra flags for the controller (with --bin), space-separated")
	fs.DurationVar(&c.maxDuration, "max-duration", time.Hour, "hard bound on the whole experiment")
	fs.BoolVar(&c.progress, "v", true, "print progress to stderr")
	fs.StringVar(&c.name, "name", "flash", "name of the plots (NAME-latency.svg, NAME-utility.svg) and of the Markdown section, so that runs with other settings sit beside the default one")
	fs.StringVar(&c.screenshots, "screenshots", "", "directory for screenshots of the dashboard at the end of run (b) (flash-dashboard.png, flash-dashboard-phone.png; needs Chromium)")
	fs.IntVar(&c.nice, "nice", 0, "scheduling priority of this tool, the shop and the controllers, and of this session's scheduling group (-20 to 19; below 0 needs root): on a machine shared with other work, a negative value keeps the neighbours from taking the CPU the experiment calibrated for")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.nice < -20 || c.nice > 19 {
		return nil, errors.New("--nice must be -20 to 19")
	}
	if c.name == "" || strings.ContainsAny(c.name, "/ <>") {
		return nil, errors.New("--name must be a plain file-name prefix")
	}
	for _, r := range strings.Split(*runs, ",") {
		r = strings.TrimSpace(r)
		if _, ok := runLabels[r]; !ok {
			return nil, fmt.Errorf("--runs: %q is not none, brownout, shed or essential", r)
		}
		c.runs = append(c.runs, r)
	}
	if *extra != "" {
		c.controllerArgs = strings.Fields(*extra)
	}
	switch {
	case c.bin == "" && c.url == "" && slices.ContainsFunc(c.runs, func(r string) bool { return r != runNone }):
		return nil, errors.New("give --bin (start a controller) or --url (use a running one)")
	case c.bin != "" && c.url != "":
		return nil, errors.New("give --bin or --url, not both")
	case c.url != "":
		if err := checkLoopbackURL(c.url); err != nil {
			return nil, err
		}
		if c.token == "" {
			return nil, errors.New("--url needs --token (or CONTROLPLANE_ADMIN_TOKEN)")
		}
	}
	switch {
	case c.rate < 0 || c.rate > 5000:
		return nil, errors.New("--rate must be 0 (calibrate) to 5000 requests/s")
	case c.factor < 1 || c.factor > 20:
		return nil, errors.New("--factor must be 1 to 20")
	case c.rate*c.factor > 20000:
		return nil, errors.New("--rate × --factor must stay under 20,000 requests/s")
	case c.busy <= 0 || c.busy > 1:
		return nil, errors.New("--busy must be in (0, 1]")
	case c.work < 1 || c.work > 100:
		return nil, errors.New("--work must be 1 to 100")
	case c.steady <= 0 || c.burst <= 0 || c.after <= 0 || c.steady+c.burst+c.after > time.Hour:
		return nil, errors.New("--steady, --burst and --after must be positive and add up to at most 1h")
	case c.timeout <= 0 || c.timeout > time.Minute:
		return nil, errors.New("--timeout must be in (0, 1m]")
	case c.maxInflight < 1 || c.maxInflight > 8000:
		return nil, errors.New("--max-inflight must be 1 to 8000 (each is an open connection)")
	case c.calibrate < time.Second && c.rate == 0:
		return nil, errors.New("--calibrate must be at least 1s")
	case c.sloFactor < 1:
		return nil, errors.New("--slo-factor must be at least 1")
	case c.reportEvery != 0 && c.reportEvery < 100*time.Millisecond:
		return nil, errors.New("--report-every must be at least 100ms")
	case c.optionalLimit < 0 || c.optionalLimit > 1000:
		return nil, errors.New("--optional-limit must be 0 to 1000")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c.self = []string{self, "shop-server"}
	c.command = "bin/brownout-load flash " + strings.Join(args, " ")
	return c, nil
}

func (c *flashConfig) logf(w io.Writer, format string, args ...any) {
	if c.progress {
		fmt.Fprintf(w, time.Now().Format("15:04:05.000")+" "+format+"\n", args...)
	}
}

// FlashResults is everything the experiment measured.
type FlashResults struct {
	Machine       Machine     `json:"machine"`
	Command       string      `json:"command"`
	StartedAt     time.Time   `json:"started_at"`
	FinishedAt    time.Time   `json:"finished_at"`
	UptimeBefore  string      `json:"uptime_before"`
	UptimeAfter   string      `json:"uptime_after"`
	Rate          float64     `json:"rate"`
	Factor        float64     `json:"factor"`
	Work          int         `json:"work"`
	CPUPerReqMs   float64     `json:"cpu_per_request_ms,omitempty"`
	SteadyS       float64     `json:"steady_s"`
	BurstS        float64     `json:"burst_s"`
	AfterS        float64     `json:"after_s"`
	Nice          int         `json:"nice"`
	SLOFactor     float64     `json:"slo_factor"`
	SLOMs         float64     `json:"slo_ms"`
	SLOBasis      string      `json:"slo_basis"`
	ControllerCfg string      `json:"controller_args"`
	ReportEvery   string      `json:"report_every"`
	Runs          []*FlashRun `json:"runs"`
	Errors        []string    `json:"errors,omitempty"`
}

// FlashRun is one run of the profile.
type FlashRun struct {
	Kind  string `json:"kind"`
	Label string `json:"label"`

	Essential   int64   `json:"essential"`
	EssentialOK int64   `json:"essential_ok"`
	Timeouts    int64   `json:"timeouts"`
	Dropped     int64   `json:"dropped"`
	Status5xx   int64   `json:"status_5xx"`
	OtherFail   int64   `json:"other_failures"`
	SuccessPct  float64 `json:"success_pct"`
	P50Ms       float64 `json:"p50_ms"`
	P95Ms       float64 `json:"p95_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	SteadyP99Ms float64 `json:"steady_p99_ms"`
	BurstP99Ms  float64 `json:"burst_p99_ms"`
	AfterP99Ms  float64 `json:"after_p99_ms"`

	Optional      int64     `json:"optional_requests"`
	OptionalShed  int64     `json:"optional_shed"`
	UtilityPct    float64   `json:"utility_pct"`
	BurstUtility  float64   `json:"burst_utility_pct"`
	DegradeS      float64   `json:"time_to_degrade_s"` // -1: never
	RecoverS      float64   `json:"time_to_recover_s"` // -1: not within the run
	MaxLevel      int       `json:"max_level"`
	Levels        []LevelAt `json:"levels"`
	ShopCPUSteady float64   `json:"shop_cpu_steady_pct"` // of the machine
	ShopCPUBurst  float64   `json:"shop_cpu_burst_pct"`
	MachineSteady float64   `json:"machine_cpu_steady_pct"`
	MachineBurst  float64   `json:"machine_cpu_burst_pct"`
	Seconds       []Second  `json:"seconds"`
	MeetsSLO      bool      `json:"meets_slo"`
	ControllerLog []string  `json:"controller_level_changes,omitempty"`
}

// LevelAt is a level the shop served from At seconds into the run.
type LevelAt struct {
	At    float64 `json:"at"`
	Level int     `json:"level"`
}

// Second is one second of a run.
type Second struct {
	T          int     `json:"t"`
	Offered    int     `json:"offered"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	SuccessPct float64 `json:"success_pct"`
	UtilityPct float64 `json:"utility_pct"`
	Level      int     `json:"level"`
	ShopCPU    float64 `json:"shop_cpu_pct"`
}

// outcome is one request as the generator saw it.
type outcome struct {
	sched           float64 // seconds from the start of the recorded profile
	lat             float64 // ms from the scheduled time to the end of the answer
	essential       bool
	ok              bool
	failure         uint8 // 0 ok, 1 timeout, 2 dropped, 3 5xx, 4 other
	offered, served int8
	shed            bool
}

func runFlashCmd(args []string, stdout, stderr io.Writer) error {
	c, err := parseFlash(args, stderr)
	if err != nil {
		return err
	}
	if c.nice != 0 {
		if err := renice(c.nice); err != nil {
			return fmt.Errorf("--nice %d: %w", c.nice, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.maxDuration)
	defer cancel()
	res, err := runFlash(ctx, c, stderr)
	if res != nil {
		res.printTable(stdout)
		if werr := res.write(c); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	return err
}

// renice sets the priority of every thread of this process. On Linux a
// priority belongs to a thread, and threads and children inherit it from
// the thread that creates them, so every existing thread is set. Where the
// scheduler groups processes by session (autogroup), a thread's priority
// only counts within its session, so the session's group gets it too.
func renice(n int) error {
	if _, err := os.Stat("/proc/self/autogroup"); err == nil {
		if err := os.WriteFile("/proc/self/autogroup", []byte(strconv.Itoa(n)), 0); err != nil {
			return fmt.Errorf("autogroup: %w", err)
		}
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, n); err != nil {
			return err
		}
	}
	return nil
}

func (r *FlashResults) write(c *flashConfig) error {
	var errs []error
	if c.jsonPath != "" {
		data, err := json.MarshalIndent(r, "", "  ")
		if err == nil {
			err = os.WriteFile(c.jsonPath, append(data, '\n'), 0o644)
		}
		errs = append(errs, err)
	}
	if c.outDir != "" {
		if err := os.MkdirAll(c.outDir, 0o755); err != nil {
			return err
		}
		errs = append(errs,
			os.WriteFile(filepath.Join(c.outDir, c.name+"-latency.svg"), latencySVG(r), 0o644),
			os.WriteFile(filepath.Join(c.outDir, c.name+"-utility.svg"), utilitySVG(r), 0o644))
	}
	if c.benchMD != "" {
		errs = append(errs, rewriteSection(c.benchMD, c.name, r.markdown(c)))
	}
	return errors.Join(errs...)
}

func runFlash(ctx context.Context, c *flashConfig, log io.Writer) (*FlashResults, error) {
	res := &FlashResults{
		Machine: describeMachine(), Command: c.command, StartedAt: time.Now().UTC(), UptimeBefore: uptime(), Nice: c.nice,
		Factor: c.factor, Work: c.work, SteadyS: c.steady.Seconds(), BurstS: c.burst.Seconds(), AfterS: c.after.Seconds(),
		ControllerCfg: strings.Join(c.controllerArgs, " "), ReportEvery: c.reportEvery.String(), Rate: c.rate,
		SLOFactor: c.sloFactor,
	}
	defer func() { res.FinishedAt = time.Now().UTC(); res.UptimeAfter = uptime() }()
	if c.rate == 0 {
		rate, perReq, err := calibrate(ctx, c, log)
		if err != nil {
			return res, fmt.Errorf("calibrate: %w", err)
		}
		res.Rate, res.CPUPerReqMs = rate, perReq
	}
	var errs []error
	for _, kind := range c.runs {
		c.logf(log, "flash: run %s at %.0f req/s steady, %.0f req/s burst", runLabels[kind], res.Rate, res.Rate*c.factor)
		run, err := runOnce(ctx, c, kind, res.Rate, log)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", kind, err))
			res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", kind, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		res.Runs = append(res.Runs, run)
	}
	res.judge()
	return res, errors.Join(errs...)
}

// judge sets the SLO (sloFactor × run (a)'s steady p99, else the first
// run's) and which runs meet it.
func (r *FlashResults) judge() {
	if len(r.Runs) == 0 {
		return
	}
	base := r.Runs[0]
	for _, run := range r.Runs {
		if run.Kind == runNone {
			base = run
			break
		}
	}
	factor := r.SLOFactor
	if r.SLOMs == 0 {
		r.SLOMs = factor * base.SteadyP99Ms
	}
	r.SLOBasis = fmt.Sprintf("%.0f× the steady-phase essential p99 of %s (%.1f ms)", factor, base.Label, base.SteadyP99Ms)
	for _, run := range r.Runs {
		run.MeetsSLO = run.P99Ms <= r.SLOMs && run.SuccessPct >= 99.9
	}
}

// calibrate measures the shop's CPU per request with every feature on at a
// low rate and returns the steady rate that keeps --busy of the machine's
// CPU busy.
func calibrate(ctx context.Context, c *flashConfig, log io.Writer) (rate, perReqMs float64, err error) {
	sp, err := startShop(ctx, c.self, c.selfEnv, []string{"--work", strconv.Itoa(c.work), "--report-every", "-1s"}, log)
	if err != nil {
		return 0, 0, err
	}
	defer sp.stop()
	probe := 20.0
	g := newGenerator(c, sp.url)
	defer g.close()
	// Warm the shop and the connections, then measure.
	g.run(ctx, time.Now(), func(float64) float64 { return probe }, c.warmup, nil)
	before, err := cpuSeconds(sp.pid)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	outs := g.run(ctx, t0, func(float64) float64 { return probe }, c.calibrate, nil)
	after, err := cpuSeconds(sp.pid)
	if err != nil {
		return 0, 0, err
	}
	if len(outs) == 0 {
		return 0, 0, errors.New("no requests answered")
	}
	perReq := (after - before) / float64(len(outs))
	if perReq <= 0 {
		return 0, 0, errors.New("the shop used no measurable CPU")
	}
	rate = math.Round(c.busy * float64(runtime.NumCPU()) / perReq)
	rate = max(1, min(rate, 5000))
	c.logf(log, "flash: calibrated: %.2f ms CPU per request with every feature on → %.0f req/s keeps %.0f%% of %d CPUs busy",
		perReq*1000, rate, c.busy*100, runtime.NumCPU())
	return rate, perReq * 1000, nil
}

func runOnce(ctx context.Context, c *flashConfig, kind string, rate float64, log io.Writer) (*FlashRun, error) {
	run := &FlashRun{Kind: kind, Label: runLabels[kind]}
	shopArgs := []string{"--work", strconv.Itoa(c.work), "--shed=" + strconv.FormatBool(kind != runBrownout)}
	if kind == runShed {
		shopArgs = append(shopArgs, "--optional-limit", strconv.Itoa(c.optionalLimit))
	}
	var a *api
	service := "shop"
	if kind != runNone {
		base, token := c.url, c.token
		if c.bin != "" {
			dir, err := os.MkdirTemp("", "brownout-flash-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(dir)
			token = randomToken()
			p, err := startController(ctx, c.bin, dir, token, c.controllerArgs)
			if err != nil {
				return nil, err
			}
			defer p.stop()
			base = p.url()
		} else {
			service = fmt.Sprintf("flash-%s-%d", kind, time.Now().UnixNano()%1e9)
		}
		a = newAPI(base, token)
		sdkTok, err := a.createToken(ctx, service, "flash "+kind)
		if err != nil {
			return nil, err
		}
		if kind == runEssential {
			if _, err := a.do(ctx, http.MethodPost, "/api/v1/overrides",
				map[string]any{"service": service, "level": 2, "reason": "utility floor: pinned at ESSENTIAL"}, nil); err != nil {
				return nil, err
			}
		}
		shopArgs = append(shopArgs, "--controller", base, "--token", sdkTok, "--service", service,
			"--report-every", c.reportEvery.String())
	} else {
		shopArgs = append(shopArgs, "--report-every", "-1s")
	}
	sp, err := startShop(ctx, c.self, c.selfEnv, shopArgs, log)
	if err != nil {
		return nil, err
	}
	defer sp.stop()
	// Wait until the shop serves what the run needs: the controller's state
	// (at ESSENTIAL for the floor), or its own defaults without one.
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := getStatus(ctx, hc, sp.url)
		if err == nil && (kind == runNone || st.Source == "controller") && (kind != runEssential || st.Level == "ESSENTIAL") {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("shop not ready within 30s (last status %+v, %v)", st, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}

	g := newGenerator(c, sp.url)
	defer g.close()
	g.run(ctx, time.Now(), func(float64) float64 { return rate }, c.warmup, nil)

	steady, burstEnd := c.steady.Seconds(), (c.steady + c.burst).Seconds()
	total := c.steady + c.burst + c.after
	profile := func(t float64) float64 {
		if t >= steady && t < burstEnd {
			return rate * c.factor
		}
		return rate
	}
	t0 := time.Now()
	mon := startMonitor(ctx, hc, sp.url, sp.pid, t0)
	outs := g.run(ctx, t0, profile, total, func(t float64) {
		if c.progress && int(t)%15 == 0 {
			c.logf(log, "flash: %s t=%3.0fs level %d", kind, t, mon.level())
		}
	})
	mon.stop()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if a != nil {
		run.ControllerLog = controllerChanges(ctx, a, service, t0)
	}
	if c.screenshots != "" && kind == runBrownout {
		if err := screenshot(ctx, a.base, a.token, service, c.screenshots, "flash-dashboard"); err != nil {
			return nil, err
		}
	}
	summarise(run, outs, mon, c, total)
	return run, nil
}

func getStatus(ctx context.Context, hc *http.Client, base string) (shopStatus, error) {
	var st shopStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("status %d", resp.StatusCode)
	}
	return st, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
}

// controllerChanges lists the controller's level changes of the service
// since t0, oldest first, as "12.3s 0→2 cause".
func controllerChanges(ctx context.Context, a *api, service string, t0 time.Time) []string {
	var out struct {
		Items []struct {
			From  int             `json:"from_level"`
			To    int             `json:"to_level"`
			At    time.Time       `json:"at"`
			Cause string          `json:"cause"`
			In    json.RawMessage `json:"inputs"`
		} `json:"items"`
	}
	if _, err := a.do(ctx, http.MethodGet, "/api/v1/history/levels?limit=200&service="+service, nil, &out); err != nil {
		return []string{"history: " + err.Error()}
	}
	var lines []string
	for i := len(out.Items) - 1; i >= 0; i-- {
		it := out.Items[i]
		lines = append(lines, fmt.Sprintf("%.1fs %d→%d %s %s", it.At.Sub(t0).Seconds(), it.From, it.To, it.Cause, compactJSON(it.In)))
	}
	return lines
}

func compactJSON(b json.RawMessage) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// generator sends requests on a schedule, never waiting for answers.
type generator struct {
	c        *flashConfig
	base     string
	hc       *http.Client
	inflight atomic.Int64
	rnd      *rand.Rand
}

func newGenerator(c *flashConfig, base string) *generator {
	tr := &http.Transport{
		MaxIdleConns: c.maxInflight, MaxIdleConnsPerHost: c.maxInflight, IdleConnTimeout: 30 * time.Second,
		DisableCompression: true,
	}
	return &generator{c: c, base: base, hc: &http.Client{Transport: tr}, rnd: rand.New(rand.NewPCG(1, 2))}
}

func (g *generator) close() { g.hc.CloseIdleConnections() }

// run sends arrivals at rate(t) for d from t0 and returns every outcome,
// calling tick once a second of schedule.
func (g *generator) run(ctx context.Context, t0 time.Time, rate func(float64) float64, d time.Duration, tick func(float64)) []outcome {
	var (
		mu   sync.Mutex
		outs = make([]outcome, 0, int(rate(0)*d.Seconds()*1.5)+16)
		wg   sync.WaitGroup
	)
	record := func(o outcome) { mu.Lock(); outs = append(outs, o); mu.Unlock() }
	end := d.Seconds()
	nextTick := 1.0
	for t := 0.0; t < end; t += 1 / rate(t) {
		at := t0.Add(time.Duration(t * float64(time.Second)))
		if wait := time.Until(at); wait > 0 {
			select {
			case <-ctx.Done():
				wg.Wait()
				return outs
			case <-time.After(wait):
			}
		}
		if t >= nextTick && tick != nil {
			tick(t)
			nextTick++
		}
		path, essential, offered := g.pick()
		if g.inflight.Load() >= int64(g.c.maxInflight) {
			record(outcome{sched: t, lat: float64(time.Since(at).Microseconds()) / 1000, essential: essential, failure: 2, offered: offered})
			continue
		}
		g.inflight.Add(1)
		wg.Add(1)
		go func(t float64, at time.Time) {
			defer wg.Done()
			defer g.inflight.Add(-1)
			record(g.do(ctx, path, t, at, essential, offered))
		}(t, at)
	}
	wg.Wait()
	return outs
}

// pick chooses the next request: 75 % product pages and 10 % checkouts
// (essential), 15 % the recommendations API (optional).
func (g *generator) pick() (path string, essential bool, offered int8) {
	id := strconv.Itoa(g.rnd.IntN(2000))
	switch n := g.rnd.IntN(100); {
	case n < 75:
		return "GET /products/" + id, true, 4
	case n < 85:
		return "POST /checkout/" + id, true, 0
	default:
		return "GET /api/recommendations/" + id, false, 1
	}
}

func (g *generator) do(ctx context.Context, path string, t float64, at time.Time, essential bool, offered int8) outcome {
	o := outcome{sched: t, essential: essential, offered: offered}
	method, p, _ := strings.Cut(path, " ")
	rctx, cancel := context.WithDeadline(ctx, at.Add(g.c.timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, g.base+p, nil)
	if err != nil {
		o.failure = 4
		return o
	}
	req.Header.Set("X-User", "u"+strconv.Itoa(int(t*1000)%500))
	resp, err := g.hc.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	o.lat = float64(time.Since(at).Microseconds()) / 1000
	switch {
	case err != nil && errors.Is(rctx.Err(), context.DeadlineExceeded):
		o.failure = 1
	case err != nil:
		o.failure = 4
	case resp.StatusCode == http.StatusServiceUnavailable && !essential:
		o.shed, o.ok = true, true // an optional route shed as designed
	case resp.StatusCode >= 500:
		o.failure = 3
	case resp.StatusCode/100 != 2:
		o.failure = 4
	default:
		o.ok = true
		if n, err := strconv.Atoi(resp.Header.Get(shop.HeaderOptionalServed)); err == nil {
			o.served = int8(n)
		}
	}
	return o
}

// monitor samples the shop's served level every 100 ms and its CPU and
// the machine's every second.
type monitor struct {
	mu       sync.Mutex
	levels   []LevelAt
	cpu      []float64 // per second, % of the machine
	machine  []float64
	cur      atomic.Int32
	done     chan struct{}
	finished chan struct{}
}

func startMonitor(ctx context.Context, hc *http.Client, base string, pid int, t0 time.Time) *monitor {
	m := &monitor{done: make(chan struct{}), finished: make(chan struct{})}
	m.cur.Store(-1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-m.done:
				return
			case <-tick.C:
			}
			if st, err := getStatus(ctx, hc, base); err == nil {
				if l := int32(levelNumber(st.Level)); l != m.cur.Load() {
					m.cur.Store(l)
					m.mu.Lock()
					m.levels = append(m.levels, LevelAt{At: math.Max(0, time.Since(t0).Seconds()), Level: int(l)})
					m.mu.Unlock()
				}
			}
		}
	}()
	go func() {
		// CPU on its own ticker, aligned with the profile's seconds, so
		// that a slow /status answer cannot shift the series.
		defer wg.Done()
		lastCPU, _ := cpuSeconds(pid)
		lastBusy, lastAll := machineTicks()
		lastAt := t0
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-m.done:
				return
			case <-time.After(time.Until(t0.Add(time.Duration(n) * time.Second))):
			}
			now := time.Now()
			cpu, err := cpuSeconds(pid)
			if err != nil {
				cpu = lastCPU
			}
			busy, all := machineTicks()
			wall := now.Sub(lastAt).Seconds()
			m.mu.Lock()
			m.cpu = append(m.cpu, (cpu-lastCPU)/wall/float64(runtime.NumCPU())*100)
			if all > lastAll {
				m.machine = append(m.machine, float64(busy-lastBusy)/float64(all-lastAll)*100)
			} else {
				m.machine = append(m.machine, 0)
			}
			m.mu.Unlock()
			lastCPU, lastAt, lastBusy, lastAll = cpu, now, busy, all
		}
	}()
	go func() { wg.Wait(); close(m.finished) }()
	return m
}

func (m *monitor) level() int { return int(m.cur.Load()) }

func (m *monitor) stop() { close(m.done); <-m.finished }

// machineTicks reads the machine's busy and total CPU ticks from /proc/stat.
func machineTicks() (busy, total uint64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	for i, s := range f[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

func uptime() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return "load average: " + strings.Join(f[:3], ", ")
}

func summarise(run *FlashRun, outs []outcome, m *monitor, c *flashConfig, total time.Duration) {
	steady, burstEnd := c.steady.Seconds(), (c.steady + c.burst).Seconds()
	n := int(math.Ceil(total.Seconds()))
	secs := make([]Second, n)
	perSec := make([][]float64, n)
	okSec, essSec := make([]int, n), make([]int, n)
	offSec, servSec := make([]int, n), make([]int, n)
	var all, st, bu, af []float64
	var offered, served, bOffered, bServed int64
	for _, o := range outs {
		i := min(int(o.sched), n-1)
		secs[i].Offered++
		offSec[i] += int(o.offered)
		servSec[i] += int(o.served)
		offered += int64(o.offered)
		served += int64(o.served)
		if o.sched >= steady && o.sched < burstEnd {
			bOffered += int64(o.offered)
			bServed += int64(o.served)
		}
		if !o.essential {
			run.Optional++
			if o.shed {
				run.OptionalShed++
			}
			continue
		}
		run.Essential++
		essSec[i]++
		switch o.failure {
		case 0:
			run.EssentialOK++
			okSec[i]++
		case 1:
			run.Timeouts++
		case 2:
			run.Dropped++
		case 3:
			run.Status5xx++
		default:
			run.OtherFail++
		}
		// A failed request counts at its observed latency (a timeout at
		// least --timeout), never as fast.
		lat := o.lat
		if o.failure == 1 || o.failure == 2 {
			lat = math.Max(lat, float64(c.timeout.Milliseconds()))
		}
		all = append(all, lat)
		perSec[i] = append(perSec[i], lat)
		switch {
		case o.sched < steady:
			st = append(st, lat)
		case o.sched < burstEnd:
			bu = append(bu, lat)
		default:
			af = append(af, lat)
		}
	}
	if run.Essential > 0 {
		run.SuccessPct = float64(run.EssentialOK) / float64(run.Essential) * 100
	}
	slices.Sort(all)
	run.P50Ms, run.P95Ms, run.P99Ms = pctF(all, 50), pctF(all, 95), pctF(all, 99)
	if len(all) > 0 {
		run.MaxMs = all[len(all)-1]
	}
	run.SteadyP99Ms, run.BurstP99Ms, run.AfterP99Ms = sortedPct(st, 99), sortedPct(bu, 99), sortedPct(af, 99)
	if offered > 0 {
		run.UtilityPct = float64(served) / float64(offered) * 100
	}
	if bOffered > 0 {
		run.BurstUtility = float64(bServed) / float64(bOffered) * 100
	}

	m.mu.Lock()
	run.Levels = append(run.Levels, m.levels...)
	cpu, mach := slices.Clone(m.cpu), slices.Clone(m.machine)
	m.mu.Unlock()
	run.DegradeS, run.RecoverS = -1, -1
	for _, l := range run.Levels {
		run.MaxLevel = max(run.MaxLevel, l.Level)
	}
	lvl := func(t float64) int {
		cur := 0
		for _, l := range run.Levels {
			if l.At > t {
				break
			}
			cur = l.Level
		}
		return cur
	}
	if run.Kind == runBrownout || run.Kind == runShed {
		for _, l := range run.Levels {
			if l.At >= steady && l.Level > 0 {
				run.DegradeS = l.At - steady
				break
			}
		}
		if run.DegradeS >= 0 {
			for _, l := range run.Levels {
				if l.At >= burstEnd && l.Level == 0 {
					run.RecoverS = l.At - burstEnd
					break
				}
			}
		}
	}
	var cs, cb, ms, mb []float64
	for i := range secs {
		secs[i].T = i
		s := perSec[i]
		slices.Sort(s)
		secs[i].P50Ms, secs[i].P99Ms = pctF(s, 50), pctF(s, 99)
		if essSec[i] > 0 {
			secs[i].SuccessPct = float64(okSec[i]) / float64(essSec[i]) * 100
		}
		if offSec[i] > 0 {
			secs[i].UtilityPct = float64(servSec[i]) / float64(offSec[i]) * 100
		}
		secs[i].Level = lvl(float64(i) + 0.5)
		if i < len(cpu) {
			secs[i].ShopCPU = cpu[i]
			if float64(i) < steady {
				cs = append(cs, cpu[i])
			} else if float64(i) < burstEnd {
				cb = append(cb, cpu[i])
			}
		}
		if i < len(mach) {
			if float64(i) < steady {
				ms = append(ms, mach[i])
			} else if float64(i) < burstEnd {
				mb = append(mb, mach[i])
			}
		}
	}
	run.Seconds = secs
	run.ShopCPUSteady, run.ShopCPUBurst = mean(cs), mean(cb)
	run.MachineSteady, run.MachineBurst = mean(ms), mean(mb)
}

func pctF(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

func sortedPct(s []float64, p float64) float64 {
	s = slices.Clone(s)
	slices.Sort(s)
	return pctF(s, p)
}

func mean(s []float64) float64 {
	if len(s) == 0 {
		return 0
	}
	var t float64
	for _, v := range s {
		t += v
	}
	return t / float64(len(s))
}
