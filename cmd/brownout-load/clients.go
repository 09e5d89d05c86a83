package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"
)

// A process may hold only so many open files (20,000 on the reference
// machine), and each subscriber is one socket in the process that holds it.
// perProcessSubs is how many subscribers one client process, or one
// controller or floor process, is given at most, which leaves room for its
// other files.
const perProcessSubs = 15000

// subscriberSet is what prop drives: one fleet in this process, or slices of
// one fleet held by child processes of this binary ("prop-clients"), so that
// the subscribers are not bounded by one process's open files.
type subscriberSet interface {
	connectAll(ctx context.Context, par int) (failed int, took time.Duration)
	// versions is whether every subscriber of each service is on the same
	// version, and the newest version of each service.
	versions() (bool, []uint64)
	// arm prepares change id before it is made (see fleet.arm).
	arm(id int64, affected []bool, from []uint64) error
	// await waits for change id, made at t0, to reach every affected
	// subscriber; from is the replica it was made on (-1: none).
	await(ctx context.Context, id int64, t0 time.Time, timeout time.Duration, from int) (changeResult, error)
	disarm()
	errFrameCount() int64
	// describe says, when subscribers do not converge, where they are.
	describe() string
	closeAll()
}

// changeResult is one change as the subscribers saw it: when the last
// applied it, when each did, and when the last one on a replica other than
// the one it was made on did.
type changeResult struct {
	last    time.Duration
	each    []time.Duration
	cross   time.Duration
	crossOK bool
}

