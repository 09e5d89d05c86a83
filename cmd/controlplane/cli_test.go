package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/brownout-io/brownout/internal/app"
	"github.com/brownout-io/brownout/internal/servertest"
	"github.com/brownout-io/brownout/internal/storage/sqlite"
)

// cliResult is what one run of the binary's entry point produced.
type cliResult struct {
	stdout, stderr string
	err            error
}

// runAs runs the command line against srv with the given token; an empty
// token sends none.
func runAs(t *testing.T, srv *servertest.Server, token string, args ...string) cliResult {
	t.Helper()
	full := append([]string{}, args...)
	full = append(full, "--server", srv.URL)
	if token != "" {
		full = append(full, "--token", token)
	}
	var out, errOut bytes.Buffer
	err := run(full, &out, &errOut)
	return cliResult{stdout: out.String(), stderr: errOut.String(), err: err}
}

// mustRun runs as admin and fails the test on error.
func mustRun(t *testing.T, srv *servertest.Server, args ...string) string {
	t.Helper()
	r := runAs(t, srv, srv.AdminToken, args...)
	if r.err != nil {
		t.Fatalf("controlplane %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

// clearEnv keeps the developer's environment out of the tests.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"CONTROLPLANE_SERVER", "CONTROLPLANE_TOKEN", "BROWNOUT_TOKEN"} {
		t.Setenv(k, "")
	}
}

// startWithService runs a controller that knows service checkout.
func startWithService(t *testing.T) *servertest.Server {
	t.Helper()
	clearEnv(t)
	srv := servertest.Start(t)
	report := map[string]any{"service": "checkout", "instance": "checkout-1", "cpu_percent": 10, "memory_percent": 20, "requests": 100, "errors": 0}
	srv.MustDo(t, http.MethodPost, "/api/v1/reports", srv.AdminToken, report, http.StatusAccepted, nil)
	srv.MustDo(t, http.MethodGet, "/api/v1/services/checkout", srv.AdminToken, nil, http.StatusOK, nil)
	return srv
}

// row returns the table row of stdout that starts with first, or "".
func row(stdout, first string) string {
	for _, l := range strings.Split(stdout, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == first {
			return l
		}
	}
	return ""
}

var overrideID = regexp.MustCompile(`ovr_[0-9A-Za-z_-]+`)

func TestEmergencyRoundTripVisibleInStatus(t *testing.T) {
	srv := startWithService(t)

	out := mustRun(t, srv, "status")
	if !strings.Contains(out, "Leader: local (single replica)") {
		t.Fatalf("status does not name the leader:\n%s", out)
	}
	if got := row(out, "checkout"); !strings.Contains(got, "0 FULL") || strings.Contains(got, "emergency") {
		t.Fatalf("before emergency, checkout row = %q, want level 0 FULL and no override\n%s", got, out)
	}
	if strings.Contains(out, "EMERGENCY") {
		t.Fatalf("before emergency, status shows a banner:\n%s", out)
	}

	out = mustRun(t, srv, "emergency", "on", "--reason", "database failover", "--ttl", "30m")
	if !strings.Contains(out, "Emergency mode ON: every service forced to 3 MAINTENANCE") || !overrideID.MatchString(out) {
		t.Fatalf("emergency on printed %q, want a confirmation with the override id", out)
	}

	out = mustRun(t, srv, "status")
	if !strings.Contains(out, "EMERGENCY MODE ON") || !strings.Contains(out, "database failover") {
		t.Fatalf("status during emergency lacks the banner with the reason:\n%s", out)
	}
	got := row(out, "checkout")
	for _, want := range []string{"3 MAINTENANCE", "0 FULL", "(emergency)"} {
		if !strings.Contains(got, want) {
			t.Errorf("checkout row during emergency = %q, want it to contain %q", got, want)
		}
	}

	out = mustRun(t, srv, "status", "checkout")
	for _, want := range []string{"Service:", "checkout", "3 MAINTENANCE (computed: 0 FULL)", "emergency: every service pinned", "checkout-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("status checkout during emergency lacks %q:\n%s", want, out)
		}
	}

	out = mustRun(t, srv, "emergency", "status")
	if !strings.Contains(out, "Emergency mode is ON") {
		t.Errorf("emergency status = %q, want ON", out)
	}

	out = mustRun(t, srv, "emergency", "off")
	if !strings.Contains(out, "Emergency mode OFF") {
		t.Fatalf("emergency off printed %q", out)
	}
	out = mustRun(t, srv, "status")
	if strings.Contains(out, "EMERGENCY") {
		t.Errorf("status after emergency off still shows the banner:\n%s", out)
	}
	if got := row(out, "checkout"); !strings.Contains(got, "0 FULL") || strings.Contains(got, "3 MAINTENANCE") {
		t.Errorf("checkout row after emergency off = %q, want back at 0 FULL", got)
	}

	// Ending it twice is the API's 404, shown with its message.
	r := runAs(t, srv, srv.AdminToken, "emergency", "off")
	if r.err == nil || r.err.Error() != "404 not_found: emergency mode is not active" {
		t.Errorf("second emergency off: err = %v, want the API's 404 message", r.err)
	}
}

