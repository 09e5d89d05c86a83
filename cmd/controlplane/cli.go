package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/brownout-io/brownout/sdk/api"
	"github.com/brownout-io/brownout/sdk/wire"
)

// defaultServer is where the operator subcommands look for a controller
// when neither --server nor CONTROLPLANE_SERVER says otherwise.
const defaultServer = "http://127.0.0.1:8080"

// options are the flags every operator subcommand takes.
type options struct {
	server  string
	token   string
	json    bool
	timeout time.Duration
}

// defaultOptions reads the environment: CONTROLPLANE_SERVER, then
// CONTROLPLANE_TOKEN or BROWNOUT_TOKEN (the name "serve" prints).
func defaultOptions() options {
	o := options{server: defaultServer, timeout: 10 * time.Second}
	if v := os.Getenv("CONTROLPLANE_SERVER"); v != "" {
		o.server = v
	}
	o.token = os.Getenv("CONTROLPLANE_TOKEN")
	if o.token == "" {
		o.token = os.Getenv("BROWNOUT_TOKEN")
	}
	return o
}

// cli runs one operator subcommand.
type cli struct {
	stdout, stderr io.Writer
	opts           options
}

// subcommand is one leaf of the command tree, e.g. "override set".
type subcommand struct {
	name    string
	summary string
	run     func(c *cli, args []string) error
}

// group is a command with subcommands, e.g. "override".
type group struct {
	name    string
	summary string
	subs    []subcommand
}

func commandGroups() []group {
	return []group{
		{"emergency", "force or end emergency mode (every service at level 3)", []subcommand{
			{"on", "force every service to level 3 (MAINTENANCE)", (*cli).emergencyOn},
			{"off", "end emergency mode", (*cli).emergencyOff},
			{"status", "say whether emergency mode is on", (*cli).emergencyStatus},
		}},
		{"override", "pin the level of one service or of all", []subcommand{
			{"set", "create an override", (*cli).overrideSet},
			{"clear", "clear an override by id", (*cli).overrideClear},
			{"list", "list the active overrides", (*cli).overrideList},
		}},
		{"history", "read level changes, signal samples and the audit log", []subcommand{
			{"levels", "level changes with their cause, newest first", (*cli).historyLevels},
			{"samples", "a service's signals over time", (*cli).historySamples},
			{"audit", "every operator action, newest first", (*cli).historyAudit},
		}},
		{"service", "manage services' lifecycle", []subcommand{
			{"retire", "retire a service no instance reports for (history kept)", (*cli).serviceRetire},
		}},
		{"token", "create, list and revoke API tokens", []subcommand{
			{"create", "create a token and print its secret once", (*cli).tokenCreate},
			{"list", "list tokens, revoked ones included", (*cli).tokenList},
			{"revoke", "revoke a token and close its connections", (*cli).tokenRevoke},
		}},
		{"webhook", "create, list and delete webhooks", []subcommand{
			{"create", "create a webhook and print its signing secret once", (*cli).webhookCreate},
			{"list", "list webhooks", (*cli).webhookList},
			{"delete", "delete a webhook and its pending deliveries", (*cli).webhookDelete},
		}},
		{"deadletter", "list and redrive webhook deliveries that ran out of attempts", []subcommand{
			{"list", "list dead letters with their last error, newest first", (*cli).deadLetterList},
			{"redrive", "send a dead letter again", (*cli).deadLetterRedrive},
		}},
	}
}

