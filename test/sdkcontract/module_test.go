package sdkcontract_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/servertest"
	"github.com/brownout-io/brownout/sdk"
)

// These tests build applications outside the repository, as a team adopting
// the SDK would: their own go.mod, no go.work, the repository's modules
// pinned by a replace of their paths (what a user pinning an untagged
// pre-release does). They check what the SDK drags into such an app's
// module graph, and run the app against a real controller.

// controllerModules are the controller's dependencies; none may reach an
// app that imports only the SDK and its OpenFeature provider.
var controllerModules = []string{
	"github.com/go-chi/chi",
	"modernc.org/sqlite",
	"github.com/a-h/templ",
	"github.com/pressly/goose",
	"github.com/prometheus/",
	"github.com/chromedp/",
	"github.com/jackc/pgx",
	"github.com/brownout-io/brownout ", // the root module itself
}

func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// goCmd runs the go command in dir as outside any workspace.
func goCmd(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// newApp writes an application module requiring the given repository
// modules (paths relative to the repository root) with main.go as its
// program, tidies it and returns its directory.
func newApp(tb testing.TB, goVersion, mainGo string, modules ...string) string {
	tb.Helper()
	root := repoRoot(tb)
	dir := tb.TempDir()
	var gomod strings.Builder
	gomod.WriteString("module example.com/adopter\n\ngo " + goVersion + "\n")
	for _, m := range modules {
		path := "github.com/brownout-io/brownout/" + m
		gomod.WriteString("\nrequire " + path + " v0.1.0\n")
		gomod.WriteString("replace " + path + " => " + filepath.Join(root, m) + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(mainGo), 0o644); err != nil {
		tb.Fatal(err)
	}
	goCmd(tb, dir, "mod", "tidy")
	return dir
}

// checkGraph asserts the app's module graph has at most limit modules
// (itself included) and none of the controller's.
func checkGraph(tb testing.TB, dir string, limit int) []string {
	tb.Helper()
	mods := strings.Split(strings.TrimSpace(goCmd(tb, dir, "list", "-m", "all")), "\n")
	for _, m := range mods {
		for _, bad := range controllerModules {
			if strings.HasPrefix(m+" ", bad) {
				tb.Errorf("the app's module graph holds the controller's dependency %q", m)
			}
		}
	}
	if len(mods) > limit {
		tb.Errorf("the app's module graph has %d modules, want at most %d:\n%s", len(mods), limit, strings.Join(mods, "\n"))
	}
	return mods
}

const sdkOnlyApp = `package main

import (
	"context"
	"fmt"
	"os"

	"github.com/brownout-io/brownout/sdk"
)

func main() {
	host, _ := os.Hostname()
	c, err := sdk.Connect(context.Background(), "http://127.0.0.1:1", "checkout", host)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Println(c.Level())
}
`

// An app that imports only the SDK gets the SDK, the websocket library and
// gopsutil, and keeps its own go directive.
//
// The graph holds 15 modules: the app, the SDK, the websocket library,
// gopsutil and its platform helpers (x/sys, tklauser's two, purego, go-ole,
// wmi, plan9stats, perfstat), and three modules gopsutil's go.mod requires
// for its own tests (testify, yaml, go-cmp), which appear in the graph but
// compile into nothing. What compiles into a Linux binary is checked
// separately: the app and six modules (docs/releasing.md).
func TestModuleGraphOfAnSDKApp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an app outside the tree")
	}
	dir := newApp(t, "1.26.0", sdkOnlyApp, "sdk")
	mods := checkGraph(t, dir, 15)
	t.Logf("%d modules in the graph", len(mods))
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	built := map[string]bool{}
	for _, m := range strings.Fields(string(out)) {
		built[m] = true
	}
	if len(built) > 7 {
		t.Errorf("%d modules compile into the app, want at most 7: %v", len(built), built)
	}
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(gomod), "\ngo 1.26.0\n") {
		t.Errorf("importing the SDK raised the app's go directive:\n%s", gomod)
	}
	goCmd(t, dir, "build", "-o", filepath.Join(t.TempDir(), "app"), ".")
}

const apiToolApp = `package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"

	"github.com/brownout-io/brownout/sdk/api"
)

func main() {
	req, _ := http.NewRequest(http.MethodGet, os.Getenv("BROWNOUT_URL")+"/api/v1/services/checkout", nil)
	req.Header.Set("Authorization", "Bearer "+os.Getenv("BROWNOUT_TOKEN"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var v api.ServiceView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		panic(err)
	}
	fmt.Printf("%s level=%d instances=%d\n", v.Name, v.Level, len(v.Instances))
}
`

// A tool that reads the REST API with the sdk's API types builds only the
// standard library and the sdk module: gopsutil's requirements stay out of
// its graph because it builds none of gopsutil's packages (12 modules:
// the tool, the sdk and the sdk's own requirements).
func TestModuleGraphOfAnAPITool(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an app outside the tree")
	}
	dir := newApp(t, "1.26.0", apiToolApp, "sdk")
	checkGraph(t, dir, 12)
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	built := map[string]bool{}
	for _, m := range strings.Fields(string(out)) {
		built[m] = true
	}
	if len(built) != 2 || !built["github.com/brownout-io/brownout/sdk"] {
		t.Errorf("modules compiled into the tool: %v, want the tool and the sdk", built)
	}
	bin := filepath.Join(t.TempDir(), "tool")
	goCmd(t, dir, "build", "-o", bin, ".")

	srv := servertest.Start(t)
	report := map[string]any{"service": "checkout", "instance": "checkout-1", "cpu_percent": 10, "memory_percent": 20, "requests": 100, "errors": 0}
	srv.MustDo(t, http.MethodPost, "/api/v1/reports", srv.AdminToken, report, http.StatusAccepted, nil)
	run := exec.Command(bin)
	run.Env = append(os.Environ(), "BROWNOUT_URL="+srv.URL, "BROWNOUT_TOKEN="+srv.AdminToken)
	got, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("tool: %v\n%s", err, got)
	}
	if want := "checkout level=0 instances=1"; strings.TrimSpace(string(got)) != want {
		t.Fatalf("tool printed %q, want %q", got, want)
	}
}