func TestOverrideSetListClear(t *testing.T) {
	srv := startWithService(t)

	out := mustRun(t, srv, "override", "set", "--service", "checkout", "--level", "ESSENTIAL", "--reason", "shed load before the sale", "--ttl", "15m")
	id := overrideID.FindString(out)
	if id == "" || !strings.Contains(out, "checkout pinned to 2 ESSENTIAL") {
		t.Fatalf("override set printed %q, want the id and what it pins", out)
	}

	out = mustRun(t, srv, "override", "list")
	got := row(out, id)
	if got == "" || !strings.Contains(got, "checkout") || !strings.Contains(got, "2 ESSENTIAL") || !strings.Contains(got, "shed load before the sale") {
		t.Fatalf("override list row for %s = %q\n%s", id, got, out)
	}
	if strings.Contains(got, "never") {
		t.Errorf("override list row %q says it never expires; it was set with --ttl 15m", got)
	}

	if got := row(mustRun(t, srv, "status"), "checkout"); !strings.Contains(got, "2 ESSENTIAL") || !strings.Contains(got, id) {
		t.Errorf("status row during override = %q, want 2 ESSENTIAL and marker %s", got, id)
	}

	// --json prints the API's answer.
	var list struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, srv, "override", "list", "--json")), &list); err != nil || len(list.Items) != 1 || list.Items[0].ID != id {
		t.Errorf("override list --json = %+v (err %v), want one item %s", list, err, id)
	}

	out = mustRun(t, srv, "override", "clear", id)
	if !strings.Contains(out, id+" cleared") {
		t.Errorf("override clear printed %q", out)
	}
	if out := mustRun(t, srv, "override", "list"); !strings.Contains(out, "No active overrides") {
		t.Errorf("override list after clear:\n%s", out)
	}
	r := runAs(t, srv, srv.AdminToken, "override", "clear", id)
	if r.err == nil || !strings.HasPrefix(r.err.Error(), "409 conflict: ") {
		t.Errorf("clearing twice: err = %v, want the API's 409", r.err)
	}
}

func TestHistoryLevelsShowsOverrideChange(t *testing.T) {
	srv := startWithService(t)
	out := mustRun(t, srv, "override", "set", "--service", "checkout", "--level", "2", "--reason", "drill")
	id := overrideID.FindString(out)

	out = mustRun(t, srv, "history", "levels", "--service", "checkout", "--from", "1h", "--limit", "10")
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "0 FULL → 2 ESSENTIAL") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("history levels lacks the change 0 → 2:\n%s", out)
	}
	for _, want := range []string{"checkout", "override", "effective", id, "drill"} {
		if !strings.Contains(line, want) {
			t.Errorf("history line %q lacks %q", line, want)
		}
	}

	out = mustRun(t, srv, "history", "audit", "--actor", "admin")
	if got := row(out, "AT"); got == "" || !strings.Contains(out, "override.create") {
		t.Errorf("history audit lacks override.create:\n%s", out)
	}

	// A bad time goes to the controller, whose message names the field.
	r := runAs(t, srv, srv.AdminToken, "history", "levels", "--from", "yesterday")
	if r.err == nil || !strings.HasPrefix(r.err.Error(), "400 bad_request: from: ") {
		t.Errorf("history levels --from yesterday: err = %v, want the API's 400 naming from", r.err)
	}

	out = mustRun(t, srv, "history", "samples", "--service", "checkout", "--step", "1m")
	if !strings.HasPrefix(out, "checkout from ") {
		t.Errorf("history samples printed %q", out)
	}
	if r := runAs(t, srv, srv.AdminToken, "history", "samples"); exitCode(r.err) != 2 {
		t.Errorf("history samples without --service: err = %v, want a usage error", r.err)
	}
}

