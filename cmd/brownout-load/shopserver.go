package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/brownout-io/brownout/examples/shop/shop"
	"github.com/brownout-io/brownout/sdk"
)

// shopServerCmd runs examples/shop behind the real SDK in this process, so
// that the flash experiment measures the shop's CPU on its own. It prints
// "listening ADDR pid N" once it accepts connections and stops when stdin
// closes (its parent went away) or on SIGTERM.
func shopServerCmd(args []string) error {
	fs := flag.NewFlagSet("shop-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	controller := fs.String("controller", "http://127.0.0.1:1", "controller base URL (an unreachable one runs the shop on its defaults: every feature on)")
	token := fs.String("token", "", "sdk token")
	service := fs.String("service", "shop", "service name")
	instance := fs.String("instance", "shop-flash-1", "instance name")
	work := fs.Int("work", 4, "repeat each optional feature's computation this many times (1–100)")
	shed := fs.Bool("shed", true, "shed the optional routes with 503 from --shed-from on")
	shedFrom := fs.Int("shed-from", int(sdk.LevelEssential), "level from which optional routes are shed")
	reportEvery := fs.Duration("report-every", 5*time.Second, "SDK report interval (negative: no reports)")
	optLimit := fs.Int("optional-limit", 0, "run optional work in a bulkhead of this many slots (0: no limit)")
	optWait := fs.Duration("optional-wait", 20*time.Millisecond, "with --optional-limit: how long an answer waits for a slot before it goes without its optional content")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopbackAddr(*addr); err != nil {
		return err
	}
	if err := checkLoopbackURL(*controller); err != nil {
		return err
	}
	if *shedFrom < 0 || *shedFrom > int(sdk.MaxLevel) {
		return fmt.Errorf("--shed-from %d is not a level 0–3", *shedFrom)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	lvl := slog.LevelWarn
	if *token == "" {
		lvl = slog.LevelError // no controller on purpose: "cannot reach" is expected
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	all := map[string]bool{
		shop.FlagRecommendations: true, shop.FlagPersonalization: true,
		shop.FlagAnalytics: true, shop.FlagRealTimeData: true,
	}
	client, err := sdk.Connect(ctx, *controller, *service, *instance,
		sdk.WithToken(*token), sdk.WithLogger(log),
		sdk.WithDefaults(sdk.LevelFull, all),
		sdk.WithReportInterval(*reportEvery))
	if err != nil {
		return err
	}
	defer client.Close()
	opts := []shop.Option{shop.WithWork(*work), shop.WithShedFrom(sdk.Level(*shedFrom)), shop.WithOptionalLimit(*optLimit, *optWait)}
	if !*shed {
		opts = append(opts, shop.WithoutShed())
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: shop.New(client, opts...), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("listening %s pid %d\n", ln.Addr(), os.Getpid())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop() }()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// shopProc is a shop child process.
type shopProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	url    string
	pid    int
	exited chan struct{}
}

// startShop runs the shop-server mode of self (this binary, or a test
// binary that dispatches to it) with args.
func startShop(ctx context.Context, self []string, env []string, args []string, stderr io.Writer) (*shopProc, error) {
	cmd := exec.Command(self[0], append(append([]string{}, self[1:]...), args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start shop: %w", err)
	}
	p := &shopProc{cmd: cmd, stdin: stdin, pid: cmd.Process.Pid, exited: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(p.exited)
	}()
	select {
	case line := <-lines:
		f := strings.Fields(line) // "listening ADDR pid N"
		if len(f) < 2 || f[0] != "listening" {
			p.stop()
			return nil, fmt.Errorf("shop said %q", line)
		}
		p.url = "http://" + f[1]
	case <-time.After(20 * time.Second):
		p.stop()
		return nil, errors.New("shop did not start within 20s")
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
	return p, nil
}

func (p *shopProc) stop() {
	_ = p.stdin.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// shopStatus is what the shop's /status says.
type shopStatus struct {
	Level   string `json:"level"`
	Version uint64 `json:"version"`
	Source  string `json:"source"`
}

func levelNumber(name string) int {
	for l := sdk.LevelFull; l <= sdk.MaxLevel; l++ {
		if l.String() == name {
			return int(l)
		}
	}
	if n, err := strconv.Atoi(name); err == nil {
		return n
	}
	return -1
}
