// Package notify tells people and systems what the controller did: it
// manages webhooks (generic JSON or Slack-compatible) and delivers the
// events that the store wrote to its outbox, signed, with retries, and
// with a dead-letter table for what could not be delivered.
//
// The outbox is written by the store in the same transaction as the event
// (see internal/storage/outbox.go), so an event is never lost and never
// announced for a change that did not commit. Delivery is at least once:
// a crash between a receiver's 2xx and the outbox's update sends the
// delivery again, with the same Brownout-Delivery ID.
package notify

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/sdk/api"
	"github.com/brownout-io/brownout/sdk/retry"
)

// Limits on what an admin sends.
const (
	// MaxWebhooksDefault is the default --max-webhooks.
	MaxWebhooksDefault = 50
	// DeadLetterRetentionDefault is the default
	// --webhook-dead-letter-retention.
	DeadLetterRetentionDefault = 30 * 24 * time.Hour
	// MaxURLLen bounds a webhook URL.
	MaxURLLen = 2048
	// MaxNameLen bounds a webhook name.
	MaxNameLen = 128
	// MaxResponseRead is how much of a receiver's answer is read.
	MaxResponseRead = 64 << 10
	// maxErrorText bounds the error recorded for a failed attempt.
	maxErrorText = 512
)

// Store is what notifications need from the store.
type Store interface {
	CreateWebhook(ctx context.Context, w brownout.Webhook, a brownout.AuditEntry) error
	ListWebhooks(ctx context.Context) ([]brownout.Webhook, error)
	DeleteWebhook(ctx context.Context, id string, a brownout.AuditEntry) (brownout.Webhook, error)
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, n int) ([]brownout.Delivery, error)
	StartAttempt(ctx context.Context, id string, now time.Time, lease time.Duration) (int, error)
	FailAttempt(ctx context.Context, id, msg string) error
	CompleteDelivery(ctx context.Context, id string) error
	RetryLater(ctx context.Context, id string, at time.Time, msg string) error
	DeadLetter(ctx context.Context, id string, at time.Time, msg string) error
	ListDeadLetters(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.Delivery], error)
	RedriveDeadLetter(ctx context.Context, id string, at time.Time, a brownout.AuditEntry) (brownout.Delivery, error)
	OutboxStats(ctx context.Context) (pending, dead int, err error)
	PruneDeadLetters(ctx context.Context, before time.Time, batch int) (int, error)
}