func TestTokenCreateListRevoke(t *testing.T) {
	srv := startWithService(t)

	r := runAs(t, srv, srv.AdminToken, "token", "create", "--scope", "viewer", "--name", "oncall-dashboard")
	if r.err != nil {
		t.Fatalf("token create: %v\n%s", r.err, r.stderr)
	}
	secret := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(secret, "bo_") || strings.Contains(secret, "\n") {
		t.Fatalf("token create stdout = %q, want the secret alone", r.stdout)
	}
	if !strings.Contains(r.stderr, "shown only this once") {
		t.Errorf("token create stderr = %q, want a warning that the secret is shown once", r.stderr)
	}
	id := regexp.MustCompile(`tok_[0-9a-f]+`).FindString(r.stderr)
	if id == "" {
		t.Fatalf("token create stderr = %q, want the token id", r.stderr)
	}

	// The new viewer token reads but may not change anything.
	if r := runAs(t, srv, secret, "status"); r.err != nil {
		t.Errorf("status with the viewer token: %v", r.err)
	}
	r = runAs(t, srv, secret, "emergency", "on", "--reason", "x")
	if r.err == nil || !strings.HasPrefix(r.err.Error(), "403 forbidden: ") {
		t.Errorf("emergency on with a viewer token: err = %v, want 403", r.err)
	}

	out := mustRun(t, srv, "token", "list")
	if got := row(out, id); !strings.Contains(got, "oncall-dashboard") || !strings.Contains(got, "viewer") || !strings.Contains(got, "active") {
		t.Errorf("token list row for %s = %q\n%s", id, got, out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("token list shows the secret")
	}

	if out := mustRun(t, srv, "token", "revoke", id); !strings.Contains(out, id+` ("oncall-dashboard") revoked`) {
		t.Errorf("token revoke printed %q", out)
	}
	if got := row(mustRun(t, srv, "token", "list"), id); !strings.Contains(got, "revoked") {
		t.Errorf("token list row after revoke = %q, want revoked", got)
	}
	r = runAs(t, srv, secret, "status")
	if r.err == nil || !strings.HasPrefix(r.err.Error(), "401 unauthorized: ") {
		t.Errorf("status with a revoked token: err = %v, want 401", r.err)
	}

	// An sdk token needs a service: the API says so.
	r = runAs(t, srv, srv.AdminToken, "token", "create", "--scope", "sdk", "--name", "x")
	if r.err == nil || r.err.Error() != "422 invalid: service: is required for an sdk token" {
		t.Errorf("sdk token without service: err = %v", r.err)
	}
}

func TestBadLevelShowsAPIMessage(t *testing.T) {
	srv := startWithService(t)
	r := runAs(t, srv, srv.AdminToken, "override", "set", "--service", "checkout", "--level", "7", "--reason", "typo")
	if r.err == nil {
		t.Fatal("override set --level 7 succeeded")
	}
	if got, want := r.err.Error(), "422 invalid: level: must be 0 to 3"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	if got := exitCode(r.err); got != 1 {
		t.Errorf("exit code = %d, want 1", got)
	}
	// A level that is neither a number nor a name never reaches the API.
	r = runAs(t, srv, srv.AdminToken, "override", "set", "--service", "checkout", "--level", "high", "--reason", "typo")
	if exitCode(r.err) != 2 || !strings.Contains(r.err.Error(), "FULL, REDUCED, ESSENTIAL, MAINTENANCE") {
		t.Errorf("--level high: err = %v, want a usage error listing the names", r.err)
	}
}

func TestMissingToken(t *testing.T) {
	clearEnv(t)
	srv := servertest.Start(t)
	r := runAs(t, srv, "", "status")
	if r.err == nil {
		t.Fatal("status without a token succeeded")
	}
	if !strings.Contains(r.err.Error(), "no API token") || !strings.Contains(r.err.Error(), "CONTROLPLANE_TOKEN") {
		t.Errorf("error = %q, want a hint naming --token and CONTROLPLANE_TOKEN", r.err)
	}
	if got := exitCode(r.err); got != 2 {
		t.Errorf("exit code = %d, want 2", got)
	}

	// BROWNOUT_TOKEN, the name "serve" prints, is the fallback.
	t.Setenv("BROWNOUT_TOKEN", srv.AdminToken)
	if r := runAs(t, srv, "", "status"); r.err != nil {
		t.Errorf("status with BROWNOUT_TOKEN: %v", r.err)
	}
	// A wrong token is the API's 401.
	r = runAs(t, srv, "bo_wrong", "status")
	if r.err == nil || !strings.HasPrefix(r.err.Error(), "401 unauthorized: ") {
		t.Errorf("wrong token: err = %v, want 401", r.err)
	}
}

func TestCommonFlagsAndEnvironment(t *testing.T) {
	srv := startWithService(t)
	// Common flags before the command.
	var out, errOut bytes.Buffer
	if err := run([]string{"--server", srv.URL, "--token", srv.AdminToken, "status", "--json"}, &out, &errOut); err != nil {
		t.Fatalf("leading flags: %v", err)
	}
	var list struct {
		Items []struct {
			Name string `json:"name"`
		} `json:"items"`
	}
	if err := json.Unmarshal(out.Bytes(), &list); err != nil || len(list.Items) != 1 || list.Items[0].Name != "checkout" {
		t.Errorf("status --json = %s (err %v), want one service checkout", out.String(), err)
	}
	// Environment, with a server given as host:port.
	t.Setenv("CONTROLPLANE_SERVER", strings.TrimPrefix(srv.URL, "http://"))
	t.Setenv("CONTROLPLANE_TOKEN", srv.AdminToken)
	out.Reset()
	if err := run([]string{"status", "checkout"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "checkout-1") {
		t.Errorf("status from environment: err %v, out %q", err, out.String())
	}
}

func TestConnectionRefusedHint(t *testing.T) {
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close()
	var out, errOut bytes.Buffer
	err = run([]string{"status", "--server", addr, "--token", "x"}, &out, &errOut)
	if err == nil {
		t.Fatal("status against a closed port succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "connection refused") || !strings.Contains(msg, addr) || !strings.Contains(msg, "--server") {
		t.Errorf("error = %q, want connection refused with the URL and a hint", msg)
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error %q spans lines", msg)
	}
}

func TestUsageErrors(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		args     []string
		wantCode int
		wantMsg  string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"override"}, 2, "override: missing subcommand (set, clear, list)"},
		{[]string{"override", "frob"}, 2, `override: unknown subcommand "frob"`},
		{[]string{"override", "clear"}, 2, "override clear: missing argument"},
		{[]string{"override", "clear", "a", "b"}, 2, `unexpected argument "b"`},
		{[]string{"override", "set", "--level", "1", "--reason", "r"}, 2, "--service is required"},
		{[]string{"emergency", "on"}, 2, "--reason is required"},
		{[]string{"token", "create", "--scope", "admin"}, 2, "--name is required"},
		{[]string{"status", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"status", "--server", "ftp://x", "--token", "t"}, 2, "is not an http(s) URL"},
		{[]string{"status", "-h"}, 0, ""},
		{[]string{"history", "--help"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(tt.args, &out, &errOut)
			if got := exitCode(err); err == nil || got != tt.wantCode {
				t.Fatalf("err = %v (exit %d), want exit %d", err, got, tt.wantCode)
			}
			if tt.wantCode == 0 {
				if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "Usage: controlplane") {
					t.Errorf("help: err %v, stdout %q", err, out.String())
				}
				return
			}
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want a usageError containing %q", err, tt.wantMsg)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		var out, errOut bytes.Buffer
		if err := run([]string{arg}, &out, &errOut); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		for _, want := range []string{"controlplane ", "commit ", "go1."} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s printed %q, want it to contain %q", arg, out.String(), want)
			}
		}
	}
}