const providerApp = `package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/brownout-io/brownout/sdk"
	brownoutof "github.com/brownout-io/brownout/sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature"
)

func main() {
	ctx := context.Background()
	host, err := os.Hostname()
	if err != nil {
		panic(err)
	}
	c, err := sdk.Connect(ctx, os.Getenv("BROWNOUT_URL"), "checkout", host,
		sdk.WithToken(os.Getenv("BROWNOUT_TOKEN")))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for deadline := time.Now().Add(20 * time.Second); c.State().Source != sdk.SourceController; {
		if time.Now().After(deadline) {
			fmt.Println("no state from the controller:", c.Err())
			os.Exit(1)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := openfeature.SetProviderAndWait(brownoutof.NewProvider(c)); err != nil {
		panic(err)
	}
	defer openfeature.Shutdown()
	flags := openfeature.NewClient("adopter")
	d, err := flags.BooleanValueDetails(ctx, "analytics", false, openfeature.EvaluationContext{})
	if err != nil {
		panic(err)
	}
	fmt.Printf("analytics=%v reason=%s level=%d\n", d.Value, d.Reason, c.Level())
}
`

// An app that imports the SDK and its OpenFeature provider resolves,
// builds and reads a real controller's flags through the OpenFeature API.
func TestModuleGraphOfAProviderAppAndRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an app outside the tree")
	}
	dir := newApp(t, "1.26.0", providerApp, "sdk", "sdk/openfeature")
	// The go-sdk brings its own requirements (godog, testify, x/text…):
	// 35 modules in all; docs/releasing.md lists them.
	mods := checkGraph(t, dir, 35)
	t.Logf("%d modules", len(mods))
	bin := filepath.Join(t.TempDir(), "app")
	goCmd(t, dir, "build", "-o", bin, ".")

	srv := servertest.Start(t)
	_, token := srv.Token(t, "sdk", "checkout")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "BROWNOUT_URL="+srv.URL, "BROWNOUT_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("app: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "analytics=true reason=STATIC level=0"; got != want {
		t.Fatalf("app printed %q, want %q", got, want)
	}
}

// readmeProgram returns the Go program of the README's SDK section.
func readmeProgram(tb testing.TB) string {
	tb.Helper()
	md, err := os.ReadFile(filepath.Join(repoRoot(tb), "README.md"))
	if err != nil {
		tb.Fatal(err)
	}
	_, section, ok := strings.Cut(string(md), "## A service adopting Brownout (Go SDK)")
	if !ok {
		tb.Fatal("README.md has no SDK section")
	}
	_, code, ok := strings.Cut(section, "```go\n")
	if !ok {
		tb.Fatal("the README's SDK section has no Go block")
	}
	code, _, _ = strings.Cut(code, "```")
	return code
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The README's SDK program, pasted into a new module outside the tree,
// resolves, builds and runs against a real controller: it connects under
// its host's name, serves the flags, sheds at ESSENTIAL, persists its state
// file in a directory it creates, and stops on an interrupt.
func TestREADMEServiceRunsOutsideTheTree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an app outside the tree")
	}
	dir := newApp(t, "1.26.0", readmeProgram(t), "sdk")
	checkGraph(t, dir, 15)
	bin := filepath.Join(t.TempDir(), "checkout")
	goCmd(t, dir, "build", "-o", bin, ".")

	srv := servertest.Start(t)
	_, token := srv.Token(t, "sdk", "checkout")
	addr := freeAddr(t)
	cache := t.TempDir()
	cmd := exec.Command(bin)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "BROWNOUT_URL="+srv.URL, "BROWNOUT_TOKEN="+token, "ADDR="+addr,
		"XDG_CACHE_HOME="+cache, "HOME="+cache)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	instance := sdk.InstanceName(mustHostname(t))
	waitFor(t, "the service connected under its host's name", func() bool {
		for _, in := range getService(t, srv, "checkout").Instances {
			if in.Name == instance {
				return true
			}
		}
		return false
	})
	// The SDK connects from Connect, before the program's listener is up:
	// wait for the listener too, or a loaded machine sees a refused dial.
	waitFor(t, "the service's listener", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if code, body := get("/products/1"); code != http.StatusOK || !strings.Contains(body, "you may also like") {
		t.Fatalf("GET /products/1 = %d %q", code, body)
	}
	override(t, srv, 2)
	waitFor(t, "shedding at ESSENTIAL", func() bool {
		code, _ := get("/recommendations")
		return code == http.StatusServiceUnavailable
	})
	if _, err := os.Stat(filepath.Join(cache, "checkout", "brownout.json")); err != nil {
		t.Fatalf("state file: %v", err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after an interrupt\n%s", out.String())
	}
}

func mustHostname(tb testing.TB) string {
	tb.Helper()
	h, err := os.Hostname()
	if err != nil {
		tb.Fatal(err)
	}
	return h
}