func waitVersions(ctx context.Context, s subscriberSet, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if ok, _ := s.versions(); ok {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// newSubscriberSet spreads subscribers 0..n-1 over bases (subscriber i on
// bases[i mod len]) and over procs client processes; with procs ≤ 1 they
// live in this process.
func newSubscriberSet(bases, services []string, tokens map[string][]string, n, procs int) (subscriberSet, error) {
	if procs <= 1 {
		f := newFleet(bases[0], services, tokens, n)
		if len(bases) > 1 {
			f.spread(bases)
		}
		return localSet{f}, nil
	}
	rs := &remoteSet{services: len(services)}
	per := (n + procs - 1) / procs
	for lo := 0; lo < n; lo += per {
		p, err := startClientProc(clientRequest{Op: "setup", Bases: bases, Services: services, Tokens: tokens, Lo: lo, Hi: min(lo+per, n)})
		if err != nil {
			rs.closeAll()
			return nil, err
		}
		rs.procs = append(rs.procs, p)
	}
	return rs, nil
}

// localSet is a fleet in this process.
type localSet struct{ f *fleet }

func (l localSet) connectAll(ctx context.Context, par int) (int, time.Duration) {
	return l.f.connectAll(ctx, par)
}
func (l localSet) versions() (bool, []uint64) { return l.f.converged() }
func (l localSet) arm(id int64, affected []bool, from []uint64) error {
	l.f.arm(id, affected, from)
	return nil
}
func (l localSet) disarm()              { l.f.change.Store(0) }
func (l localSet) errFrameCount() int64 { return l.f.errFrames.Load() }
func (l localSet) closeAll()            { l.f.closeAll() }
func (l localSet) describe() string     { return l.f.describe() }
func (l localSet) await(ctx context.Context, id int64, t0 time.Time, timeout time.Duration, from int) (changeResult, error) {
	var r changeResult
	var err error
	r.last, r.each, err = l.f.await(ctx, id, t0, timeout)
	if from >= 0 {
		r.cross, r.crossOK = l.f.lastOnOthers(id, t0, from)
	}
	return r, err
}

// clientRequest and clientReply are one line each on a client process's
// stdin and stdout.
type clientRequest struct {
	Op string `json:"op"` // setup, connect, versions, arm, await, disarm, errframes
	// setup: the whole fleet's endpoints, and this process's slice [Lo, Hi)
	Bases    []string            `json:"bases,omitempty"`
	Services []string            `json:"services,omitempty"`
	Tokens   map[string][]string `json:"tokens,omitempty"`
	Lo       int                 `json:"lo,omitempty"`
	Hi       int                 `json:"hi,omitempty"`
	Par      int                 `json:"par,omitempty"`
	// arm and await
	ID        int64    `json:"id,omitempty"`
	Affected  []bool   `json:"affected,omitempty"`
	From      []uint64 `json:"from,omitempty"`
	T0        int64    `json:"t0,omitempty"` // unix nanoseconds
	TimeoutNs int64    `json:"timeout_ns,omitempty"`
	Replica   int      `json:"replica,omitempty"`
}

type clientReply struct {
	Err       string   `json:"err,omitempty"`
	Failed    int      `json:"failed,omitempty"`
	TookNs    int64    `json:"took_ns,omitempty"`
	OK        bool     `json:"ok,omitempty"`
	Min       []uint64 `json:"min,omitempty"`
	Max       []uint64 `json:"max,omitempty"`
	Seen      []bool   `json:"seen,omitempty"`
	Last      int64    `json:"last,omitempty"`
	Each      []int64  `json:"each,omitempty"`
	Cross     int64    `json:"cross,omitempty"`
	CrossOK   bool     `json:"cross_ok,omitempty"`
	ErrFrames int64    `json:"err_frames,omitempty"`
}

// clientProc is one child process holding a slice of the subscribers.
type clientProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	enc    *json.Encoder
	dec    *json.Decoder
	mu     sync.Mutex
	exited chan struct{}
}

func startClientProc(setup clientRequest) (*clientProc, error) {
	cmd, stdin, out, err := startSelf("prop-clients")
	if err != nil {
		return nil, err
	}
	p := &clientProc{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), dec: json.NewDecoder(out), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	if _, err := p.call(setup); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (p *clientProc) call(req clientRequest) (clientReply, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rep clientReply
	if err := p.enc.Encode(req); err != nil {
		return rep, fmt.Errorf("client process: %w", err)
	}
	if err := p.dec.Decode(&rep); err != nil {
		return rep, fmt.Errorf("client process: %w", err)
	}
	if rep.Err != "" {
		return rep, errors.New(rep.Err)
	}
	return rep, nil
}

// stop closes its stdin, which ends it, and kills it if it lingers.
func (p *clientProc) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// remoteSet is a fleet split over client processes.
type remoteSet struct {
	procs    []*clientProc
	services int
}

// each calls every process at once and returns their replies in order.
func (r *remoteSet) each(req func(i int) clientRequest) ([]clientReply, error) {
	reps := make([]clientReply, len(r.procs))
	errs := make([]error, len(r.procs))
	var wg sync.WaitGroup
	for i, p := range r.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], errs[i] = p.call(req(i))
		}()
	}
	wg.Wait()
	return reps, errors.Join(errs...)
}

func (r *remoteSet) connectAll(ctx context.Context, par int) (int, time.Duration) {
	start := time.Now()
	per := max(1, par/len(r.procs))
	reps, err := r.each(func(int) clientRequest { return clientRequest{Op: "connect", Par: per} })
	failed := 0
	for _, rep := range reps {
		failed += rep.Failed
	}
	if err != nil && failed == 0 {
		failed = 1 // a client process failed: count it, so that the run stops
	}
	return failed, time.Since(start)
}

func (r *remoteSet) versions() (bool, []uint64) {
	reps, err := r.each(func(int) clientRequest { return clientRequest{Op: "versions"} })
	vs := make([]uint64, r.services)
	if err != nil {
		return false, vs
	}
	lo := make([]uint64, r.services)
	seen := make([]bool, r.services)
	ok := true
	for _, rep := range reps {
		ok = ok && rep.OK
		for s := range min(len(rep.Seen), r.services) {
			if !rep.Seen[s] {
				continue
			}
			if !seen[s] {
				lo[s], vs[s], seen[s] = rep.Min[s], rep.Max[s], true
				continue
			}
			lo[s], vs[s] = min(lo[s], rep.Min[s]), max(vs[s], rep.Max[s])
		}
	}
	for s := range vs {
		if seen[s] && lo[s] != vs[s] {
			ok = false
		}
	}
	return ok, vs
}

