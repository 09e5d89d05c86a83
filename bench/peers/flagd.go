package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// flagd's in-process providers hold one server stream per client:
// flagd.sync.v1.FlagSyncService/SyncFlags, which sends the whole flag
// configuration at once and again after every change. The client here
// speaks it with a raw-bytes gRPC codec and encodes the two messages it
// needs by hand (field numbers from flagd.sync.v1's sync.proto), so that
// it depends on no generated code.
const syncFlagsMethod = "/flagd.sync.v1.FlagSyncService/SyncFlags"

// Field numbers of flagd.sync.v1.SyncFlagsRequest and SyncFlagsResponse.
const (
	reqProviderID     protowire.Number = 1 // string
	reqSelector       protowire.Number = 2 // string
	respFlagConfig    protowire.Number = 1 // string: the flag JSON
	respSyncContext   protowire.Number = 2 // google.protobuf.Struct, unused here
	flagdLevelFlag                     = "level"
	flagdProviderName                  = "peers"
)

// encodeSyncFlagsRequest is SyncFlagsRequest{provider_id, selector} on the
// wire; proto3 leaves empty strings out.
func encodeSyncFlagsRequest(providerID, selector string) []byte {
	var b []byte
	if providerID != "" {
		b = protowire.AppendTag(b, reqProviderID, protowire.BytesType)
		b = protowire.AppendString(b, providerID)
	}
	if selector != "" {
		b = protowire.AppendTag(b, reqSelector, protowire.BytesType)
		b = protowire.AppendString(b, selector)
	}
	return b
}

// decodeSyncFlagsResponse returns flag_configuration from a
// SyncFlagsResponse, skipping the fields it does not use. As in any
// protobuf decoder, the last occurrence of a field wins.
func decodeSyncFlagsResponse(b []byte) (string, error) {
	var cfg string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", fmt.Errorf("sync response: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == respFlagConfig {
			if typ != protowire.BytesType {
				return "", fmt.Errorf("sync response: flag_configuration has wire type %d", typ)
			}
			v, n := protowire.ConsumeString(b)
			if n < 0 {
				return "", fmt.Errorf("sync response: %w", protowire.ParseError(n))
			}
			cfg, b = v, b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", fmt.Errorf("sync response: field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return cfg, nil
}

// flagdFlag is one flag of flagd's flag definition, as far as a provider
// evaluating without targeting needs it.
type flagdFlag struct {
	State          string                     `json:"state"`
	DefaultVariant string                     `json:"defaultVariant"`
	Variants       map[string]json.RawMessage `json:"variants"`
	Targeting      json.RawMessage            `json:"targeting,omitempty"`
	Metadata       map[string]any             `json:"metadata,omitempty"`
}

// parseFlagConfig parses a whole flag configuration and resolves every
// enabled flag to its default variant's value, as an in-process provider
// builds its store before it answers.
func parseFlagConfig(cfg string) (map[string]any, error) {
	var doc struct {
		Flags map[string]flagdFlag `json:"flags"`
	}
	if err := json.Unmarshal([]byte(cfg), &doc); err != nil {
		return nil, fmt.Errorf("flag configuration: %w", err)
	}
	if doc.Flags == nil {
		return nil, errors.New("flag configuration: no flags")
	}
	out := make(map[string]any, len(doc.Flags))
	for key, f := range doc.Flags {
		if f.State != "ENABLED" {
			continue
		}
		raw, ok := f.Variants[f.DefaultVariant]
		if !ok {
			return nil, fmt.Errorf("flag %q: default variant %q is not a variant", key, f.DefaultVariant)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("flag %q: %w", key, err)
		}
		out[key] = v
	}
	return out, nil
}

// levelOf is the benchmark flag's value, or -1 when it is absent or not a
// whole number.
func levelOf(flags map[string]any) int {
	v, ok := flags[flagdLevelFlag].(float64)
	if !ok || v != float64(int(v)) {
		return -1
	}
	return int(v)
}

// flagdFlagFile is flagd's flag definition for a level: the level itself
// as an integer flag and the four flags of Brownout's default flag sets,
// so that a change carries what a Brownout state carries.
func flagdFlagFile(level int) []byte {
	on := map[int][]string{0: {"analytics", "personalization", "real_time_data", "recommendations"}, 1: {"real_time_data"}}[level]
	flags := map[string]any{
		flagdLevelFlag: map[string]any{"state": "ENABLED", "defaultVariant": strconv.Itoa(level),
			"variants": map[string]int{"0": 0, "1": 1, "2": 2, "3": 3}},
	}
	for _, name := range []string{"analytics", "personalization", "real_time_data", "recommendations"} {
		def := "off"
		for _, o := range on {
			if o == name {
				def = "on"
			}
		}
		flags[name] = map[string]any{"state": "ENABLED", "defaultVariant": def,
			"variants": map[string]bool{"on": true, "off": false}}
	}
	data, _ := json.Marshal(map[string]any{"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": flags})
	return data
}

// writeFlagFile replaces path atomically: flagd's fsnotify watcher sees
// the old file removed, watches the new one and reads it whole, where an
// in-place rewrite could be read half-written or empty.
func writeFlagFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// rawCodec passes protobuf bytes through gRPC untouched; its name keeps
// the content type application/grpc+proto that flagd expects.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*b = data.Materialize()
	return nil
}

