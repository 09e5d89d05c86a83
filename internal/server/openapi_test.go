package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"gopkg.in/yaml.v3"

	"github.com/brownout-io/brownout/internal/app"
	"github.com/brownout-io/brownout/internal/notify"
	"github.com/brownout-io/brownout/internal/server"
	"github.com/brownout-io/brownout/internal/servertest"
)

// openAPI is the embedded document, decoded.
type openAPI struct {
	root map[string]any
}

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	var root map[string]any
	if err := yaml.Unmarshal(server.OpenAPI(), &root); err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	if v, _ := root["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("openapi version = %q, want 3.x", v)
	}
	return &openAPI{root: root}
}

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

// operations returns "METHOD /path" for every operation in the document.
func (d *openAPI) operations() map[string]map[string]any {
	out := map[string]map[string]any{}
	paths, _ := d.root["paths"].(map[string]any)
	for p, item := range paths {
		for k, op := range item.(map[string]any) {
			if slices.Contains(httpMethods, k) {
				out[strings.ToUpper(k)+" "+p] = op.(map[string]any)
			}
		}
	}
	return out
}

// lookup follows a local reference such as "#/components/schemas/Service".
func (d *openAPI) lookup(t *testing.T, ref string) map[string]any {
	t.Helper()
	var cur any = d.root
	unescape := strings.NewReplacer("~1", "/", "~0", "~")
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		part = unescape.Replace(part)
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("reference %s does not resolve", ref)
		}
		cur = m[part]
	}
	m, ok := cur.(map[string]any)
	if !ok {
		t.Fatalf("reference %s does not resolve", ref)
	}
	return m
}

func (d *openAPI) deref(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	for i := 0; i < 20; i++ {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		m = d.lookup(t, ref)
	}
	t.Fatalf("reference cycle")
	return nil
}

