package main

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/brownout-io/brownout/sdk/api"
)

// The client commands read the API through sdk/api and the push protocol
// through sdk/wire, as a tool outside the repository would: none of their
// files imports the controller's packages.
func TestClientCommandsImportOnlyTheSDKContract(t *testing.T) {
	for _, file := range []string{"cli.go", "client.go", "watch.go", "notify.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			switch {
			case !strings.Contains(first, "."): // standard library
			case path == "github.com/coder/websocket":
			case strings.HasPrefix(path, "github.com/brownout-io/brownout/sdk/"):
			default:
				t.Errorf("%s imports %s; the client commands use sdk/api and sdk/wire only", file, path)
			}
		}
	}
}

// strictDecode decodes data into v, refusing fields v does not have.
func strictDecode(t *testing.T, what string, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Errorf("%s does not decode into %T: %v\n%s", what, v, err, data)
	}
}

// Every answer the client commands read decodes into its sdk/api type
// with no field left over, so the types say all the controller sends.
func TestAPIAnswersDecodeStrictlyIntoAPITypes(t *testing.T) {
	srv := startWithService(t)
	admin := srv.AdminToken
	get := func(path string, v any) {
		t.Helper()
		st, body := srv.Do(t, http.MethodGet, path, admin, nil)
		if st != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, st, body)
		}
		strictDecode(t, "GET "+path, body, v)
	}
	level := 2
	st, body := srv.Do(t, http.MethodPost, "/api/v1/overrides", admin, api.OverrideRequest{Service: "checkout", Level: &level, Reason: "drill", TTL: "10m"})
	if st != http.StatusCreated {
		t.Fatalf("POST /overrides: %d %s", st, body)
	}
	strictDecode(t, "POST /overrides", body, &api.Override{})
	st, body = srv.Do(t, http.MethodPost, "/api/v1/tokens", admin, api.TokenRequest{Scope: api.ScopeSDK, Service: "checkout", Name: "ci"})
	if st != http.StatusCreated {
		t.Fatalf("POST /tokens: %d %s", st, body)
	}
	var created api.CreatedToken
	strictDecode(t, "POST /tokens", body, &created)
	if created.Secret == "" || created.ID == "" {
		t.Errorf("created token %+v: no id or secret", created)
	}

	st, body = srv.Do(t, http.MethodPost, "/api/v1/webhooks", admin, api.WebhookRequest{Name: "ops", URL: "http://127.0.0.1:9/hook", Events: []string{api.EventEmergencyOn}})
	if st != http.StatusCreated {
		t.Fatalf("POST /webhooks: %d %s", st, body)
	}
	var hook api.CreatedWebhook
	strictDecode(t, "POST /webhooks", body, &hook)
	if hook.Secret == "" || hook.ID == "" {
		t.Errorf("created webhook %+v: no id or secret", hook)
	}
	get("/api/v1/webhooks", &api.Page[api.Webhook]{})
	get("/api/v1/deadletters", &api.Page[api.Delivery]{})

	var one api.ServiceView
	get("/api/v1/services/checkout", &one)
	if one.Name != "checkout" || one.Level != 2 || len(one.Instances) != 1 || len(one.Thresholds.Levels) != 3 {
		t.Errorf("service view %+v", one)
	}
	get("/api/v1/services", &api.Page[api.ServiceView]{})
	get("/api/v1/overrides", &api.Page[api.Override]{})
	get("/api/v1/emergency", &api.Emergency{})
	get("/api/v1/tokens", &api.Page[api.Token]{})
	get("/api/v1/audit", &api.Page[api.AuditEntry]{})
	get("/api/v1/replicas", &api.Page[api.Replica]{})
	get("/api/v1/history/samples?service=checkout", &api.Samples{})
	var changes api.Page[api.LevelChange]
	get("/api/v1/history/levels?service=checkout", &changes)
	if len(changes.Items) == 0 {
		t.Fatal("no level change after an override")
	}
	for _, lc := range changes.Items {
		var in api.LevelChangeInputs
		strictDecode(t, "a level change's inputs", lc.Inputs, &in)
		if lc.Cause == api.CauseOverride && (in.Override == nil || in.Override.Level != 2) {
			t.Errorf("override change inputs %+v", in)
		}
	}
}