// flagdServer is a running flagd and how to reach its sync port.
type flagdServer struct {
	*proc
	file string
	addr string
	// netns is flagd's own network namespace, or "" when it shares the
	// tool's.
	netns string
}

// startFlagd runs bin on a flag file in dir with every port chosen
// explicitly. flagd binds its TCP ports on every interface and has no
// option to bind one address, so where the kernel allows it flagd runs in
// a network namespace of its own that only this tool dials into: nothing
// outside the machine's loopback can reach it.
func startFlagd(ctx context.Context, bin, dir string, stderr io.Writer) (*flagdServer, error) {
	s := &flagdServer{file: filepath.Join(dir, "flags.json")}
	if err := writeFlagFile(s.file, flagdFlagFile(0)); err != nil {
		return nil, err
	}
	var ports [4]string
	for i := range ports {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		_, ports[i], _ = net.SplitHostPort(a)
	}
	s.addr = "127.0.0.1:" + ports[1]
	sources, _ := json.Marshal([]map[string]string{{"uri": s.file, "provider": "fsnotify"}})
	lf, err := os.Create(filepath.Join(dir, "flagd.log"))
	if err != nil {
		return nil, err
	}
	start := func(isolate bool) (*exec.Cmd, error) {
		cmd := exec.Command(bin, "start", "--sources", string(sources),
			"--port", ports[0], "--sync-port", ports[1], "--management-port", ports[2], "--ofrep-port", ports[3])
		cmd.Stdout, cmd.Stderr = lf, lf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if isolate {
			cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNET
		}
		return cmd, cmd.Start()
	}
	cmd, err := start(true)
	if err != nil {
		fmt.Fprintf(stderr, "  flagd: no network namespace of its own (%v): its ports are open on every interface while it runs\n", err)
		if cmd, err = start(false); err != nil {
			lf.Close()
			return nil, err
		}
	} else {
		s.netns = "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/net"
	}
	s.proc = &proc{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); lf.Close(); close(s.exited) }()
	if s.netns != "" {
		if err := inNetns(s.netns, loopbackUp); err != nil {
			s.stop()
			return nil, fmt.Errorf("flagd's loopback: %w", err)
		}
	}
	// Ready once a stream delivers the first flag file.
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := s.dialClient(ctx, 2*time.Second)
		if err == nil {
			c.close()
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("flagd exited; see %s", filepath.Join(dir, "flagd.log"))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("flagd's sync stream not serving within 20s: %v; see %s", err, filepath.Join(dir, "flagd.log"))
		}
	}
}

// inNetns runs f on an OS thread moved into the network namespace at
// path, so that sockets f creates belong to it; the thread moves back
// before it serves any other goroutine.
func inNetns(path string, f func() error) error {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	ns, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns: %w", err)
	}
	ferr := f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// Still locked: the runtime ends this thread with the goroutine
		// rather than hand it to another one.
		return fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// loopbackUp brings up lo in the current thread's network namespace: a