// Config tunes notifications. Zero values take the defaults.
type Config struct {
	// Allow is the destination allow-list (--webhook-allow); empty
	// refuses every webhook.
	Allow AllowList
	// AllowPrivate lets deliveries reach loopback, private and other
	// internal ranges (--webhook-allow-private).
	AllowPrivate bool
	// MaxAttempts is the most attempts per delivery before it is
	// dead-lettered (3, --webhook-max-attempts).
	MaxAttempts int
	// Timeout bounds each attempt: connect, TLS, answer (10 s,
	// --webhook-timeout).
	Timeout time.Duration
	// BaseDelay and MaxDelay shape the full-jitter exponential backoff
	// between attempts (1 s and 30 s).
	BaseDelay, MaxDelay time.Duration
	// Poll is how often the outbox is checked for due deliveries (1 s).
	Poll time.Duration
	// Workers bounds deliveries in flight (4).
	Workers int
	// MaxWebhooks bounds the webhooks (50, --max-webhooks).
	MaxWebhooks int
	// DeadLetterRetention is how long dead letters are kept for a redrive
	// (30 days, --webhook-dead-letter-retention).
	DeadLetterRetention time.Duration
	// Exclusive, when set, is the store when no other process delivers
	// from it (SQLite, whose data directory is locked): Run frees the
	// leases a killed predecessor left instead of waiting them out.
	Exclusive interface {
		ReleaseLeases(ctx context.Context) (int, error)
	}
	// Now is the clock.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = time.Second
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 30 * time.Second
	}
	c.MaxDelay = max(c.MaxDelay, c.BaseDelay)
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.MaxWebhooks <= 0 {
		c.MaxWebhooks = MaxWebhooksDefault
	}
	if c.DeadLetterRetention <= 0 {
		c.DeadLetterRetention = DeadLetterRetentionDefault
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Notifier manages webhooks and delivers the outbox. Create it with New;
// Run delivers until its context ends.
type Notifier struct {
	cfg    Config
	store  Store
	log    *slog.Logger
	client *http.Client
	lease  time.Duration
	kick   chan struct{}
	// claimWarned is when a failed claim was last logged; Run only.
	claimWarned time.Time

	// createMu serialises creations, so that two cannot pass
	// MaxWebhooks together.
	createMu sync.Mutex

	budgetMu sync.Mutex
	budgets  map[string]*retry.Budget

	delivered, failed, deadLettered prometheus.Counter
	pending, dead                   prometheus.Gauge
}

// New returns a Notifier. reg, when set, receives its metrics.
func New(cfg Config, store Store, log *slog.Logger, reg prometheus.Registerer) *Notifier {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{
		cfg: cfg, store: store, log: log,
		client: newClient(cfg.Timeout, cfg.AllowPrivate),
		// A lease outlives one attempt and the longest wait before the
		// next, with slack for clocks of replicas that disagree a little.
		lease:   cfg.Timeout + cfg.MaxDelay + 15*time.Second,
		kick:    make(chan struct{}, 1),
		budgets: map[string]*retry.Budget{},
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "brownout_webhook_deliveries_total", Help: "Webhook deliveries acknowledged with a 2xx.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "brownout_webhook_failed_attempts_total", Help: "Webhook delivery attempts that failed (each retry counts).",
		}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "brownout_webhook_dead_lettered_total", Help: "Webhook deliveries moved to the dead letters.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "brownout_webhook_outbox_depth", Help: "Webhook deliveries waiting in the outbox (the whole store's).",
		}),
		dead: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "brownout_webhook_dead_letters", Help: "Webhook deliveries in the dead letters, waiting for a redrive (the whole store's).",
		}),
	}
	if reg != nil {
		reg.MustRegister(n.delivered, n.failed, n.deadLettered, n.pending, n.dead)
	}
	return n
}

// WebhookRequest is the body of POST /webhooks.
type WebhookRequest = api.WebhookRequest

func (n *Notifier) validate(req *WebhookRequest) error {
	req.Name = strings.TrimSpace(req.Name)
	switch {
	case req.Name == "":
		return brownout.FieldErrorf(brownout.EINVALID, "name", "is required")
	case len(req.Name) > MaxNameLen:
		return brownout.FieldErrorf(brownout.ETOOLARGE, "name", "is %d bytes, longer than the limit of %d", len(req.Name), MaxNameLen)
	}
	switch req.Format {
	case "":
		req.Format = brownout.FormatJSON
	case brownout.FormatJSON, brownout.FormatSlack:
	default:
		return brownout.FieldErrorf(brownout.EINVALID, "format", "must be %q or %q", brownout.FormatJSON, brownout.FormatSlack)
	}
	types := brownout.EventTypes()
	if len(req.Events) > len(types) {
		return brownout.FieldErrorf(brownout.ETOOLARGE, "events", "lists %d types; there are %d", len(req.Events), len(types))
	}
	for _, e := range req.Events {
		if !slices.Contains(types, e) {
			return brownout.FieldErrorf(brownout.EINVALID, "events", "%q is not an event type (%s)", e, strings.Join(types, ", "))
		}
	}
	slices.Sort(req.Events)
	req.Events = slices.Compact(req.Events)
	_, err := n.checkURL(req.URL)
	return err
}

func audit(at time.Time, actor brownout.Actor, action, target string, before, after any) brownout.AuditEntry {
	b, _ := json.Marshal(before)
	a, _ := json.Marshal(after)
	return brownout.AuditEntry{At: at, Actor: actor.Name, ActorID: actor.ID, Action: action, Target: target, Before: b, After: a}
}

