package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hookReceiver is a real webhook receiver on loopback. While blocking it
// holds every request until the caller goes away; otherwise it fails the
// event types in failTypes with 500 and acknowledges the rest, recording
// which delivery IDs it acknowledged and how many requests each got.
type hookReceiver struct {
	*httptest.Server
	blocking  atomic.Bool
	inFlight  atomic.Int64
	mu        sync.Mutex
	failTypes map[string]bool
	requests  map[string]int    // delivery ID → requests
	acked     map[string]string // delivery ID → event type
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{failTypes: map[string]bool{}, requests: map[string]int{}, acked: map[string]string{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		id, typ := req.Header.Get("Brownout-Delivery"), req.Header.Get("Brownout-Event")
		r.mu.Lock()
		r.requests[id]++
		r.mu.Unlock()
		if r.blocking.Load() {
			r.inFlight.Add(1)
			<-req.Context().Done() // the controller is killed mid-delivery
			r.inFlight.Add(-1)
			return
		}
		r.mu.Lock()
		fail := r.failTypes[typ]
		if !fail {
			r.acked[id] = typ
		}
		r.mu.Unlock()
		if fail {
			http.Error(w, "cannot take "+typ, http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) snapshot() (requests map[string]int, acked map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	requests, acked = map[string]int{}, map[string]string{}
	for k, v := range r.requests {
		requests[k] = v
	}
	for k, v := range r.acked {
		acked[k] = v
	}
	return requests, acked
}

type deadLetter struct {
	ID        string `json:"id"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
	Event     struct {
		Type string `json:"type"`
	} `json:"event"`
}

// An operator points a webhook at a receiver that hangs, kills the
// controller mid-delivery, and restarts it on the same data directory:
// every delivery is then either delivered or dead-lettered (none lost,
// none over the attempt budget), and the dead letters, redriven once the
// receiver is fixed, are delivered too.
func TestWebhooksSurviveSIGKILLMidDelivery(t *testing.T) {
	recv := newHookReceiver(t)
	ctl := startController(t, "--webhook-allow", "127.0.0.1", "--webhook-allow-private",
		"--webhook-timeout", "3s", "--webhook-max-attempts", "3", "--eval-interval", "100ms")
	api := newClient(ctl.url(), adminToken)
	for _, svc := range []string{"checkout", "search"} {
		api.must(t, "POST", "/api/v1/reports", map[string]any{"service": svc, "instance": svc + "-1", "cpu_percent": 10, "memory_percent": 10, "requests": 10, "errors": 0}, 202, nil)
		api.must(t, "GET", "/api/v1/services/"+svc, nil, 200, nil)
	}
	recv.blocking.Store(true)
	var hook struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	api.must(t, "POST", "/api/v1/webhooks", map[string]any{"name": "ops", "url": recv.URL + "/hook"}, 201, &hook)
	// Emergency on and off: emergency.on, emergency.off and a level change
	// of each service both ways; six deliveries.
	api.must(t, "POST", "/api/v1/emergency", map[string]any{"reason": "drill"}, 201, nil)
	api.must(t, "DELETE", "/api/v1/emergency", nil, 200, nil)

	deadline := time.Now().Add(30 * time.Second)
	for recv.inFlight.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no delivery in flight:\n%s", ctl.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctl.kill()
	before, _ := recv.snapshot()
	t.Logf("killed with %d deliveries in flight; requests so far %v", recv.inFlight.Load(), before)

	// The receiver comes back taking level changes and refusing emergency
	// events, so that both ends of the contract show.
	recv.mu.Lock()
	recv.failTypes["emergency.on"], recv.failTypes["emergency.off"] = true, true
	recv.mu.Unlock()
	recv.blocking.Store(false)
	ctl.restart()

	var dead struct {
		Items []deadLetter `json:"items"`
	}
	for {
		if time.Now().After(deadline.Add(60 * time.Second)) {
			req, acked := recv.snapshot()
			t.Fatalf("not settled: acked %v, requests %v, dead %+v\n%s", acked, req, dead.Items, ctl.logText())
		}
		api.must(t, "GET", "/api/v1/deadletters", nil, 200, &dead)
		_, acked := recv.snapshot()
		if len(acked) == 4 && len(dead.Items) == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	requests, acked := recv.snapshot()
	for id, typ := range acked {
		if typ != "level.changed" {
			t.Errorf("acked %s of type %s", id, typ)
		}
	}
	for _, d := range dead.Items {
		if !strings.HasPrefix(d.Event.Type, "emergency.") || d.Attempts != 3 || !strings.Contains(d.LastError, "cannot take") {
			t.Errorf("dead letter %+v", d)
		}
		if requests[d.ID] > 3 {
			t.Errorf("%s got %d requests, over the 3 attempts", d.ID, requests[d.ID])
		}
	}
	if len(requests) != 6 {
		t.Errorf("%d distinct deliveries reached the receiver, want 6: %v", len(requests), requests)
	}

	// Fixed: redrive both; each arrives under its own delivery ID.
	recv.mu.Lock()
	recv.failTypes = map[string]bool{}
	recv.mu.Unlock()
	for _, d := range dead.Items {
		api.must(t, "POST", "/api/v1/deadletters/"+d.ID+"/redrive", nil, 200, nil)
	}
	for {
		_, acked = recv.snapshot()
		if len(acked) == 6 {
			break
		}
		if time.Now().After(deadline.Add(90 * time.Second)) {
			t.Fatalf("redriven deliveries not acked: %v\n%s", acked, ctl.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, d := range dead.Items {
		if acked[d.ID] != d.Event.Type {
			t.Errorf("redriven %s acked as %q", d.ID, acked[d.ID])
		}
	}
	api.must(t, "GET", "/api/v1/deadletters", nil, 200, &dead)
	if len(dead.Items) != 0 {
		t.Errorf("dead letters after redrive: %+v", dead.Items)
	}
	var audit struct {
		Items []struct {
			Action string `json:"action"`
		} `json:"items"`
	}
	api.must(t, "GET", "/api/v1/audit?limit=5", nil, 200, &audit)
	raw, _ := json.Marshal(audit.Items)
	if strings.Count(string(raw), "deadletter.redrive") != 2 {
		t.Errorf("audit %s", raw)
	}
}