func (r *remoteSet) arm(id int64, affected []bool, from []uint64) error {
	_, err := r.each(func(int) clientRequest { return clientRequest{Op: "arm", ID: id, Affected: affected, From: from} })
	return err
}

func (r *remoteSet) await(ctx context.Context, id int64, t0 time.Time, timeout time.Duration, from int) (changeResult, error) {
	var res changeResult
	reps, err := r.each(func(int) clientRequest {
		return clientRequest{Op: "await", ID: id, T0: t0.UnixNano(), TimeoutNs: int64(timeout), Replica: from}
	})
	for _, rep := range reps {
		res.last = max(res.last, time.Duration(rep.Last))
		for _, d := range rep.Each {
			res.each = append(res.each, time.Duration(d))
		}
		if rep.CrossOK {
			res.cross, res.crossOK = max(res.cross, time.Duration(rep.Cross)), true
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	return res, err
}

func (r *remoteSet) disarm() {
	_, _ = r.each(func(int) clientRequest { return clientRequest{Op: "disarm"} })
}

func (r *remoteSet) errFrameCount() int64 {
	reps, _ := r.each(func(int) clientRequest { return clientRequest{Op: "errframes"} })
	var n int64
	for _, rep := range reps {
		n += rep.ErrFrames
	}
	return n
}

func (r *remoteSet) describe() string {
	ok, vs := r.versions()
	return fmt.Sprintf("converged %v, newest versions %v", ok, vs)
}

func (r *remoteSet) closeAll() {
	var wg sync.WaitGroup
	for _, p := range r.procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
}

// propClientsCmd is a client process: it holds subscribers [lo, hi) of the
// fleet its parent describes and answers its requests until its stdin
// closes (the parent is done or gone).
func propClientsCmd(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("prop-clients", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dec, enc := json.NewDecoder(in), json.NewEncoder(out)
	var f *fleet
	defer func() {
		if f != nil {
			f.closeAll()
		}
	}()
	for {
		var req clientRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var rep clientReply
		switch {
		case req.Op == "setup":
			for _, b := range req.Bases {
				if err := checkLoopbackURL("http" + b[len("ws"):]); err != nil {
					return err
				}
			}
			f = newFleetRange(req.Bases[0], req.Services, req.Tokens, req.Lo, req.Hi)
			if len(req.Bases) > 1 {
				f.spread(req.Bases)
			}
		case f == nil:
			rep.Err = "prop-clients: setup first"
		case req.Op == "connect":
			var took time.Duration
			rep.Failed, took = f.connectAll(ctx, req.Par)
			rep.TookNs = int64(took)
		case req.Op == "versions":
			rep.OK, rep.Min, rep.Max, rep.Seen = f.versionRange()
		case req.Op == "arm":
			f.arm(req.ID, req.Affected, req.From)
		case req.Op == "await":
			t0 := time.Unix(0, req.T0)
			last, each, err := f.await(ctx, req.ID, t0, time.Duration(req.TimeoutNs))
			rep.Last = int64(last)
			rep.Each = make([]int64, len(each))
			for i, d := range each {
				rep.Each[i] = int64(d)
			}
			if req.Replica >= 0 {
				c, ok := f.lastOnOthers(req.ID, t0, req.Replica)
				rep.Cross, rep.CrossOK = int64(c), ok
			}
			if err != nil {
				rep.Err = err.Error()
			}
		case req.Op == "disarm":
			f.change.Store(0)
		case req.Op == "errframes":
			rep.ErrFrames = f.errFrames.Load()
		default:
			rep.Err = "prop-clients: unknown request " + req.Op
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
}
