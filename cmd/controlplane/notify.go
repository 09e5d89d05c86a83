package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/brownout-io/brownout/sdk/api"
)

// ---- webhooks and dead letters ----

func (c *cli) webhookCreate(args []string) error {
	cmd := c.command("webhook create", "--name N --url U [--format json|slack] [--events T,T]", `
Creates a webhook. Events (level.changed, emergency.on, emergency.off,
service.stale, service.live; all by default) are POSTed to the URL, signed
with HMAC-SHA256 (docs/notifications.md says how to verify). The URL's host
must be on the controller's --webhook-allow list.

The signing secret is printed once, alone on standard output, and can
never be shown again; the rest goes to standard error, so that
  SECRET=$(controlplane webhook create --name ops --url https://hooks.slack.com/services/… --format slack)
captures just the secret.`)
	name := cmd.String("name", "", "a name that says where deliveries go (required)")
	rawURL := cmd.String("url", "", "the receiver's http(s) URL (required)")
	format := cmd.String("format", api.FormatJSON, "json (the event) or slack ({\"text\": …})")
	events := cmd.String("events", "", "comma-separated event types to deliver (default all)")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(*name) == "":
		return cmd.usagef("--name is required")
	case *rawURL == "":
		return cmd.usagef("--url is required")
	}
	req := api.WebhookRequest{Name: *name, URL: *rawURL, Format: *format}
	for e := range strings.SplitSeq(*events, ",") {
		if e = strings.TrimSpace(e); e != "" {
			req.Events = append(req.Events, e)
		}
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	w, raw, err := cl.createWebhook(ctx, req)
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	fmt.Fprintf(c.stderr, "Webhook %s created (%q, %s, %s).\nIts signing secret follows. It is shown only this once: store it with the receiver.\n", w.ID, w.Name, w.Format, eventList(w.Events))
	fmt.Fprintln(c.stdout, w.Secret)
	return nil
}

func eventList(evs []string) string {
	if len(evs) == 0 {
		return "all events"
	}
	return strings.Join(evs, ", ")
}

func (c *cli) webhookList(args []string) error {
	cmd := c.command("webhook list", "", `Lists the webhooks, oldest first. URLs show scheme and host only; secrets are never shown.`)
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	items, raw, err := cl.webhooks(ctx)
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	if len(items) == 0 {
		fmt.Fprintln(c.stdout, "No webhooks.")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "ID\tNAME\tURL\tFORMAT\tEVENTS\tCREATED\tBY")
	for _, w := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", w.ID, oneLine(w.Name), w.URL, w.Format, eventList(w.Events), fmtTime(w.CreatedAt), orDash(w.CreatedBy))
	}
	return tw.Flush()
}

func (c *cli) webhookDelete(args []string) error {
	cmd := c.command("webhook delete", "ID", `
Deletes a webhook by id ("controlplane webhook list" shows them). Its
pending deliveries go with it; its dead letters stay listed.`)
	pos, err := cmd.parse(args, 1, 1)
	if err != nil {
		return err
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	w, raw, err := cl.deleteWebhook(ctx, pos[0])
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	fmt.Fprintf(c.stdout, "Webhook %s (%q) deleted.\n", w.ID, w.Name)
	return nil
}

func (c *cli) deadLetterList(args []string) error {
	cmd := c.command("deadletter list", "[--limit N] [--cursor C]", `
Lists webhook deliveries that ran out of attempts, newest first, with the
last error. "controlplane deadletter redrive ID" sends one again.`)
	limit := cmd.Int("limit", 0, "most entries (1-1000; default 100)")
	cursor := cmd.String("cursor", "", "the next page, as printed at the end of the previous one")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	q := url.Values{}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	if *cursor != "" {
		q.Set("cursor", *cursor)
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	page, raw, err := cl.deadLetters(ctx, q)
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	if len(page.Items) == 0 {
		fmt.Fprintln(c.stdout, "No dead letters.")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "ID\tEVENT\tSERVICE\tATTEMPTS\tDEAD SINCE\tLAST ERROR")
	for _, d := range page.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Event.Type, orDash(d.Event.Service), d.Attempts, fmtTime(d.DeadAt), oneLine(d.LastError))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	c.nextPage(page.NextCursor)
	return nil
}

func (c *cli) deadLetterRedrive(args []string) error {
	cmd := c.command("deadletter redrive", "ID", `
Sends a dead letter again: it goes back to the outbox with its attempts
reset and keeps its delivery id, so a receiver that got it before can tell.`)
	pos, err := cmd.parse(args, 1, 1)
	if err != nil {
		return err
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	d, raw, err := cl.redrive(ctx, pos[0])
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	fmt.Fprintf(c.stdout, "Delivery %s (%s) is back in the outbox.\n", d.ID, d.Event.Type)
	return nil
}