// new namespace starts with it down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

func (s *flagdServer) dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	if s.netns == "" {
		return d.DialContext(ctx, "tcp", addr)
	}
	var c net.Conn
	err := inNetns(s.netns, func() error {
		var err error
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// change writes the flag file for level and returns when it is on disk.
func (s *flagdServer) change(level int) error {
	return writeFlagFile(s.file, flagdFlagFile(level))
}

// fdClient is one in-process provider's sync stream and the level it last
// resolved.
type fdClient struct {
	cc     *grpc.ClientConn
	cancel context.CancelFunc
	done   chan struct{}
	level  atomic.Int32
	at     atomic.Int64
	err    atomic.Pointer[error]
}

// dialClient opens a connection and a SyncFlags stream and returns once
// the first flag configuration has been applied.
func (s *flagdServer) dialClient(ctx context.Context, timeout time.Duration) (*fdClient, error) {
	cc, err := grpc.NewClient("passthrough:///"+s.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(s.dial),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	c := &fdClient{cc: cc, cancel: cancel, done: make(chan struct{})}
	c.level.Store(-1)
	stream, err := cc.NewStream(sctx, &grpc.StreamDesc{ServerStreams: true}, syncFlagsMethod)
	if err == nil {
		req := encodeSyncFlagsRequest(flagdProviderName, "")
		if err = stream.SendMsg(&req); err == nil {
			err = stream.CloseSend()
		}
	}
	if err != nil {
		cancel()
		_ = cc.Close()
		return nil, err
	}
	go c.read(stream)
	fail := func(err error) (*fdClient, error) { c.close(); return nil, err }
	t := time.NewTimer(timeout)
	defer t.Stop()
	for c.level.Load() < 0 {
		if e := c.err.Load(); e != nil {
			return fail(*e)
		}
		select {
		case <-t.C:
			return fail(errors.New("no flag configuration on the sync stream"))
		case <-time.After(2 * time.Millisecond):
		}
	}
	return c, nil
}

func (c *fdClient) read(stream grpc.ClientStream) {
	defer close(c.done)
	for {
		var msg []byte
		if err := stream.RecvMsg(&msg); err != nil {
			c.err.Store(&err)
			return
		}
		cfg, err := decodeSyncFlagsResponse(msg)
		if err == nil {
			var flags map[string]any
			if flags, err = parseFlagConfig(cfg); err == nil {
				if l := levelOf(flags); l >= 0 {
					c.at.Store(time.Now().UnixNano())
					c.level.Store(int32(l))
				}
			}
		}
		if err != nil {
			c.err.Store(&err)
		}
	}
}

func (c *fdClient) close() {
	c.cancel()
	_ = c.cc.Close()
	<-c.done
}

// fdFleet is N flagd in-process providers' streams.
type fdFleet struct {
	clients []*fdClient
}

func (f *fdFleet) connect(ctx context.Context, s *flagdServer, n, par int) error {
	f.clients = make([]*fdClient, n)
	sem := make(chan struct{}, par)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := s.dialClient(ctx, 20*time.Second)
			if err != nil {
				errs <- err
				return
			}
			f.clients[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return fmt.Errorf("flagd client: %w", err)
	}
	return nil
}

// change rewrites the flag file to level and waits until every client has
// resolved it.
func (f *fdFleet) change(ctx context.Context, s *flagdServer, level int) (time.Duration, error) {
	t0 := time.Now()
	if err := s.change(level); err != nil {
		return 0, err
	}
	return waitAll(ctx, t0, len(f.clients), func(i int) (bool, int64) {
		c := f.clients[i]
		return c.level.Load() == int32(level), c.at.Load()
	})
}

func (f *fdFleet) close() {
	var wg sync.WaitGroup
	for _, c := range f.clients {
		if c != nil {
			wg.Add(1)
			go func() { defer wg.Done(); c.close() }()
		}
	}
	wg.Wait()
}
