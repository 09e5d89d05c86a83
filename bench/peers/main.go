package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "centrifuge-server" {
		err = centrifugeServer(os.Args[2:])
	} else {
		err = run(os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

type config struct {
	bin      string
	flagdBin string
	clients  []int
	changes  int
	par      int
	settle   time.Duration
	md       string
	systems  []string
	// skipped says why a system asked for is not measured.
	skipped []string
	command string
	self    []string
	selfEnv []string
	// profile, when set, is a directory that receives CPU profiles of
	// each measurement's changes: the server's and the tool's (the
	// clients'), profileFor long.
	profile    string
	profileFor time.Duration
}

func parse(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	fs.StringVar(&c.bin, "bin", "", "the Brownout controller binary (go build -o ../../bin/controlplane ../../cmd/controlplane)")
	fs.StringVar(&c.flagdBin, "flagd-bin", "", "a flagd binary (OpenFeature's flag daemon); without it flagd is not measured")
	counts := fs.String("clients", "1000,5000", "client counts, comma-separated (at most 10000)")
	fs.IntVar(&c.changes, "changes", 10, "changes per measurement (1–100)")
	fs.IntVar(&c.par, "dial-parallel", 64, "connections dialled at once")
	fs.DurationVar(&c.settle, "settle", 3*time.Second, "idle time after connecting before memory is read")
	fs.StringVar(&c.md, "bench-md", "", "Markdown file whose peers section (between <!-- peers:begin --> and <!-- peers:end -->) is rewritten")
	systems := fs.String("systems", "brownout,centrifuge,centrifuge-ack,flagd", "systems to measure, comma-separated (centrifuge-ack: centrifuge whose clients answer every publication, as SDKs acknowledge every state)")
	fs.StringVar(&c.profile, "cpu-profile", "", "directory for CPU profiles of the changes, the server's (SYSTEM-N-server.pprof; not flagd) and this tool's clients' (SYSTEM-N-clients.pprof); changes past --changes keep the servers busy until the profiles end and are not counted")
	fs.DurationVar(&c.profileFor, "profile-for", 5*time.Second, "how long each --cpu-profile profile runs (1s–60s)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, s := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 10000 {
			return nil, fmt.Errorf("--clients: %q is not a count from 1 to 10000", s)
		}
		c.clients = append(c.clients, n)
	}
	for _, s := range strings.Split(*systems, ",") {
		switch s {
		case "brownout", "centrifuge", "centrifuge-ack":
		case "flagd":
			if c.flagdBin == "" {
				c.skipped = append(c.skipped, "flagd: not measured (no --flagd-bin given).")
				continue
			}
		default:
			return nil, fmt.Errorf("--systems: %q is not brownout, centrifuge, centrifuge-ack or flagd", s)
		}
		c.systems = append(c.systems, s)
	}
	if c.changes < 1 || c.changes > 100 {
		return nil, errors.New("--changes must be 1 to 100")
	}
	if c.profileFor < time.Second || c.profileFor > time.Minute {
		return nil, errors.New("--profile-for must be 1s to 60s")
	}
	if c.par < 1 || c.par > 1024 {
		return nil, errors.New("--dial-parallel must be 1 to 1024")
	}
	if slices.Contains(c.systems, "brownout") && c.bin == "" {
		return nil, errors.New("--bin is required to measure brownout")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c.self = []string{self, "centrifuge-server"}
	c.command = "go run . " + strings.Join(args, " ")
	return c, nil
}

// Result is one system at one client count.
type Result struct {
	System  string
	Clients int
	// LastMs: change → last client, per change.
	LastMs []float64
	// CPUPerClientChangeUs: server CPU over the changes / (changes × clients).
	CPUPerClientChangeUs float64
	// ClientCPUUs: this tool's CPU (the clients') over the changes /
	// (changes × clients); the clients share the machine with the server.
	ClientCPUUs float64
	// KiBPerClient: server RSS with the clients connected minus before, per client.
	KiBPerClient float64
	Err          string
}

func (r *Result) p50() float64 { return pct(r.LastMs, 50) }
func (r *Result) max() float64 { return pct(r.LastMs, 100) }

func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	k := int(p/100*float64(len(s))+0.999999) - 1
	return s[max(0, min(k, len(s)-1))]
}

func run(args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	return runWith(c, stdout, stderr)
}

func runWith(c *config, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	for _, s := range c.skipped {
		fmt.Fprintln(stderr, "peers:", s)
	}
	before := loadavg()
	var results []*Result
	for _, n := range c.clients {
		for _, s := range c.systems {
			fmt.Fprintf(stderr, "%s peers: %s with %d clients\n", time.Now().Format("15:04:05"), s, n)
			r := &Result{System: s, Clients: n}
			if err := measure(ctx, c, r, stderr); err != nil {
				r.Err = err.Error()
				fmt.Fprintf(stderr, "  error: %v\n", err)
			}
			results = append(results, r)
		}
	}
	after := loadavg()
	out := report(c, results, before, after)
	fmt.Fprint(stdout, out)
	if c.md != "" {
		if err := rewriteSection(c.md, "peers", out); err != nil {
			return err
		}
	}
	for _, r := range results {
		if r.Err != "" {
			return errors.New("some measurements failed")
		}
	}
	return nil
}

func measure(ctx context.Context, c *config, r *Result, stderr io.Writer) error {
	payload := map[string]any{"service": "peers", "level": 2, "flags": map[string]bool{
		"analytics": false, "personalization": false, "real_time_data": false, "recommendations": false}}
	switch r.System {
	case "brownout":
		dir, err := os.MkdirTemp("", "peers-brownout-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		var debugAddr string
		if c.profile != "" {
			if debugAddr, err = freeAddr(); err != nil {
				return err
			}
		}
		p, base, token, err := startController(ctx, c.bin, dir, debugAddr)
		if err != nil {
			return err
		}
		defer p.stop()
		a := &api{base: base, token: token, hc: &http.Client{Timeout: 30 * time.Second}}
		var tok struct {
			Token string `json:"token"`
		}
		if err := a.do(ctx, http.MethodPost, "/api/v1/tokens", map[string]string{"scope": "sdk", "service": "peers", "name": "peers"}, &tok); err != nil {
			return err
		}
		rss0, _ := rssKiB(p.pid())
		f := &boFleet{}
		defer f.close()
		if err := f.connect(ctx, base, tok.Token, r.Clients, c.par); err != nil {
			return err
		}
		return sample(ctx, c, r, p.pid(), rss0, debugAddr, func(k int) (time.Duration, error) { return f.change(ctx, a, 1+k%2) })
	case "centrifuge", "centrifuge-ack":
		env := c.selfEnv
		var debugAddr string
		if c.profile != "" {
			var err error
			if debugAddr, err = freeAddr(); err != nil {
				return err
			}
			env = append(slices.Clone(env), "PEERS_DEBUG_ADDR="+debugAddr)
		}
		p, base, err := startSelf(ctx, c.self, env)
		if err != nil {
			return err
		}
		defer p.stop()
		rss0, _ := rssKiB(p.pid())
		f := &cfFleet{base: base, ack: r.System == "centrifuge-ack"}
		defer f.close()
		if err := f.connect(ctx, r.Clients, c.par); err != nil {
			return err
		}
		changes := 0
		if err := sample(ctx, c, r, p.pid(), rss0, debugAddr, func(k int) (time.Duration, error) {
			changes = k + 1
			return f.publish(ctx, base, int64(k+1), payload)
		}); err != nil {
			return err
		}
		if f.ack {
			return f.checkAcks(ctx, int64(changes)*int64(r.Clients))
		}
		return nil
	case "flagd":
		dir, err := os.MkdirTemp("", "peers-flagd-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		s, err := startFlagd(ctx, c.flagdBin, dir, stderr)
		if err != nil {
			return err
		}
		defer s.stop()
		rss0, _ := rssKiB(s.pid())
		f := &fdFleet{}
		defer f.close()
		if err := f.connect(ctx, s, r.Clients, c.par); err != nil {
			return err
		}
		return sample(ctx, c, r, s.pid(), rss0, "", func(k int) (time.Duration, error) { return f.change(ctx, s, 1+k%2) })
	}
	return fmt.Errorf("unknown system %q", r.System)
}

// sample waits for the connections to settle, reads memory, then makes
// the changes and reads the CPU they cost. With --cpu-profile it profiles
// the changes, the server's through its pprof address debugAddr (none:
// the tool's only), and keeps changing until the profiles end.
func sample(ctx context.Context, c *config, r *Result, pid int, rss0 int64, debugAddr string, change func(k int) (time.Duration, error)) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(c.settle):
	}
	runtime.GC()
	rss1, err := rssKiB(pid)
	if err != nil {
		return err
	}
	r.KiBPerClient = float64(rss1-rss0) / float64(r.Clients)
	cpu0, err := cpuSeconds(pid)
	if err != nil {
		return err
	}
	self0, _ := cpuSeconds(os.Getpid())
	var prof *profiler
	if c.profile != "" {
		name := fmt.Sprintf("%s-%d", r.System, r.Clients)
		if prof, err = startProfiles(ctx, c.profile, name, debugAddr, c.profileFor); err != nil {
			return err
		}
	}
	for k := range c.changes {
		d, err := change(k)
		if err != nil {
			return fmt.Errorf("change %d: %w", k+1, err)
		}
		r.LastMs = append(r.LastMs, float64(d.Microseconds())/1000)
		time.Sleep(100 * time.Millisecond)
	}
	cpu1, err := cpuSeconds(pid)
	if err != nil {
		return err
	}
	r.CPUPerClientChangeUs = (cpu1 - cpu0) / float64(c.changes*r.Clients) * 1e6
	self1, _ := cpuSeconds(os.Getpid())
	r.ClientCPUUs = (self1 - self0) / float64(c.changes*r.Clients) * 1e6
	if prof == nil {
		return nil
	}
	for k := c.changes; !prof.done(); k++ {
		if _, err := change(k); err != nil {
			return fmt.Errorf("change %d (profiling): %w", k+1, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return prof.stop()
}

func startSelf(ctx context.Context, self, env []string) (*proc, string, error) {
	cmd := exec.Command(self[0], self[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &proc{cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	line, err := bufio.NewReader(out).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, out); _ = cmd.Wait(); close(p.exited) }()
	f := strings.Fields(line)
	if err != nil || len(f) < 2 || f[0] != "listening" {
		p.stop()
		return nil, "", fmt.Errorf("server said %q: %v", line, err)
	}
	return p, "http://" + f[1], nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func rssKiB(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

func cpuSeconds(pid int) (float64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed stat")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], ", ")
}

func report(c *config, rs []*Result, before, after string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Written by the tool on %s; %d CPUs, %s; load average before %s, after %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.Version(), before, after)
	fmt.Fprintf(&b, "```sh\ncd bench/peers\n%s\n```\n\n", c.command)
	fmt.Fprintf(&b, "%d changes per measurement; each server in its own process, the clients in the tool's (their CPU, the last column, is the tool's over the changes).\n\n", c.changes)
	b.WriteString("| system | clients | change → last client p50 | max | server CPU per client per change | server memory per client | clients' CPU per client per change |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rs {
		if r.Err != "" {
			fmt.Fprintf(&b, "| %s | %d | failed: %s | | | | |\n", r.System, r.Clients, r.Err)
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %.1f ms | %.1f ms | %.2f µs | %.1f KiB | %.2f µs |\n", r.System, r.Clients, r.p50(), r.max(), r.CPUPerClientChangeUs, r.KiBPerClient, r.ClientCPUUs)
	}
	b.WriteString("\nRatios, peer ÷ Brownout (above 1: Brownout is ahead):\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| peer | clients | latency p50 | CPU per client per change | memory per client |")
	fmt.Fprintln(tw, "| --- | ---: | ---: | ---: | ---: |")
	for _, r := range rs {
		if r.System == "brownout" || r.Err != "" {
			continue
		}
		for _, bo := range rs {
			if bo.System == "brownout" && bo.Clients == r.Clients && bo.Err == "" {
				fmt.Fprintf(tw, "| %s | %d | %s | %s | %s |\n", r.System, r.Clients,
					ratio(r.p50(), bo.p50()), ratio(r.CPUPerClientChangeUs, bo.CPUPerClientChangeUs), ratio(r.KiBPerClient, bo.KiBPerClient))
			}
		}
	}
	tw.Flush()
	for _, s := range c.skipped {
		fmt.Fprintf(&b, "\n%s\n", s)
	}
	return b.String()
}

func ratio(peer, ours float64) string {
	if ours <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", peer/ours)
}

// rewriteSection replaces the text between <!-- NAME:begin --> and
// <!-- NAME:end --> in path with body, or appends the section.
func rewriteSection(path, name, body string) error {
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s, block := string(old), begin+"\n"+body+end
	if i, j := strings.Index(s, begin), strings.Index(s, end); i >= 0 && j > i {
		s = s[:i] + block + s[j+len(end):]
	} else {
		s += "\n" + block + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