// routerOperations walks the real router: "METHOD /pattern", without the
// dashboard's catch-all.
func routerOperations(t *testing.T, r chi.Routes) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if route == "/*" {
			return nil
		}
		out[method+" "+route] = true
		return nil
	})
	if err != nil {
		t.Fatalf("walk router: %v", err)
	}
	return out
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	srv := servertest.Start(t)
	routes := routerOperations(t, srv.App.Server.Router())
	ops := doc.operations()
	if len(routes) < 30 {
		t.Fatalf("the router walk found only %d routes: %v", len(routes), routes)
	}
	for r := range routes {
		if _, ok := ops[r]; !ok {
			t.Errorf("route %s is registered but not in openapi.yaml", r)
		}
	}
	for op := range ops {
		if !routes[op] {
			t.Errorf("openapi.yaml describes %s, which the router does not register", op)
		}
	}
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// TestOpenAPIOperationsAreComplete checks what each operation must say:
// a unique operationId, its path parameters, the error statuses the
// middleware can produce, and JSON content for every JSON answer.
func TestOpenAPIOperationsAreComplete(t *testing.T) {
	doc := loadOpenAPI(t)
	paths := doc.root["paths"].(map[string]any)
	ids := map[string]string{}
	for name, op := range doc.operations() {
		method, path, _ := strings.Cut(name, " ")
		id, _ := op["operationId"].(string)
		if id == "" {
			t.Errorf("%s has no operationId", name)
		} else if prev, dup := ids[id]; dup {
			t.Errorf("operationId %s used by %s and %s", id, prev, name)
		}
		ids[id] = name

		declared := map[string]bool{}
		var params []any
		if p, ok := paths[path].(map[string]any)["parameters"].([]any); ok {
			params = append(params, p...)
		}
		if p, ok := op["parameters"].([]any); ok {
			params = append(params, p...)
		}
		for _, p := range params {
			pm := doc.deref(t, p.(map[string]any))
			if pm["in"] == "path" {
				declared[pm["name"].(string)] = true
			}
		}
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s does not declare path parameter %s", name, m[1])
			}
		}

		responses, _ := op["responses"].(map[string]any)
		if len(responses) == 0 {
			t.Errorf("%s has no responses", name)
			continue
		}
		if !strings.HasPrefix(path, "/api/v1/") {
			if sec, ok := op["security"].([]any); !ok || len(sec) != 0 {
				t.Errorf("%s is served without a token but does not say security: []", name)
			}
			continue
		}
		want := []string{"401", "429"}
		if _, ok := op["requestBody"]; ok {
			want = append(want, "400", "413", "422")
		}
		if strings.Contains(path, "{") {
			want = append(want, "400")
		}
		if method != http.MethodPost || path != "/api/v1/reports" {
			want = append(want, "403")
		}
		for _, st := range want {
			if _, ok := responses[st]; !ok {
				t.Errorf("%s does not document status %s", name, st)
			}
		}
	}

	// The security scheme every API operation relies on.
	scheme := doc.lookup(t, "#/components/securitySchemes/bearerAuth")
	if scheme["type"] != "http" || scheme["scheme"] != "bearer" {
		t.Errorf("bearerAuth = %v, want http bearer", scheme)
	}
	limit := doc.lookup(t, "#/components/parameters/Limit")["schema"].(map[string]any)
	if limit["maximum"] != 1000 {
		t.Errorf("limit maximum = %v, want 1000", limit["maximum"])
	}
	desc := doc.lookup(t, "#/paths/~1api~1v1~1subscribe/get")["description"].(string)
	for _, w := range []string{"`state`", "`unchanged`", "`error`", "`ack`", "`report`", "4401", "4403", "1001", "1008", "1009", "brownout.v1"} {
		if !strings.Contains(desc, w) {
			t.Errorf("the subscribe description does not mention %s", w)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	srv := servertest.Start(t)
	resp, err := http.Get(srv.URL + "/api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, server.OpenAPI()) {
		t.Errorf("GET /api/openapi.yaml: status %d, %d bytes; want 200 and the embedded document (%d bytes)", resp.StatusCode, len(body), len(server.OpenAPI()))
	}
}

// TestOpenAPIDocumentedQueryParametersAreAccepted sends every documented
// query parameter and checks that the server does not refuse it as
// unknown (the server refuses parameters it does not know).
func TestOpenAPIDocumentedQueryParametersAreAccepted(t *testing.T) {
	doc := loadOpenAPI(t)
	srv := servertest.Start(t)
	now := time.Now().UTC()
	values := map[string]string{
		"service": "checkout", "instance": "checkout-1", "version": "1", "actor": "admin",
		"from": now.Add(-time.Hour).Format(time.RFC3339), "to": now.Format(time.RFC3339),
		"limit": "10", "cursor": "", "step": "1m", "epoch": "e0123456789abcdef",
	}
	for name, op := range doc.operations() {
		method, path, _ := strings.Cut(name, " ")
		if method != http.MethodGet || strings.Contains(path, "{") {
			continue
		}
		params, _ := op["parameters"].([]any)
		for _, p := range params {
			pm := doc.deref(t, p.(map[string]any))
			if pm["in"] != "query" {
				continue
			}
			pn := pm["name"].(string)
			v, ok := values[pn]
			if !ok {
				t.Errorf("%s: no test value for documented parameter %s", name, pn)
				continue
			}
			q := pn + "=" + v
			if pn != "service" && (path == "/api/v1/history/samples" || path == "/api/v1/subscribe") {
				q += "&service=checkout"
			}
			if pn != "instance" && path == "/api/v1/subscribe" {
				q += "&instance=checkout-1"
			}
			st, body := srv.Do(t, method, path+"?"+q, srv.AdminToken, nil)
			if st == http.StatusBadRequest && strings.Contains(string(body), "unknown query parameter") {
				t.Errorf("%s?%s: the server refuses documented parameter %s: %s", name, q, pn, body)
			}
		}
	}
}

// schemaChecker validates JSON values against the document's schemas,
// strictly: a field the schema does not declare is an error unless the
// schema allows additional properties, so that field names in the document
// must match the JSON the server writes.
type schemaChecker struct {
	t   *testing.T
	doc *openAPI
}

func (c *schemaChecker) check(at string, s map[string]any, v any) []string {
	s = c.doc.deref(c.t, s)
	nullable, _ := s["nullable"].(bool)
	if v == nil {
		if nullable {
			return nil
		}
		return []string{at + ": null is not allowed"}
	}
	var errs []string
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			errs = append(errs, c.check(at, sub.(map[string]any), v)...)
		}
	}
	if one, ok := s["oneOf"].([]any); ok {
		n := 0
		for _, sub := range one {
			if len(c.check(at, sub.(map[string]any), v)) == 0 {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Sprintf("%s: matches %d of the oneOf schemas, want 1", at, n))
		}
	}
	typ, _ := s["type"].(string)
	switch typ {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: got %T, want an object", at, v))
		}
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := m[r.(string)]; !ok {
					errs = append(errs, fmt.Sprintf("%s: required field %q is missing", at, r))
				}
			}
		}
		props, _ := s["properties"].(map[string]any)
		for k, fv := range m {
			if ps, ok := props[k]; ok {
				errs = append(errs, c.check(at+"."+k, ps.(map[string]any), fv)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case map[string]any:
				errs = append(errs, c.check(at+"."+k, ap, fv)...)
			case bool:
				if !ap {
					errs = append(errs, fmt.Sprintf("%s: field %q is not in the schema", at, k))
				}
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: got %T, want an array", at, v))
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, x := range a {
				errs = append(errs, c.check(fmt.Sprintf("%s[%d]", at, i), items, x)...)
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return append(errs, fmt.Sprintf("%s: got %T, want a string", at, v))
		}
		if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, any(str)) {
			errs = append(errs, fmt.Sprintf("%s: %q is not one of %v", at, str, enum))
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not RFC 3339", at, str))
			}
		}
	case "integer", "number":
		n, ok := v.(json.Number)
		if !ok {
			return append(errs, fmt.Sprintf("%s: got %T, want a %s", at, v, typ))
		}
		f, err := n.Float64()
		if err != nil {
			return append(errs, fmt.Sprintf("%s: %s is not a number", at, n))
		}
		if typ == "integer" {
			if _, err := strconv.ParseUint(strings.TrimPrefix(n.String(), "-"), 10, 64); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %s is not an integer", at, n))
			}
		}
		if lo, ok := toFloat(s["minimum"]); ok && f < lo {
			errs = append(errs, fmt.Sprintf("%s: %s is below the minimum %v", at, n, lo))
		}
		if hi, ok := toFloat(s["maximum"]); ok && f > hi {
			errs = append(errs, fmt.Sprintf("%s: %s is above the maximum %v", at, n, hi))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			errs = append(errs, fmt.Sprintf("%s: got %T, want a boolean", at, v))
		}
	}
	return errs
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// apiCheck sends requests to a real controller and validates every answer
// against the schema the document gives for its operation and status.
type apiCheck struct {
	t   *testing.T
	srv *servertest.Server
	doc *openAPI
}

