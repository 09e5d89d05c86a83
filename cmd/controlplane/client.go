package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/brownout-io/brownout/sdk/api"
)

// client is a small typed client of the controller's JSON API, for the
// operator subcommands. It decodes into sdk/api, the types the controller
// encodes, so that a field renamed on one side cannot silently go missing
// on the other, and a tool outside the repository can do the same.
type client struct {
	base  string // e.g. http://127.0.0.1:8080, no trailing slash
	token string
	http  *http.Client
}

// apiError is an error answer of the API: {"error":{"code","message"}}.
type apiError struct {
	Status  int
	Code    string
	Message string
	Field   string
}

// Error reads like "422 invalid: level: must be 0 to 3".
func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// connError is a request that never got an answer.
type connError struct {
	server string
	err    error
}

func (e *connError) Error() string {
	switch {
	case errors.Is(e.err, syscall.ECONNREFUSED):
		return fmt.Sprintf("cannot connect to the controller at %s: connection refused (is \"controlplane serve\" running there? set --server or CONTROLPLANE_SERVER)", e.server)
	case errors.Is(e.err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer from the controller at %s in time (raise --timeout?)", e.server)
	}
	var dnsErr *net.DNSError
	if errors.As(e.err, &dnsErr) {
		return fmt.Sprintf("cannot resolve the controller's host in %s: %v (check --server or CONTROLPLANE_SERVER)", e.server, dnsErr)
	}
	return fmt.Sprintf("request to the controller at %s failed: %v", e.server, e.err)
}

func (e *connError) Unwrap() error { return e.err }

// normalizeServer accepts "host:port" as well as a full URL.
func normalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", usageError{"--server is empty"}
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usageError{fmt.Sprintf("--server %q is not an http(s) URL such as http://127.0.0.1:8080", s)}
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// do sends a request and returns the raw body of a 2xx answer. body, when
// non-nil, is encoded as JSON.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &connError{server: c.base, err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &connError{server: c.base, err: fmt.Errorf("read answer: %w", err)}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return data, nil
	}
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		return nil, &apiError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, Field: eb.Error.Field}
	}
	// Not the API's error shape: a proxy, or not a Brownout controller.
	snippet := strings.TrimSpace(string(data))
	if len(snippet) > 120 {
		snippet = snippet[:120] + "…"
	}
	return nil, &apiError{Status: resp.StatusCode, Code: "unexpected_response", Message: fmt.Sprintf("%s %s answered %s: %s", method, u, resp.Status, snippet)}
}

// call is do plus decoding of the answer into out (when non-nil). It
// returns the raw body too, for --json.
func (c *client) call(ctx context.Context, method, path string, query url.Values, body, out any) ([]byte, error) {
	data, err := c.do(ctx, method, path, query, body)
	if err != nil {
		return nil, err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return data, fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return data, nil
}

func escape(s string) string { return url.PathEscape(s) }

func (c *client) services(ctx context.Context) ([]api.ServiceView, []byte, error) {
	var out api.Page[api.ServiceView]
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/services", nil, nil, &out)
	return out.Items, raw, err
}

func (c *client) service(ctx context.Context, name string) (api.ServiceView, []byte, error) {
	var out api.ServiceView
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/services/"+escape(name), nil, nil, &out)
	return out, raw, err
}

func (c *client) replicas(ctx context.Context) ([]api.Replica, error) {
	var out api.Page[api.Replica]
	_, err := c.call(ctx, http.MethodGet, "/api/v1/replicas", nil, nil, &out)
	return out.Items, err
}

func (c *client) emergency(ctx context.Context) (api.Emergency, []byte, error) {
	var out api.Emergency
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/emergency", nil, nil, &out)
	return out, raw, err
}

func (c *client) startEmergency(ctx context.Context, req api.EmergencyRequest) (api.Override, []byte, error) {
	var out api.Override
	raw, err := c.call(ctx, http.MethodPost, "/api/v1/emergency", nil, req, &out)
	return out, raw, err
}

func (c *client) endEmergency(ctx context.Context) ([]api.Override, []byte, error) {
	var out api.Page[api.Override]
	raw, err := c.call(ctx, http.MethodDelete, "/api/v1/emergency", nil, nil, &out)
	return out.Items, raw, err
}

func (c *client) createOverride(ctx context.Context, req api.OverrideRequest) (api.Override, []byte, error) {
	var out api.Override
	raw, err := c.call(ctx, http.MethodPost, "/api/v1/overrides", nil, req, &out)
	return out, raw, err
}

func (c *client) clearOverride(ctx context.Context, id string) (api.Override, []byte, error) {
	var out api.Override
	raw, err := c.call(ctx, http.MethodDelete, "/api/v1/overrides/"+escape(id), nil, nil, &out)
	return out, raw, err
}

func (c *client) overrides(ctx context.Context, q url.Values) ([]api.Override, []byte, error) {
	var out api.Page[api.Override]
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/overrides", q, nil, &out)
	return out.Items, raw, err
}

func (c *client) levelChanges(ctx context.Context, q url.Values) (api.Page[api.LevelChange], []byte, error) {
	var out api.Page[api.LevelChange]
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/history/levels", q, nil, &out)
	return out, raw, err
}

func (c *client) samples(ctx context.Context, q url.Values) (api.Samples, []byte, error) {
	var out api.Samples
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/history/samples", q, nil, &out)
	return out, raw, err
}

func (c *client) audit(ctx context.Context, q url.Values) (api.Page[api.AuditEntry], []byte, error) {
	var out api.Page[api.AuditEntry]
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/audit", q, nil, &out)
	return out, raw, err
}

func (c *client) createToken(ctx context.Context, req api.TokenRequest) (api.CreatedToken, []byte, error) {
	var out api.CreatedToken
	raw, err := c.call(ctx, http.MethodPost, "/api/v1/tokens", nil, req, &out)
	return out, raw, err
}

func (c *client) tokens(ctx context.Context) ([]api.Token, []byte, error) {
	var out api.Page[api.Token]
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/tokens", nil, nil, &out)
	return out.Items, raw, err
}

func (c *client) revokeToken(ctx context.Context, id string) (api.Token, []byte, error) {
	var out api.Token
	raw, err := c.call(ctx, http.MethodDelete, "/api/v1/tokens/"+escape(id), nil, nil, &out)
	return out, raw, err
}

func (c *client) createWebhook(ctx context.Context, req api.WebhookRequest) (api.CreatedWebhook, []byte, error) {
	var out api.CreatedWebhook
	raw, err := c.call(ctx, http.MethodPost, "/api/v1/webhooks", nil, req, &out)
	return out, raw, err
}

func (c *client) webhooks(ctx context.Context) ([]api.Webhook, []byte, error) {
	var out api.Page[api.Webhook]
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/webhooks", nil, nil, &out)
	return out.Items, raw, err
}

func (c *client) deleteWebhook(ctx context.Context, id string) (api.Webhook, []byte, error) {
	var out api.Webhook
	raw, err := c.call(ctx, http.MethodDelete, "/api/v1/webhooks/"+escape(id), nil, nil, &out)
	return out, raw, err
}

func (c *client) deadLetters(ctx context.Context, q url.Values) (api.Page[api.Delivery], []byte, error) {
	var out api.Page[api.Delivery]
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/deadletters", q, nil, &out)
	return out, raw, err
}

func (c *client) redrive(ctx context.Context, id string) (api.Delivery, []byte, error) {
	var out api.Delivery
	raw, err := c.call(ctx, http.MethodPost, "/api/v1/deadletters/"+escape(id)+"/redrive", nil, nil, &out)
	return out, raw, err
}
