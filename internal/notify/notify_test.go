package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/notify"
	"github.com/brownout-io/brownout/internal/storage"
	"github.com/brownout-io/brownout/internal/storage/sqlite"
	"github.com/brownout-io/brownout/internal/storage/storagetest"
)

var admin = brownout.Actor{Name: "admin", ID: "admin"}

func openDB(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "b.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// receiver is a real HTTP receiver that fails its first failures
// requests with 500, then answers 204; it checks every signature.
type receiver struct {
	*httptest.Server
	secret   atomic.Pointer[string]
	failures atomic.Int64
	mu       sync.Mutex
	got      []delivery
}

type delivery struct {
	id, event, attempt string
	body               []byte
	sigOK              bool
}

func newReceiver(t *testing.T, failures int64) *receiver {
	r := &receiver{}
	r.failures.Store(failures)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		d := delivery{id: req.Header.Get(notify.HeaderDelivery), event: req.Header.Get(notify.HeaderEvent), attempt: req.Header.Get("Brownout-Attempt"), body: body}
		if s := r.secret.Load(); s != nil {
			d.sigOK = notify.Verify(*s, req.Header.Get(notify.HeaderSignature), body, time.Now(), 5*time.Minute) == nil
		}
		r.mu.Lock()
		r.got = append(r.got, d)
		r.mu.Unlock()
		if r.failures.Add(-1) >= 0 {
			http.Error(w, "not today", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func fastConfig(allow string) notify.Config {
	l, _ := notify.ParseAllowList(allow)
	return notify.Config{Allow: l, AllowPrivate: true, MaxAttempts: 3, Timeout: 5 * time.Second,
		BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond, Poll: 20 * time.Millisecond}
}

func run(t *testing.T, n *notify.Notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stats(t *testing.T, db *sqlite.DB) (int, int) {
	t.Helper()
	p, d, err := db.OutboxStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p, d
}

func create(t *testing.T, n *notify.Notifier, rawURL, format string) (brownout.Webhook, string) {
	t.Helper()
	w, secret, err := n.Create(context.Background(), notify.WebhookRequest{Name: "test", URL: rawURL, Format: format}, admin)
	if err != nil {
		t.Fatal(err)
	}
	return w, secret
}

func addEvent(t *testing.T, db *sqlite.DB, ev brownout.Event) {
	t.Helper()
	if err := db.AddEvents(context.Background(), []brownout.Event{ev}); err != nil {
		t.Fatal(err)
	}
}

// A receiver that fails twice gets the delivery three times, each signed,
// with one delivery ID; it is then gone from the outbox, not dead.
func TestFailsThenSucceeds(t *testing.T) {
	db := openDB(t)
	r := newReceiver(t, 2)
	reg := prometheus.NewRegistry()
	n := notify.New(fastConfig("127.0.0.1"), db, nil, reg)
	_, secret := create(t, n, r.URL+"/hook", brownout.FormatJSON)
	r.secret.Store(&secret)
	ev := storage.StaleEvent("checkout", false, 0, time.Now())
	addEvent(t, db, ev)
	run(t, n)
	waitFor(t, "the delivery to settle", func() bool { p, _ := stats(t, db); return p == 0 })
	got := r.deliveries()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}
	for i, d := range got {
		if !d.sigOK || d.id != got[0].id || !strings.HasPrefix(d.id, ev.ID+".") || d.event != brownout.EventServiceStale || d.attempt != string(rune('1'+i)) {
			t.Fatalf("request %d: %+v", i, d)
		}
		var back brownout.Event
		if err := json.Unmarshal(d.body, &back); err != nil || back.ID != ev.ID || back.Service != "checkout" {
			t.Fatalf("body %s: %v", d.body, err)
		}
	}
	if _, dead := stats(t, db); dead != 0 {
		t.Fatalf("%d dead letters", dead)
	}
	want := map[string]float64{
		"brownout_webhook_deliveries_total": 1, "brownout_webhook_failed_attempts_total": 2, "brownout_webhook_dead_lettered_total": 0,
		"brownout_webhook_outbox_depth": -1, "brownout_webhook_dead_letters": -1, // gauges: present
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		w, ok := want[mf.GetName()]
		if !ok {
			continue
		}
		delete(want, mf.GetName())
		if got := mf.GetMetric()[0].GetCounter().GetValue(); w >= 0 && got != w {
			t.Errorf("%s = %v, want %v", mf.GetName(), got, w)
		}
	}
	if len(want) != 0 {
		t.Errorf("metrics not registered: %v", want)
	}
}

// A receiver that never succeeds: dead-lettered after MaxAttempts with its
// last error; redriven once fixed, it is delivered with the same ID.
func TestDeadLetterAndRedrive(t *testing.T) {
	db := openDB(t)
	r := newReceiver(t, 1<<30)
	n := notify.New(fastConfig("127.0.0.1"), db, nil, nil)
	_, secret := create(t, n, r.URL, brownout.FormatSlack)
	r.secret.Store(&secret)
	addEvent(t, db, storage.StaleEvent("checkout", false, 0, time.Now()))
	run(t, n)
	waitFor(t, "a dead letter", func() bool { _, d := stats(t, db); return d == 1 })
	if got := len(r.deliveries()); got != 3 {
		t.Fatalf("%d attempts before the dead letter, want 3", got)
	}
	page, err := n.DeadLetters(context.Background(), brownout.Filter{})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("dead letters %+v %v", page, err)
	}
	dl := page.Items[0]
	if dl.Attempts != 3 || !strings.Contains(dl.LastError, "500") || !strings.Contains(dl.LastError, "not today") {
		t.Fatalf("dead letter %+v", dl)
	}
	if body := string(r.deliveries()[0].body); body != `{"text":"checkout: stale, no instance reports; it keeps its last level"}` {
		t.Fatalf("slack body %s", body)
	}

	r.failures.Store(0) // fixed
	if _, err := n.Redrive(context.Background(), dl.ID, admin); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the redriven delivery", func() bool { p, d := stats(t, db); return p == 0 && d == 0 })
	got := r.deliveries()
	if len(got) != 4 || got[3].id != dl.ID || got[3].attempt != "1" || !got[3].sigOK {
		t.Fatalf("after redrive: %+v", got)
	}
	audit, err := db.ListAudit(context.Background(), brownout.Filter{})
	if err != nil || len(audit.Items) != 2 || audit.Items[0].Action != "deadletter.redrive" {
		t.Fatalf("audit %+v %v", audit.Items, err)
	}
}

// Finding: a webhook could reach the controller's own loopback services.
// Without --webhook-allow-private the dialled address is checked after
// resolution: a name on the allow-list that resolves to 127.0.0.1
// (DNS rebinding, or plain "localhost") is refused at dial time and
// nothing reaches the receiver.
func TestLoopbackRefusedAtDialTime(t *testing.T) {
	db := openDB(t)
	r := newReceiver(t, 0)
	cfg := fastConfig("localhost,127.0.0.1")
	cfg.AllowPrivate = false
	n := notify.New(cfg, db, nil, nil)
	u, _ := url.Parse(r.URL)
	// An IP literal in a refused range is refused at creation, clearly.
	_, _, err := n.Create(context.Background(), notify.WebhookRequest{Name: "x", URL: r.URL}, admin)
	storagetest.WantCode(t, err, brownout.EINVALID)
	if !strings.Contains(brownout.ErrorMessage(err), "--webhook-allow-private") {
		t.Fatalf("message %q", brownout.ErrorMessage(err))
	}
	// A name passes creation; its address is refused when dialled.
	create(t, n, "http://localhost:"+u.Port()+"/hook", brownout.FormatJSON)
	addEvent(t, db, storage.StaleEvent("checkout", false, 0, time.Now()))
	run(t, n)
	waitFor(t, "a dead letter", func() bool { _, d := stats(t, db); return d == 1 })
	if got := len(r.deliveries()); got != 0 {
		t.Fatalf("the receiver got %d requests", got)
	}
	page, _ := n.DeadLetters(context.Background(), brownout.Filter{})
	if len(page.Items) != 1 || !strings.Contains(page.Items[0].LastError, "address refused") || page.Items[0].Attempts != 1 {
		t.Fatalf("dead letter %+v", page.Items)
	}
}

// Finding: a receiver could bounce deliveries to an internal address
// with a redirect. Redirects are never followed.
func TestRedirectNotFollowed(t *testing.T) {
	db := openDB(t)
	inner := newReceiver(t, 0)
	outer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inner.URL+"/admin", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(outer.Close)
	n := notify.New(fastConfig("127.0.0.1"), db, nil, nil)
	create(t, n, outer.URL, brownout.FormatJSON)
	addEvent(t, db, storage.StaleEvent("checkout", false, 0, time.Now()))
	run(t, n)
	waitFor(t, "a dead letter", func() bool { _, d := stats(t, db); return d == 1 })
	if got := len(inner.deliveries()); got != 0 {
		t.Fatalf("the redirect target got %d requests", got)
	}
	page, _ := n.DeadLetters(context.Background(), brownout.Filter{})
	if len(page.Items) != 1 || !strings.Contains(page.Items[0].LastError, "not followed") {
		t.Fatalf("dead letter %+v", page.Items)
	}
}

// Webhook creation refuses, with 422 or 413 naming the rule: hosts off the
// allow-list, no allow-list at all, bad schemes, credentials, long names
// and URLs, unknown formats and events, and more webhooks than the limit.
func TestCreateRefusals(t *testing.T) {
	db := openDB(t)
	cfg := fastConfig("hooks.slack.com,*.example.com")
	cfg.AllowPrivate = false
	cfg.MaxWebhooks = 2
	n := notify.New(cfg, db, nil, nil)
	ok := notify.WebhookRequest{Name: "ops", URL: "https://a.example.com/x"}
	cases := []struct {
		name string
		edit func(*notify.WebhookRequest)
		code string
		want string
	}{
		{"off the list", func(r *notify.WebhookRequest) { r.URL = "https://evil.test/x" }, brownout.EINVALID, "allow-list"},
		{"apex of a wildcard", func(r *notify.WebhookRequest) { r.URL = "https://example.com/x" }, brownout.EINVALID, "allow-list"},
		{"suffix trick", func(r *notify.WebhookRequest) { r.URL = "https://evilexample.com/x" }, brownout.EINVALID, "allow-list"},
		{"scheme", func(r *notify.WebhookRequest) { r.URL = "file:///etc/passwd" }, brownout.EINVALID, "http"},
		{"credentials", func(r *notify.WebhookRequest) { r.URL = "https://u:p@a.example.com/" }, brownout.EINVALID, "credentials"},
		{"long url", func(r *notify.WebhookRequest) {
			r.URL = "https://a.example.com/" + strings.Repeat("a", notify.MaxURLLen)
		}, brownout.ETOOLARGE, "limit"},
		{"no name", func(r *notify.WebhookRequest) { r.Name = " " }, brownout.EINVALID, "required"},
		{"long name", func(r *notify.WebhookRequest) { r.Name = strings.Repeat("n", notify.MaxNameLen+1) }, brownout.ETOOLARGE, "limit"},
		{"format", func(r *notify.WebhookRequest) { r.Format = "xml" }, brownout.EINVALID, "slack"},
		{"event", func(r *notify.WebhookRequest) { r.Events = []string{"level.changd"} }, brownout.EINVALID, "level.changed"},
	}
	for _, c := range cases {
		req := ok
		c.edit(&req)
		_, _, err := n.Create(context.Background(), req, admin)
		storagetest.WantCode(t, err, c.code)
		if !strings.Contains(brownout.ErrorMessage(err), c.want) {
			t.Fatalf("%s: message %q lacks %q", c.name, brownout.ErrorMessage(err), c.want)
		}
	}
	for range 2 {
		if _, _, err := n.Create(context.Background(), ok, admin); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := n.Create(context.Background(), ok, admin)
	storagetest.WantCode(t, err, brownout.EINVALID)
	if !strings.Contains(brownout.ErrorMessage(err), "--max-webhooks") {
		t.Fatalf("message %q", brownout.ErrorMessage(err))
	}
	none := notify.New(notify.Config{}, db, nil, nil)
	_, _, err = none.Create(context.Background(), ok, admin)
	storagetest.WantCode(t, err, brownout.EINVALID)
	if !strings.Contains(brownout.ErrorMessage(err), "--webhook-allow") {
		t.Fatalf("message %q", brownout.ErrorMessage(err))
	}
}

func TestRefusedRanges(t *testing.T) {
	for _, c := range []struct {
		addr    string
		refused bool
	}{
		{"127.0.0.1", true}, {"10.1.2.3", true}, {"172.16.0.1", true}, {"192.168.1.1", true},
		{"100.64.0.1", true}, {"169.254.169.254", true}, {"0.0.0.0", true}, {"224.0.0.1", true},
		{"255.255.255.255", true}, {"::1", true}, {"::", true}, {"fe80::1", true}, {"fd00::1", true},
		{"ff02::1", true}, {"::ffff:127.0.0.1", true}, {"::ffff:10.0.0.1", true}, {"64:ff9b::a00:1", true},
		{"8.8.8.8", false}, {"1.1.1.1", false}, {"2606:4700:4700::1111", false}, {"64:ff9b::808:808", false},
	} {
		got, why := notify.Refused(netip.MustParseAddr(c.addr))
		if got != c.refused {
			t.Errorf("%s: refused %v (%s), want %v", c.addr, got, why, c.refused)
		}
	}
}

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	sig := notify.Sign("whsec_x", now, body)
	if !strings.HasPrefix(sig, "t=1700000000,v1=") {
		t.Fatalf("signature %q", sig)
	}
	if err := notify.Verify("whsec_x", sig, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"other secret": notify.Verify("whsec_y", sig, body, now, 5*time.Minute),
		"other body":   notify.Verify("whsec_x", sig, []byte(`{"id":"evt_2"}`), now, 5*time.Minute),
		"replayed":     notify.Verify("whsec_x", sig, body, now.Add(time.Hour), 5*time.Minute),
		"garbage":      notify.Verify("whsec_x", "v1=00", body, now, 5*time.Minute),
	} {
		if err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

// Dead letters past --webhook-dead-letter-retention are deleted; younger
// ones stay for a redrive.
func TestDeadLetterRetention(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	cfg := fastConfig("127.0.0.1")
	cfg.DeadLetterRetention = time.Hour
	n := notify.New(cfg, db, nil, nil)
	create(t, n, "http://127.0.0.1:9/", brownout.FormatJSON)
	addEvent(t, db, storage.StaleEvent("old", false, 0, time.Now()))
	addEvent(t, db, storage.StaleEvent("young", false, 0, time.Now()))
	ds, err := db.ClaimDeliveries(ctx, time.Now(), time.Hour, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("claim %d %v", len(ds), err)
	}
	for _, d := range ds {
		at := time.Now().Add(-time.Minute)
		if d.Event.Service == "old" {
			at = time.Now().Add(-2 * time.Hour)
		}
		if err := db.DeadLetter(ctx, d.ID, at, "x"); err != nil {
			t.Fatal(err)
		}
	}
	run(t, n)
	waitFor(t, "the old dead letter to go", func() bool { _, d := stats(t, db); return d == 1 })
	page, _ := n.DeadLetters(ctx, brownout.Filter{})
	if len(page.Items) != 1 || page.Items[0].Event.Service != "young" {
		t.Fatalf("left %+v", page.Items)
	}
}

// A receiver that holds the first request past --webhook-timeout gets a
// second attempt, which it answers: a timeout is retried, not buried.
func TestTimeoutIsRetried(t *testing.T) {
	db := openDB(t)
	var calls atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // so that the server notices the client leaving
		if calls.Add(1) == 1 {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(recv.Close)
	cfg := fastConfig("127.0.0.1")
	cfg.Timeout = 200 * time.Millisecond
	n := notify.New(cfg, db, nil, nil)
	create(t, n, recv.URL, brownout.FormatJSON)
	addEvent(t, db, storage.StaleEvent("checkout", false, 0, time.Now()))
	run(t, n)
	waitFor(t, "the delivery to settle", func() bool { p, _ := stats(t, db); return p == 0 })
	if _, dead := stats(t, db); dead != 0 || calls.Load() != 2 {
		t.Fatalf("%d dead letters after %d requests, want 0 after 2", dead, calls.Load())
	}
}