// do sends the request, requires status want, validates the body and
// returns it decoded.
func (a *apiCheck) do(method, route, path, token string, body any, want int) map[string]any {
	a.t.Helper()
	st, out := a.srv.Do(a.t, method, path, token, body)
	if st != want {
		a.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, st, want, out)
	}
	op, ok := a.doc.operations()[method+" "+route]
	if !ok {
		a.t.Fatalf("%s %s is not in the document", method, route)
	}
	resp, ok := op["responses"].(map[string]any)[strconv.Itoa(st)].(map[string]any)
	if !ok {
		a.t.Fatalf("%s %s: status %d is not documented", method, route, st)
	}
	resp = a.doc.deref(a.t, resp)
	content, _ := resp["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	if media == nil {
		if len(bytes.TrimSpace(out)) > 0 {
			a.t.Fatalf("%s %s: status %d is documented without a JSON body, got %s", method, route, st, out)
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		a.t.Fatalf("%s %s: answer is not JSON: %v; %s", method, route, err, out)
	}
	c := &schemaChecker{t: a.t, doc: a.doc}
	for _, e := range c.check("body", media["schema"].(map[string]any), v) {
		a.t.Errorf("%s %s (%d): %s", method, path, st, e)
	}
	m, _ := v.(map[string]any)
	return m
}