// cliCmd runs every subcommand but "serve". Common flags may come before
// the command ("controlplane --server X status") or anywhere after it.
func cliCmd(args []string, stdout, stderr io.Writer) error {
	c := &cli{stdout: stdout, stderr: stderr, opts: defaultOptions()}
	fs := flag.NewFlagSet("controlplane", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.commonFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return err
		}
		return usageError{fmt.Sprintf("%v (run \"controlplane -h\" for usage)", err)}
	}
	args = fs.Args()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "status":
		return c.status(args[1:])
	case "watch":
		return c.watch(args[1:])
	case "backup":
		return c.backup(args[1:])
	case "restore":
		return c.restore(args[1:])
	case "migrate":
		return c.migrateCmd(args[1:])
	}
	for _, g := range commandGroups() {
		if g.name != args[0] {
			continue
		}
		if len(args) < 2 || isHelp(args[1]) {
			if len(args) >= 2 {
				c.groupHelp(c.stdout, g)
				return flag.ErrHelp
			}
			c.groupHelp(c.stderr, g)
			return usageError{fmt.Sprintf("%s: missing subcommand (%s)", g.name, subNames(g))}
		}
		for _, s := range g.subs {
			if s.name == args[1] {
				return s.run(c, args[2:])
			}
		}
		return usageError{fmt.Sprintf("%s: unknown subcommand %q (want %s)", g.name, args[1], subNames(g))}
	}
	return usageError{fmt.Sprintf("unknown command %q (run \"controlplane -h\" for the list)", args[0])}
}

func isHelp(s string) bool { return s == "-h" || s == "-help" || s == "--help" || s == "help" }

func subNames(g group) string {
	names := make([]string, len(g.subs))
	for i, s := range g.subs {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

func (c *cli) groupHelp(w io.Writer, g group) {
	fmt.Fprintf(w, "Usage: controlplane %s SUBCOMMAND [flags]\n\n%s.\n\nSubcommands:\n", g.name, upperFirst(g.summary))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range g.subs {
		fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.summary)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nRun \"controlplane %s SUBCOMMAND -h\" for its flags.\n", g.name)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// commonFlags registers the flags every subcommand takes. Their defaults
// are the current values, so flags given before the command carry over.
func (c *cli) commonFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.opts.server, "server", c.opts.server, "controller URL (env CONTROLPLANE_SERVER)")
	fs.Var(secretFlag{&c.opts.token}, "token", "API `secret` (env CONTROLPLANE_TOKEN, then BROWNOUT_TOKEN)")
	fs.BoolVar(&c.opts.json, "json", c.opts.json, "print the API's JSON answer instead of a table")
	fs.DurationVar(&c.opts.timeout, "timeout", c.opts.timeout, "give up on the controller after this long")
}

// secretFlag is a string flag that never shows its value, so that help
// text does not print a token taken from the environment.
type secretFlag struct{ p *string }

func (s secretFlag) String() string { return "" }

func (s secretFlag) Set(v string) error {
	*s.p = v
	return nil
}

// command is a leaf's flag set with its help text.
type command struct {
	*flag.FlagSet
	c        *cli
	name     string
	synopsis string
	help     string
}

func (c *cli) command(name, synopsis, help string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c.commonFlags(fs)
	return &command{FlagSet: fs, c: c, name: name, synopsis: synopsis, help: help}
}

func (cmd *command) printHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n", strings.TrimSpace("controlplane "+cmd.name+" "+cmd.synopsis), strings.TrimSpace(cmd.help))
	cmd.SetOutput(w)
	cmd.PrintDefaults()
	cmd.SetOutput(io.Discard)
}

// parse parses flags and positional arguments in any order, and checks
// the number of positional arguments against [min, max].
func (cmd *command) parse(args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := cmd.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				cmd.printHelp(cmd.c.stdout)
				return nil, err
			}
			return nil, cmd.usagef("%v", err)
		}
		args = cmd.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	switch {
	case len(pos) < min:
		return nil, cmd.usagef("missing argument: usage: controlplane %s %s", cmd.name, cmd.synopsis)
	case len(pos) > max:
		return nil, cmd.usagef("unexpected argument %q: usage: controlplane %s %s", pos[max], cmd.name, cmd.synopsis)
	}
	return pos, nil
}

// usagef returns a usage error that names the command and where its help is.
func (cmd *command) usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf("%s: %s (see \"controlplane %s -h\")", cmd.name, fmt.Sprintf(format, args...), cmd.name)}
}

