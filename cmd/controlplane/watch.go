package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout/sdk/api"
)

// watch subscribes to a service over the push protocol, as an SDK
// instance would, and prints every state frame as one JSON line.
func (c *cli) watch(args []string) error {
	cmd := c.command("watch", "SERVICE [--instance I] [--frames N]", `
Subscribes to SERVICE over the websocket push protocol (subprotocol
brownout.v1) and prints every state frame as a JSON line: first the
current state, then a complete new snapshot on every change. Each frame is
acknowledged, so the watcher counts as an instance in convergence.
--frames stops after N frames; without it, watch follows until Ctrl-C.`)
	instance := cmd.String("instance", "", "instance name to subscribe as (default: cli-<hostname>)")
	frames := cmd.Int("frames", 0, "stop after this many state frames (0: follow)")
	pos, err := cmd.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if *frames < 0 {
		return cmd.usagef("--frames must be ≥ 0")
	}
	if *instance == "" {
		h, _ := os.Hostname()
		*instance = "cli-" + strings.ToLower(strings.ReplaceAll(h, "_", "-"))
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	cancel() // --timeout bounds the dial only; a watch lasts
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dctx, dcancel := context.WithTimeout(ctx, c.opts.timeout)
	defer dcancel()
	u := "ws" + strings.TrimPrefix(cl.base, "http") + "/api/v1/subscribe?service=" + url.QueryEscape(pos[0]) + "&instance=" + url.QueryEscape(*instance)
	conn, resp, err := websocket.Dial(dctx, u, &websocket.DialOptions{
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + cl.token}},
		Subprotocols: []string{"brownout.v1"},
	})
	if err != nil {
		if resp != nil {
			return fmt.Errorf("subscribe: %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
		}
		return &connError{server: cl.base, err: err}
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	for n := 0; *frames == 0 || n < *frames; {
		_, data, err := conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch: %w", err)
		}
		var f struct {
			Type    string `json:"type"`
			Version uint64 `json:"version"`
		}
		if err := json.Unmarshal(data, &f); err != nil || f.Type != "state" {
			continue
		}
		fmt.Fprintln(c.stdout, string(data))
		_ = conn.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"ack","version":%d}`, f.Version))
		n++
	}
	return conn.Close(websocket.StatusNormalClosure, "done")
}

// serviceRetire is "controlplane service retire NAME".
func (c *cli) serviceRetire(args []string) error {
	cmd := c.command("service retire", "NAME", `
Retires a service that no instance reports for any more (DELETE
/api/v1/services/NAME, admin, audited). It leaves the service list, the
dashboard and the metrics; its history and version stay, and if it
reports again it comes back with versions above the old ones. Refused
while live instances still report.`)
	pos, err := cmd.parse(args, 1, 1)
	if err != nil {
		return err
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	var st api.RetiredService
	raw, err := cl.call(ctx, http.MethodDelete, "/api/v1/services/"+url.PathEscape(pos[0]), nil, nil, &st)
	if err != nil {
		return err
	}
	if c.opts.json {
		return c.printJSON(raw)
	}
	fmt.Fprintf(c.stdout, "Service %s retired at %s (last level %s, version %d); its history is kept.\n", st.Name, fmtTime(st.RetiredAt), levelName(st.Level), st.Version)
	return nil
}
