package api

import (
	"encoding/json"
	"net/url"
	"time"
)

// Event types a webhook can be told about.
const (
	// EventLevelChanged: a service's effective level changed (any cause:
	// signals, an override, its expiry, emergency mode).
	EventLevelChanged = "level.changed"
	// EventEmergencyOn and EventEmergencyOff: emergency mode was forced,
	// or ended (by an operator or by its expiry).
	EventEmergencyOn  = "emergency.on"
	EventEmergencyOff = "emergency.off"
	// EventServiceStale: every instance of a service went silent; it keeps
	// its last level. EventServiceLive: one reports again.
	EventServiceStale = "service.stale"
	EventServiceLive  = "service.live"
)

// EventTypes returns every event type, in the order the docs give them.
func EventTypes() []string {
	return []string{EventLevelChanged, EventEmergencyOn, EventEmergencyOff, EventServiceStale, EventServiceLive}
}

// Event is something that happened that webhooks are told about. It is
// written to the outbox in the same transaction as what it reports, and
// is the body of a generic JSON webhook.
type Event struct {
	// ID is unique per event; with the webhook's ID it makes the delivery
	// ID receivers deduplicate by.
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	At      time.Time `json:"at"`
	Service string    `json:"service,omitempty"`
	// Text says what happened in one line, for people (the Slack body).
	Text string `json:"text"`
	// Data holds the type's details: for level.changed from_level,
	// to_level, cause and version; for emergency.* the override.
	Data json.RawMessage `json:"data,omitempty"`
}

// Webhook formats.
const (
	FormatJSON  = "json"  // the Event as JSON
	FormatSlack = "slack" // {"text": Event.Text}, Slack's incoming-webhook body
)

// Webhook is an admin-managed notification destination. Secret signs
// every delivery (HMAC-SHA256); it is shown once, at creation, and kept
// in the store because signing needs it.
type Webhook struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	URL    string `json:"url"`
	Format string `json:"format"`
	// Events, when not empty, are the only event types delivered.
	Events    []string  `json:"events,omitempty"`
	Secret    string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// Wants reports whether the webhook takes events of type typ.
func (w *Webhook) Wants(typ string) bool {
	if len(w.Events) == 0 {
		return true
	}
	for _, e := range w.Events {
		if e == typ {
			return true
		}
	}
	return false
}

// WebhookRequest is the body of POST /webhooks. Format defaults to
// FormatJSON, Events to all of them.
type WebhookRequest struct {
	Name   string   `json:"name"`
	URL    string   `json:"url"`
	Format string   `json:"format,omitempty"`
	Events []string `json:"events,omitempty"`
}

// CreatedWebhook is the answer of POST /webhooks: the webhook and, this
// once, its signing secret.
type CreatedWebhook struct {
	Webhook
	Secret string `json:"secret,omitempty"`
}

// Delivery is one event on its way to one webhook: a row of the outbox
// while it is pending, of the dead-letter table once it ran out of
// attempts. ID (event ID "." webhook ID) is the same in both and across
// redrives: it is the Brownout-Delivery header receivers deduplicate by.
type Delivery struct {
	ID        string `json:"id"`
	WebhookID string `json:"webhook_id"`
	Event     Event  `json:"event"`
	// Attempts counts the attempts started; each is recorded before its
	// request is sent.
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// DeadAt is when the delivery moved to the dead-letter table; zero
	// while it is pending.
	DeadAt time.Time `json:"dead_at,omitzero"`
}

// Redacted returns w with its URL cut to scheme and host: paths of some
// receivers (Slack's among them) are secrets, and lists and the audit
// log are read by more people than the admin who created the webhook.
func (w Webhook) Redacted() Webhook {
	if u, err := url.Parse(w.URL); err == nil && u.Host != "" {
		w.URL = u.Scheme + "://" + u.Host + "/…"
	} else {
		w.URL = "…"
	}
	return w
}