// Create validates and stores a webhook, audited, and returns it with its
// signing secret, which is never shown again.
func (n *Notifier) Create(ctx context.Context, req WebhookRequest, actor brownout.Actor) (brownout.Webhook, string, error) {
	if err := n.validate(&req); err != nil {
		return brownout.Webhook{}, "", err
	}
	n.createMu.Lock()
	defer n.createMu.Unlock()
	hooks, err := n.store.ListWebhooks(ctx)
	if err != nil {
		return brownout.Webhook{}, "", fmt.Errorf("list webhooks: %w", err)
	}
	if len(hooks) >= n.cfg.MaxWebhooks {
		return brownout.Webhook{}, "", brownout.Errorf(brownout.EINVALID, "there are already %d webhooks, the limit (--max-webhooks); delete some first", len(hooks))
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	w := brownout.Webhook{
		ID: "whk_" + hex.EncodeToString(idb[:]), Name: req.Name, URL: req.URL, Format: req.Format, Events: req.Events,
		Secret: "whsec_" + base64.RawURLEncoding.EncodeToString(raw[:]), CreatedAt: n.cfg.Now().UTC(), CreatedBy: actor.Name,
	}
	// The audit entry shows the webhook without its secret (json:"-").
	if err := n.store.CreateWebhook(ctx, w, audit(w.CreatedAt, actor, "webhook.create", "webhook:"+w.ID, nil, w.Redacted())); err != nil {
		return brownout.Webhook{}, "", fmt.Errorf("store webhook: %w", err)
	}
	return w, w.Secret, nil
}

// List returns every webhook, oldest first, URLs redacted.
func (n *Notifier) List(ctx context.Context) ([]brownout.Webhook, error) {
	hooks, err := n.store.ListWebhooks(ctx)
	if err != nil {
		return nil, err
	}
	for i := range hooks {
		hooks[i] = hooks[i].Redacted()
	}
	return hooks, nil
}

// Delete removes a webhook and its pending deliveries, audited.
func (n *Notifier) Delete(ctx context.Context, id string, actor brownout.Actor) (brownout.Webhook, error) {
	now := n.cfg.Now().UTC()
	var before brownout.Webhook
	if hooks, err := n.store.ListWebhooks(ctx); err == nil {
		for _, w := range hooks {
			if w.ID == id {
				before = w.Redacted()
			}
		}
	}
	w, err := n.store.DeleteWebhook(ctx, id, audit(now, actor, "webhook.delete", "webhook:"+id, before, nil))
	if err != nil {
		return brownout.Webhook{}, err
	}
	return w.Redacted(), nil
}

// DeadLetters pages the dead letters, newest first.
func (n *Notifier) DeadLetters(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.Delivery], error) {
	return n.store.ListDeadLetters(ctx, f)
}

// Redrive moves a dead letter back to the outbox with its attempts reset,
// audited, and wakes the deliverer.
func (n *Notifier) Redrive(ctx context.Context, id string, actor brownout.Actor) (brownout.Delivery, error) {
	now := n.cfg.Now().UTC()
	d, err := n.store.RedriveDeadLetter(ctx, id, now, audit(now, actor, "deadletter.redrive", "delivery:"+id, nil, map[string]any{"id": id}))
	if err != nil {
		return brownout.Delivery{}, err
	}
	n.Kick()
	return d, nil
}

// Allowed returns the destination allow-list, for display.
func (n *Notifier) Allowed() []string { return append([]string(nil), n.cfg.Allow...) }

// Kick makes the deliverer look at the outbox now rather than at its next
// poll.
func (n *Notifier) Kick() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *Notifier) budget(webhook string) *retry.Budget {
	n.budgetMu.Lock()
	defer n.budgetMu.Unlock()
	b, ok := n.budgets[webhook]
	if !ok {
		b = retry.NewBudget(retry.BudgetConfig{})
		n.budgets[webhook] = b
	}
	return b
}