func TestOpenAPIResponsesMatchSchemas(t *testing.T) {
	doc := loadOpenAPI(t)
	srv := servertest.Start(t, servertest.WithConfig(func(c *app.Config) {
		c.Notify.Allow, c.Notify.AllowPrivate = notify.AllowList{"127.0.0.1"}, true
	}))
	a := &apiCheck{t: t, srv: srv, doc: doc}
	admin := srv.AdminToken
	_, viewer := srv.Token(t, "viewer", "")

	report := map[string]any{"service": "checkout", "instance": "checkout-1", "cpu_percent": 42.5, "memory_percent": 61, "requests": 200, "errors": 3,
		"components": map[string]any{"db": map[string]any{"kind": "breaker", "state": "closed", "metrics": map[string]any{"failure_rate": 0.01}}}}
	a.do("POST", "/api/v1/reports", "/api/v1/reports", admin, report, 202)
	a.do("POST", "/api/v1/reports", "/api/v1/reports", admin, []any{report, report}, 202)

	// Services.
	svc := a.do("GET", "/api/v1/services/{service}", "/api/v1/services/checkout", admin, nil, 200)
	if svc["name"] != "checkout" {
		t.Errorf("GET /services/checkout name = %v", svc["name"])
	}
	a.do("GET", "/api/v1/services", "/api/v1/services", viewer, nil, 200)
	a.do("GET", "/api/v1/services/{service}", "/api/v1/services/nosuch", admin, nil, 404)
	a.do("GET", "/api/v1/services/{service}", "/api/v1/services/Not_Valid", admin, nil, 400)

	// Error bodies from the middleware.
	e := a.do("GET", "/api/v1/services", "/api/v1/services", "", nil, 401)
	if e["error"].(map[string]any)["code"] != "unauthorized" {
		t.Errorf("401 body = %v", e)
	}
	a.do("PUT", "/api/v1/thresholds", "/api/v1/thresholds", viewer, map[string]any{}, 403)

	// Thresholds.
	th := a.do("GET", "/api/v1/thresholds", "/api/v1/thresholds", viewer, nil, 200)
	a.do("PUT", "/api/v1/thresholds", "/api/v1/thresholds", admin, th, 200)
	bad := map[string]any{"cooldown": "60s", "levels": []any{}}
	e = a.do("PUT", "/api/v1/thresholds", "/api/v1/thresholds", admin, bad, 422)
	if f := e["error"].(map[string]any)["field"]; f != "levels" {
		t.Errorf("422 field = %v, want levels", f)
	}
	a.do("PUT", "/api/v1/thresholds", "/api/v1/thresholds", admin, `{"cooldown":`, 400)
	a.do("GET", "/api/v1/services/{service}/thresholds", "/api/v1/services/checkout/thresholds", admin, nil, 200)
	a.do("PUT", "/api/v1/services/{service}/thresholds", "/api/v1/services/checkout/thresholds", admin, th, 200)
	a.do("DELETE", "/api/v1/services/{service}/thresholds", "/api/v1/services/checkout/thresholds", admin, nil, 204)
	a.do("DELETE", "/api/v1/services/{service}/thresholds", "/api/v1/services/checkout/thresholds", admin, nil, 404)

	// Flags.
	fl := a.do("GET", "/api/v1/flags", "/api/v1/flags", admin, nil, 200)
	a.do("PUT", "/api/v1/flags", "/api/v1/flags", admin, fl, 200)
	a.do("GET", "/api/v1/services/{service}/flags", "/api/v1/services/checkout/flags", admin, nil, 200)
	own := map[string]any{"levels": []any{map[string]any{"level": 1, "flags": map[string]any{"checkout_v2": true}}}}
	a.do("PUT", "/api/v1/services/{service}/flags", "/api/v1/services/checkout/flags", admin, own, 200)
	a.do("DELETE", "/api/v1/services/{service}/flags", "/api/v1/services/checkout/flags", admin, nil, 204)
	a.do("DELETE", "/api/v1/services/{service}/flags", "/api/v1/services/checkout/flags", admin, nil, 404)

	// Overrides.
	o := a.do("POST", "/api/v1/overrides", "/api/v1/overrides", admin, map[string]any{"service": "checkout", "level": 2, "reason": "drill", "ttl": "15m"}, 201)
	id, _ := o["id"].(string)
	a.do("POST", "/api/v1/overrides", "/api/v1/overrides", admin, map[string]any{"service": "checkout", "level": 7, "reason": "typo"}, 422)
	a.do("GET", "/api/v1/overrides", "/api/v1/overrides?service=checkout", viewer, nil, 200)
	svc = a.do("GET", "/api/v1/services/{service}", "/api/v1/services/checkout", admin, nil, 200)
	if svc["override"] == nil {
		t.Errorf("service during an override has override null")
	}
	a.do("DELETE", "/api/v1/overrides/{id}", "/api/v1/overrides/"+id, admin, nil, 200)
	a.do("DELETE", "/api/v1/overrides/{id}", "/api/v1/overrides/"+id, admin, nil, 409)
	a.do("DELETE", "/api/v1/overrides/{id}", "/api/v1/overrides/ovr_nosuch", admin, nil, 404)

	// Emergency.
	em := a.do("GET", "/api/v1/emergency", "/api/v1/emergency", viewer, nil, 200)
	if em["active"] != false {
		t.Errorf("emergency before start = %v", em)
	}
	a.do("POST", "/api/v1/emergency", "/api/v1/emergency", admin, map[string]any{"reason": "failover"}, 201)
	a.do("GET", "/api/v1/emergency", "/api/v1/emergency", viewer, nil, 200)
	a.do("DELETE", "/api/v1/emergency", "/api/v1/emergency", admin, nil, 200)
	a.do("DELETE", "/api/v1/emergency", "/api/v1/emergency", admin, nil, 404)

	// Tokens.
	tok := a.do("POST", "/api/v1/tokens", "/api/v1/tokens", admin, map[string]any{"scope": "sdk", "service": "checkout", "name": "checkout-prod"}, 201)
	tid, _ := tok["id"].(string)
	a.do("POST", "/api/v1/tokens", "/api/v1/tokens", admin, map[string]any{"scope": "root", "name": "x"}, 422)
	a.do("GET", "/api/v1/tokens", "/api/v1/tokens", admin, nil, 200)
	a.do("DELETE", "/api/v1/tokens/{id}", "/api/v1/tokens/"+tid, admin, nil, 200)
	a.do("DELETE", "/api/v1/tokens/{id}", "/api/v1/tokens/"+tid, admin, nil, 409)
	a.do("DELETE", "/api/v1/tokens/{id}", "/api/v1/tokens/admin", admin, nil, 409)

	// Notifications.
	wh := a.do("POST", "/api/v1/webhooks", "/api/v1/webhooks", admin, map[string]any{"name": "ops", "url": "http://127.0.0.1:1/hook", "format": "slack", "events": []string{"emergency.on"}}, 201)
	if sec, _ := wh["secret"].(string); !strings.HasPrefix(sec, "whsec_") {
		t.Errorf("webhook secret = %v", wh["secret"])
	}
	a.do("POST", "/api/v1/webhooks", "/api/v1/webhooks", admin, map[string]any{"name": "ops", "url": "https://evil.test/"}, 422)
	a.do("POST", "/api/v1/webhooks", "/api/v1/webhooks", admin, map[string]any{"name": strings.Repeat("n", 129), "url": "http://127.0.0.1:1/"}, 413)
	a.do("GET", "/api/v1/webhooks", "/api/v1/webhooks", admin, nil, 200)
	a.do("GET", "/api/v1/deadletters", "/api/v1/deadletters?limit=10", admin, nil, 200)
	a.do("POST", "/api/v1/deadletters/{id}/redrive", "/api/v1/deadletters/evt_x.whk_y/redrive", admin, nil, 404)
	whID, _ := wh["id"].(string)
	a.do("DELETE", "/api/v1/webhooks/{id}", "/api/v1/webhooks/"+whID, admin, nil, 200)
	a.do("DELETE", "/api/v1/webhooks/{id}", "/api/v1/webhooks/"+whID, admin, nil, 404)

	// History.
	page := a.do("GET", "/api/v1/history/levels", "/api/v1/history/levels?service=checkout&limit=1", viewer, nil, 200)
	if items, _ := page["items"].([]any); len(items) != 1 {
		t.Errorf("history/levels limit=1 returned %d items, want 1", len(items))
	}
	a.do("GET", "/api/v1/history/levels", "/api/v1/history/levels?limit=1001", viewer, nil, 400)
	a.do("GET", "/api/v1/history/samples", "/api/v1/history/samples?service=checkout&step=1m", viewer, nil, 200)
	a.do("GET", "/api/v1/audit", "/api/v1/audit?actor=admin", viewer, nil, 200)
	a.do("GET", "/api/v1/audit", "/api/v1/audit?servcie=checkout", viewer, nil, 400)

	// Too large: a batch over 1000 reports.
	batch := make([]any, 1001)
	for i := range batch {
		batch[i] = report
	}
	a.do("POST", "/api/v1/reports", "/api/v1/reports", admin, batch, 413)

	// Throttled: an address that keeps presenting bad tokens. Last, since
	// it blocks bad tokens from this address for a while.
	for i := 0; i < 100; i++ {
		st, _ := srv.Do(t, "GET", "/api/v1/services", "bo_wrong", nil)
		if st == http.StatusTooManyRequests {
			a.do("GET", "/api/v1/services", "/api/v1/services", "bo_wrong", nil, 429)
			return
		}
	}
	t.Errorf("100 bad tokens in a row were never throttled")
}