// connect returns a client and a context bounded by --timeout.
func (c *cli) connect() (*client, context.Context, context.CancelFunc, error) {
	base, err := normalizeServer(c.opts.server)
	if err != nil {
		return nil, nil, nil, err
	}
	if c.opts.token == "" {
		return nil, nil, nil, usageError{"no API token: pass --token or set CONTROLPLANE_TOKEN (or BROWNOUT_TOKEN); \"controlplane serve\" prints where the admin token is kept"}
	}
	if c.opts.timeout <= 0 {
		return nil, nil, nil, usageError{"--timeout must be positive"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.timeout)
	return &client{base: base, token: c.opts.token, http: &http.Client{}}, ctx, cancel, nil
}

// printJSON prints an API answer as indented JSON.
func (c *cli) printJSON(raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		buf.Reset()
		buf.Write(bytes.TrimSpace(raw))
	}
	buf.WriteByte('\n')
	_, err := c.stdout.Write(buf.Bytes())
	return err
}

func (c *cli) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
}

// ---- status ----

func (c *cli) status(args []string) error {
	cmd := c.command("status", "[service]", `
Without a service: one line per service, worst level first: its effective
level, the computed level when an override hides it, the state version,
convergence (live instances on the current version / live instances),
signals and the override in force. A banner says when emergency mode is on;
a line names the leading replica and how many replicas there are.

With a service: its details, convergence and every instance.`)
	pos, err := cmd.parse(args, 0, 1)
	if err != nil {
		return err
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	if len(pos) == 1 {
		return c.statusOne(ctx, cl, pos[0])
	}
	svcs, raw, err := cl.services(ctx)
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	em, _, err := cl.emergency(ctx)
	if err != nil {
		return err
	}
	if em.Active && em.Override != nil {
		fmt.Fprintf(c.stdout, "EMERGENCY MODE ON: %s\n\n", describeEmergency(*em.Override))
	}
	if rs, err := cl.replicas(ctx); err == nil {
		fmt.Fprintln(c.stdout, describeReplicas(rs))
	}
	if len(svcs) == 0 {
		fmt.Fprintln(c.stdout, "No services yet: a service appears with its first report.")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "SERVICE\tLEVEL\tCOMPUTED\tVERSION\tCONVERGED\tCPU\tMEMORY\tERRORS\tOVERRIDE")
	for _, s := range svcs {
		computed := "-"
		if s.ComputedLevel != s.Level {
			computed = levelName(s.ComputedLevel)
		}
		conv := fmt.Sprintf("%d/%d", s.Convergence.OnCurrent, s.Convergence.Live)
		if s.Stale {
			conv += " stale"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", s.Name, levelName(s.Level), computed, s.Version, conv,
			pct(s.Signals.CPUPercent), pct(s.Signals.MemoryPercent), rate(s.Signals.ErrorRate), overrideMarker(s.Override))
	}
	return tw.Flush()
}

func (c *cli) statusOne(ctx context.Context, cl *client, name string) error {
	s, raw, err := cl.service(ctx, name)
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	tw := c.table()
	level := levelName(s.Level)
	if s.ComputedLevel != s.Level {
		level += " (computed: " + levelName(s.ComputedLevel) + ")"
	}
	fmt.Fprintf(tw, "Service:\t%s\n", s.Name)
	fmt.Fprintf(tw, "Level:\t%s\n", level)
	fmt.Fprintf(tw, "Version:\t%d\n", s.Version)
	if s.Override != nil {
		fmt.Fprintf(tw, "Override:\t%s\n", describeOverride(*s.Override))
	} else {
		fmt.Fprintf(tw, "Override:\tnone\n")
	}
	cause := s.Cause
	if s.Detail != "" {
		cause += ": " + s.Detail
	}
	fmt.Fprintf(tw, "Cause:\t%s\n", cause)
	fmt.Fprintf(tw, "Changed at:\t%s\n", fmtTime(s.ChangedAt))
	stale := ""
	if s.Stale {
		stale = " (stale: no live instance; level held)"
	}
	fmt.Fprintf(tw, "Signals:\tcpu %s, memory %s, error rate %s%s\n", pct(s.Signals.CPUPercent), pct(s.Signals.MemoryPercent), rate(s.Signals.ErrorRate), stale)
	conv := fmt.Sprintf("%d of %d live instances on version %d", s.Convergence.OnCurrent, s.Convergence.Live, s.Version)
	if s.Convergence.SlowestAck != "" {
		conv += ", slowest ack " + s.Convergence.SlowestAck
	}
	if len(s.Convergence.Behind) > 0 {
		conv += "; behind: " + strings.Join(s.Convergence.Behind, ", ")
	}
	fmt.Fprintf(tw, "Convergence:\t%s\n", conv)
	fmt.Fprintf(tw, "Subscribers:\t%d\n", s.Subscribers)
	fmt.Fprintf(tw, "Thresholds:\t%s\n", ownOrGlobal(s.CustomThresholds))
	fmt.Fprintf(tw, "Flag sets:\t%s\n", ownOrGlobal(s.CustomFlags))
	fmt.Fprintf(tw, "Flags:\t%s\n", fmtFlags(s.Flags))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	if len(s.Instances) == 0 {
		fmt.Fprintln(c.stdout, "No instances.")
		return nil
	}
	tw = c.table()
	fmt.Fprintln(tw, "INSTANCE\tSTATE\tVERSION\tLAST SEEN\tCPU\tMEMORY\tERRORS\tACK LATENCY")
	for _, in := range s.Instances {
		state := "reporting"
		switch {
		case in.Stale:
			state = "stale"
		case in.Connected:
			state = "connected"
		}
		ack := in.AckLatency
		if ack == "" {
			ack = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", in.Name, state, in.Version, fmtTime(in.LastSeen),
			pct(in.CPUPercent), pct(in.MemoryPercent), rate(in.ErrorRate), ack)
	}
	return tw.Flush()
}

// ---- emergency ----

func (c *cli) emergencyOn(args []string) error {
	cmd := c.command("emergency on", "--reason R [--ttl D]", `
Forces every service to level 3 (MAINTENANCE) with a global override, until
"controlplane emergency off" or until --ttl has passed. The reason is kept
in the audit log.`)
	reason := cmd.String("reason", "", "why (required; kept in the audit log)")
	ttl := cmd.String("ttl", "", "end on its own after this long, e.g. 30m (default: until \"emergency off\")")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return cmd.usagef("--reason is required")
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	o, raw, err := cl.startEmergency(ctx, api.EmergencyRequest{Reason: *reason, TTL: *ttl})
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	fmt.Fprintf(c.stdout, "Emergency mode ON: %s\n", describeEmergency(o))
	return nil
}

func (c *cli) emergencyOff(args []string) error {
	cmd := c.command("emergency off", "", `
Ends emergency mode: clears every active emergency override. Services go
back to their computed level (or to another override in force).`)
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	cleared, raw, err := cl.endEmergency(ctx)
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	ids := make([]string, len(cleared))
	for i, o := range cleared {
		ids[i] = o.ID
	}
	fmt.Fprintf(c.stdout, "Emergency mode OFF (cleared %s).\n", strings.Join(ids, ", "))
	return nil
}

func (c *cli) emergencyStatus(args []string) error {
	cmd := c.command("emergency status", "", `Says whether emergency mode is on, and since when, by whom and why.`)
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	em, raw, err := cl.emergency(ctx)
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	if !em.Active || em.Override == nil {
		fmt.Fprintln(c.stdout, "Emergency mode is off.")
		return nil
	}
	fmt.Fprintf(c.stdout, "Emergency mode is ON: %s\n", describeEmergency(*em.Override))
	return nil
}

// ---- overrides ----

func (c *cli) overrideSet(args []string) error {
	cmd := c.command("override set", "--service S|* --level L --reason R [--ttl D]", `
Pins the effective level of one service, or of every service with
--service '*'. The most recently created active override that matches a
service wins. Levels: 0 FULL, 1 REDUCED, 2 ESSENTIAL, 3 MAINTENANCE (the
number or the name). Prints the override's id, which "override clear" takes.`)
	service := cmd.String("service", "", "service name, or * for every service (required)")
	level := cmd.String("level", "", "level 0-3 or its name, e.g. 2 or ESSENTIAL (required)")
	reason := cmd.String("reason", "", "why (required; kept in the audit log)")
	ttl := cmd.String("ttl", "", "end on its own after this long, e.g. 15m (default: until cleared)")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	switch {
	case *service == "":
		return cmd.usagef("--service is required (a service name, or '*' for all)")
	case *level == "":
		return cmd.usagef("--level is required (0-3 or FULL, REDUCED, ESSENTIAL, MAINTENANCE)")
	case strings.TrimSpace(*reason) == "":
		return cmd.usagef("--reason is required")
	}
	l, err := parseLevel(*level)
	if err != nil {
		return cmd.usagef("%v", err)
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	o, raw, err := cl.createOverride(ctx, api.OverrideRequest{Service: *service, Level: &l, Reason: *reason, TTL: *ttl})
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	fmt.Fprintf(c.stdout, "Override %s created: %s\n", o.ID, describeOverride(o))
	return nil
}

func (c *cli) overrideClear(args []string) error {
	cmd := c.command("override clear", "ID", `
Clears an override by id ("controlplane override list" shows them). The
services it covered go back to their computed level or to another override.`)
	pos, err := cmd.parse(args, 1, 1)
	if err != nil {
		return err
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	o, raw, err := cl.clearOverride(ctx, pos[0])
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	fmt.Fprintf(c.stdout, "Override %s cleared (it pinned %s to %s).\n", o.ID, scopeName(o.Service), levelName(o.Level))
	return nil
}

func (c *cli) overrideList(args []string) error {
	cmd := c.command("override list", "[--service S]", `
Lists the active overrides, newest first. With --service, only those that
apply to it (its own and the global ones).`)
	service := cmd.String("service", "", "only overrides that apply to this service")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	q := url.Values{}
	if *service != "" {
		q.Set("service", *service)
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	items, raw, err := cl.overrides(ctx, q)
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	if len(items) == 0 {
		fmt.Fprintln(c.stdout, "No active overrides.")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "ID\tSERVICE\tLEVEL\tREASON\tACTOR\tCREATED\tEXPIRES")
	for _, o := range items {
		svc := o.Service
		if o.Emergency {
			svc += " (emergency)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.ID, svc, levelName(o.Level), oneLine(o.Reason), o.Actor, fmtTime(o.CreatedAt), fmtExpiry(o.ExpiresAt))
	}
	return tw.Flush()
}

// ---- history ----

// listFlags are the filters the paginated history lists share.
type listFlags struct {
	service, from, to, cursor *string
	limit                     *int
}

func addListFlags(cmd *command) listFlags {
	return listFlags{
		service: cmd.String("service", "", "only this service"),
		from:    cmd.String("from", "", "from this time: RFC 3339 (2026-01-02T15:04:05Z) or a duration ago (2h)"),
		to:      cmd.String("to", "", "until this time: RFC 3339 or a duration ago"),
		limit:   cmd.Int("limit", 0, "at most this many entries, 1-1000 (default 100)"),
		cursor:  cmd.String("cursor", "", "the next-page cursor printed by the previous page"),
	}
}

func (f listFlags) query(now time.Time) url.Values {
	q := url.Values{}
	if *f.service != "" {
		q.Set("service", *f.service)
	}
	if v := when(*f.from, now); v != "" {
		q.Set("from", v)
	}
	if v := when(*f.to, now); v != "" {
		q.Set("to", v)
	}
	if *f.limit != 0 {
		q.Set("limit", strconv.Itoa(*f.limit))
	}
	if *f.cursor != "" {
		q.Set("cursor", *f.cursor)
	}
	return q
}

// when turns "2h" into the RFC 3339 time two hours ago; anything else is
// passed through for the controller to judge.
func when(v string, now time.Time) string {
	v = strings.TrimSpace(v)
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d).UTC().Format(time.RFC3339)
	}
	return v
}

func (c *cli) nextPage(cursor string) {
	if cursor != "" {
		fmt.Fprintf(c.stdout, "\nMore entries: repeat with --cursor %s\n", cursor)
	}
}

func (c *cli) historyLevels(args []string) error {
	cmd := c.command("history levels", "[--service S] [--from T] [--to T] [--limit N] [--cursor C]", `
Lists level changes, newest first, with their cause: "signal" (which signal
crossed which threshold), "override" or "expiry". Kind "computed" marks a
change of the computed level that an override hid from subscribers.`)
	lf := addListFlags(cmd)
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	page, raw, err := cl.levelChanges(ctx, lf.query(time.Now()))
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	if len(page.Items) == 0 {
		fmt.Fprintln(c.stdout, "No level changes.")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "AT\tSERVICE\tCHANGE\tKIND\tCAUSE\tVERSION\tWHY")
	for _, lc := range page.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s → %s\t%s\t%s\t%d\t%s\n", fmtTime(lc.At), lc.Service, levelName(lc.FromLevel), levelName(lc.ToLevel),
			lc.Kind, lc.Cause, lc.Version, why(lc))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	c.nextPage(page.NextCursor)
	return nil
}

// why summarises a level change's inputs in a few words.
func why(lc api.LevelChange) string {
	var in api.LevelChangeInputs
	if len(lc.Inputs) == 0 || json.Unmarshal(lc.Inputs, &in) != nil {
		return "-"
	}
	switch {
	case lc.Cause == api.CauseOverride && in.Override != nil:
		return fmt.Sprintf("override %s by %s: %s", in.Override.ID, in.Override.Actor, oneLine(in.Override.Reason))
	case lc.Cause == api.CauseExpiry:
		return fmt.Sprintf("override %s expired", orDash(in.PreviousOverrideID))
	case lc.Cause == api.CauseOverride:
		return fmt.Sprintf("override %s cleared", orDash(in.PreviousOverrideID))
	case in.Decision != nil:
		t := in.Decision.Trigger
		if t.Kind == "exit" {
			return fmt.Sprintf("calm for %s: %s %s below level %d exit %s", time.Duration(in.Decision.CalmFor), t.Signal, signalValue(t.Signal, t.Value), t.Level, signalValue(t.Signal, t.Threshold))
		}
		return fmt.Sprintf("%s %s ≥ level %d enter %s", t.Signal, signalValue(t.Signal, t.Value), t.Level, signalValue(t.Signal, t.Threshold))
	}
	return "-"
}

func signalValue(signal string, v float64) string {
	if signal == api.SignalErrorRate {
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func (c *cli) historySamples(args []string) error {
	cmd := c.command("history samples", "--service S [--from T] [--to T] [--step D]", `
Prints a service's signals over time: mean CPU and memory, request-weighted
error rate and the most live instances, one row per step. The range
defaults to the last hour and the step to a three-hundredth of the range.`)
	service := cmd.String("service", "", "the service (required)")
	from := cmd.String("from", "", "from this time: RFC 3339 or a duration ago (default 1h)")
	to := cmd.String("to", "", "until this time: RFC 3339 or a duration ago (default now)")
	step := cmd.String("step", "", "one row per this long, at least 1s, e.g. 1m")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	if *service == "" {
		return cmd.usagef("--service is required")
	}
	now := time.Now()
	q := url.Values{"service": {*service}}
	if v := when(*from, now); v != "" {
		q.Set("from", v)
	}
	if v := when(*to, now); v != "" {
		q.Set("to", v)
	}
	if *step != "" {
		q.Set("step", *step)
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	s, raw, err := cl.samples(ctx, q)
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	fmt.Fprintf(c.stdout, "%s from %s to %s, step %s\n", s.Service, fmtTime(s.From), fmtTime(s.To), s.Step)
	if len(s.Items) == 0 {
		fmt.Fprintln(c.stdout, "No samples in this range.")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "AT\tCPU\tMEMORY\tERRORS\tINSTANCES")
	for _, p := range s.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", fmtTime(p.At), pct(p.CPUPercent), pct(p.MemoryPercent), rate(p.ErrorRate), p.Instances)
	}
	return tw.Flush()
}

func (c *cli) historyAudit(args []string) error {
	cmd := c.command("history audit", "[--service S] [--actor A] [--from T] [--to T] [--limit N] [--cursor C]", `
Lists operator actions, newest first: who did what to which target. Use
--json to see each entry's before and after.`)
	lf := addListFlags(cmd)
	actor := cmd.String("actor", "", "only actions by this actor (a token's name or id)")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	q := lf.query(time.Now())
	if *actor != "" {
		q.Set("actor", *actor)
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	page, raw, err := cl.audit(ctx, q)
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	if len(page.Items) == 0 {
		fmt.Fprintln(c.stdout, "No audit entries.")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "AT\tACTOR\tACTION\tTARGET")
	for _, a := range page.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", fmtTime(a.At), a.ActorLabel(), a.Action, a.Target)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	c.nextPage(page.NextCursor)
	return nil
}

// ---- tokens ----

func (c *cli) tokenCreate(args []string) error {
	cmd := c.command("token create", "--scope admin|viewer|sdk [--service S] --name N", `
Creates an API token. Scopes: admin (everything), viewer (read only), sdk
(report and subscribe for one service, given with --service).

The secret is printed once, alone on standard output, and can never be
shown again; the rest goes to standard error, so that
  TOKEN=$(controlplane token create --scope sdk --service checkout --name checkout-prod)
captures just the secret.`)
	scope := cmd.String("scope", "", "admin, viewer or sdk (required)")
	service := cmd.String("service", "", "the one service an sdk token acts for")
	name := cmd.String("name", "", "a name that says who uses the token; shown as actor in the audit log (required)")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	switch {
	case *scope == "":
		return cmd.usagef("--scope is required (admin, viewer or sdk)")
	case strings.TrimSpace(*name) == "":
		return cmd.usagef("--name is required")
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	t, raw, err := cl.createToken(ctx, api.TokenRequest{Scope: *scope, Service: *service, Name: *name})
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	bound := ""
	if t.Service != "" {
		bound = ", service " + t.Service
	}
	fmt.Fprintf(c.stderr, "Token %s created (name %q, scope %s%s).\nIts secret follows. It is shown only this once: store it now.\n", t.ID, t.Name, t.Scope, bound)
	fmt.Fprintln(c.stdout, t.Secret)
	return nil
}

func (c *cli) tokenList(args []string) error {
	cmd := c.command("token list", "", `Lists every token, revoked ones included, newest first. Secrets are never shown.`)
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	items, raw, err := cl.tokens(ctx)
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	if len(items) == 0 {
		fmt.Fprintln(c.stdout, "No tokens besides the bootstrap admin token.")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "ID\tNAME\tSCOPE\tSERVICE\tCREATED\tBY\tSTATUS")
	for _, t := range items {
		status := "active"
		if t.RevokedAt != nil {
			status = "revoked " + fmtTime(*t.RevokedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, oneLine(t.Name), t.Scope, orDash(t.Service), fmtTime(t.CreatedAt), orDash(t.CreatedBy), status)
	}
	return tw.Flush()
}

func (c *cli) tokenRevoke(args []string) error {
	cmd := c.command("token revoke", "ID", `
Revokes a token by id ("controlplane token list" shows them). Requests with
it fail from now on, and its live websocket connections are closed.`)
	pos, err := cmd.parse(args, 1, 1)
	if err != nil {
		return err
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	t, raw, err := cl.revokeToken(ctx, pos[0])
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	fmt.Fprintf(c.stdout, "Token %s (%q) revoked; its live connections are closed.\n", t.ID, t.Name)
	return nil
}

// ---- formatting ----

func levelName(l int) string { return fmt.Sprintf("%d %s", l, wire.Level(l)) }

// parseLevel reads a level as a number or a name. A number is passed on
// as is, so that the controller's own message explains a wrong one.
func parseLevel(s string) (int, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		return n, nil
	}
	l, err := wire.ParseLevel(s)
	if err != nil {
		return 0, fmt.Errorf("--level %q: want 0-3 or FULL, REDUCED, ESSENTIAL, MAINTENANCE", s)
	}
	return int(l), nil
}

func scopeName(service string) string {
	if service == api.GlobalScope {
		return "every service"
	}
	return service
}

// describeOverride says what an override does, who set it, why and until
// when, in one line.
func describeOverride(o api.Override) string {
	s := fmt.Sprintf("%s pinned to %s by %s: %s", scopeName(o.Service), levelName(o.Level), o.Actor, oneLine(o.Reason))
	if o.Emergency {
		s = "emergency: " + s
	}
	s += fmt.Sprintf(" (%s, since %s", o.ID, fmtTime(o.CreatedAt))
	if o.ExpiresAt != nil {
		s += ", until " + fmtTime(*o.ExpiresAt)
	}
	return s + ")"
}

// describeEmergency says since when, by whom and why emergency mode is on.
func describeEmergency(o api.Override) string {
	s := fmt.Sprintf("every service forced to %s since %s by %s: %s (%s", levelName(o.Level), fmtTime(o.CreatedAt), o.Actor, oneLine(o.Reason), o.ID)
	if o.ExpiresAt != nil {
		s += ", until " + fmtTime(*o.ExpiresAt)
	}
	return s + ")"
}

func overrideMarker(o *api.Override) string {
	if o == nil {
		return "-"
	}
	switch {
	case o.Emergency:
		return o.ID + " (emergency)"
	case o.Service == api.GlobalScope:
		return o.ID + " (all services)"
	}
	return o.ID
}

func ownOrGlobal(custom bool) string {
	if custom {
		return "its own"
	}
	return "global defaults"
}

func fmtFlags(flags map[string]bool) string {
	if len(flags) == 0 {
		return "none"
	}
	var on, off []string
	for name, v := range flags {
		if v {
			on = append(on, name)
		} else {
			off = append(off, name)
		}
	}
	slices.Sort(on)
	slices.Sort(off)
	return fmt.Sprintf("on: %s; off: %s", orNone(strings.Join(on, ", ")), orNone(strings.Join(off, ", ")))
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}

func fmtExpiry(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return fmtTime(*t)
}

func pct(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + "%" }

// rate shows an error rate (0-1) as a percentage.
func rate(v float64) string { return strconv.FormatFloat(v*100, 'f', 2, 64) + "%" }

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps free text from breaking a table row.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// describeReplicas names the leader of the replica set.
func describeReplicas(rs []api.Replica) string {
	leader := ""
	for _, r := range rs {
		if r.Leader {
			leader = r.ID
			if r.Addr != "" {
				leader += " (" + r.Addr + ")"
			}
		}
	}
	if leader == "" {
		return fmt.Sprintf("Leader: none right now (%d replicas; one takes over within seconds)\n", len(rs))
	}
	if len(rs) == 1 {
		return "Leader: " + leader + " (single replica)\n"
	}
	return fmt.Sprintf("Leader: %s, one of %d replicas\n", leader, len(rs))
}