func TestWatchPrintsStateFrames(t *testing.T) {
	srv := startWithService(t)
	out := mustRun(t, srv, "watch", "checkout", "--frames", "1", "--instance", "w-1")
	var f struct {
		Type    string `json:"type"`
		Service string `json:"service"`
		Version uint64 `json:"version"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &f); err != nil || f.Type != "state" || f.Service != "checkout" || f.Version == 0 {
		t.Fatalf("watch printed %q (%v)", out, err)
	}
	if r := runAs(t, srv, srv.AdminToken, "watch"); r.err == nil {
		t.Fatal("watch without a service succeeded")
	}
}

func TestMigrateStatus(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, app.DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	var out, errOut bytes.Buffer
	if err := run([]string{"migrate", "status", "--data", dir}, &out, &errOut); err != nil {
		t.Fatalf("migrate status: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "0001_init.sql") || !strings.Contains(out.String(), "Up to date.") || strings.Contains(out.String(), "pending") {
		t.Fatalf("migrate status printed:\n%s", out.String())
	}
	if err := run([]string{"migrate", "status", "--data", t.TempDir()}, &out, &errOut); err == nil {
		t.Fatal("migrate status on an empty directory succeeded")
	}
	if err := run([]string{"migrate", "down"}, &out, &errOut); err == nil {
		t.Fatal("migrate down accepted")
	}
}

func TestServiceRetireRefusedWhileReporting(t *testing.T) {
	srv := startWithService(t)
	r := runAs(t, srv, srv.AdminToken, "service", "retire", "checkout")
	if r.err == nil || !strings.Contains(r.err.Error(), "live instance") {
		t.Fatalf("retire of a reporting service: %v", r.err)
	}
	r = runAs(t, srv, srv.AdminToken, "service", "retire", "nope")
	if r.err == nil || !strings.Contains(r.err.Error(), "404") {
		t.Fatalf("retire of an unknown service: %v", r.err)
	}
}

// Every operator subcommand is listed in the top-level usage text.
func TestUsageListsEveryCommand(t *testing.T) {
	for _, g := range commandGroups() {
		for _, s := range g.subs {
			if want := "controlplane " + g.name + " " + s.name; !strings.Contains(usage, want) {
				t.Errorf("the usage text does not list %q", want)
			}
		}
	}
}
