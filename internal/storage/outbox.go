package storage

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/sdk/wire"
)

// The outbox, as every store keeps it.
//
// Each event a transaction commits (an effective level change in a saved
// batch; an emergency override created or cleared; what AddEvents is
// given) becomes one row per webhook that wants it, in the outbox table,
// in that same transaction: the event is durable exactly when what it
// reports is. A deliverer claims rows with a lease (a lease_until column,
// plus FOR UPDATE SKIP LOCKED on PostgreSQL), so that every replica may
// deliver and no delivery is held by two of them; a claimer that dies
// leaves its rows to the next claim once the lease runs out. Attempts are
// counted (StartAttempt) before each request is sent, so a crash
// mid-request neither loses the delivery nor forgets the attempt. A
// delivery out of attempts moves, in one transaction, to the dead-letter
// table, from which an admin can redrive it.

// DeadLetterCursor is the cursor kind of the dead-letter list.
const DeadLetterCursor = "deadletters"

// NewEventID returns a fresh, random event ID.
func NewEventID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "evt_" + hex.EncodeToString(b[:])
}

// EventPattern is the SQL LIKE pattern that a webhook's events column
// (JoinEvents, wrapped in commas) matches when it wants events of type
// typ. Event types hold no LIKE wildcard.
func EventPattern(typ string) string { return "%," + typ + ",%" }

// JoinEvents and SplitEvents encode a webhook's event filter in one text
// column: the types joined by commas, "" for all.
func JoinEvents(types []string) string { return strings.Join(types, ",") }

// SplitEvents is JoinEvents' inverse.
func SplitEvents(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// LevelEvents returns the level.changed events of a saved state: one per
// effective level change.
func LevelEvents(st brownout.ServiceState, changes []brownout.LevelChange) []brownout.Event {
	var out []brownout.Event
	for _, c := range changes {
		if c.Kind != brownout.KindEffective {
			continue
		}
		service := c.Service
		if service == "" {
			service = st.Name
		}
		version := c.Version
		if version == 0 {
			version = st.Version
		}
		text := fmt.Sprintf("%s: level %s → %s (%s)", service, wire.Level(c.FromLevel), wire.Level(c.ToLevel), c.Cause)
		if st.Detail != "" {
			text += ": " + st.Detail
		}
		data, _ := json.Marshal(map[string]any{
			"from_level": c.FromLevel, "to_level": c.ToLevel, "cause": c.Cause, "version": version,
		})
		out = append(out, brownout.Event{ID: NewEventID(), Type: brownout.EventLevelChanged, At: c.At.UTC(), Service: service, Text: text, Data: data})
	}
	return out
}

// EmergencyEvent returns the event of emergency override o starting
// (on) or ending at at.
func EmergencyEvent(o brownout.Override, on bool, at time.Time) brownout.Event {
	data, _ := json.Marshal(o)
	if on {
		text := fmt.Sprintf("emergency mode ON by %s: every service at %s: %s", o.Actor, wire.Level(o.Level), o.Reason)
		if o.ExpiresAt != nil {
			text += fmt.Sprintf(" (until %s)", o.ExpiresAt.UTC().Format(time.RFC3339))
		}
		return brownout.Event{ID: NewEventID(), Type: brownout.EventEmergencyOn, At: at.UTC(), Text: text, Data: data}
	}
	by := o.ClearedBy
	if by == "" {
		by = "expiry"
	}
	return brownout.Event{ID: NewEventID(), Type: brownout.EventEmergencyOff, At: at.UTC(), Text: "emergency mode OFF (" + by + "); computed levels apply", Data: data}
}

// StaleEvent returns the event of service going stale (live false: no
// instance reports any more) or live again.
func StaleEvent(service string, live bool, instances int, at time.Time) brownout.Event {
	data, _ := json.Marshal(map[string]any{"instances": instances})
	if live {
		return brownout.Event{ID: NewEventID(), Type: brownout.EventServiceLive, At: at.UTC(), Service: service, Text: fmt.Sprintf("%s: reporting again (%d live instances)", service, instances), Data: data}
	}
	return brownout.Event{ID: NewEventID(), Type: brownout.EventServiceStale, At: at.UTC(), Service: service, Text: service + ": stale, no instance reports; it keeps its last level", Data: data}
}

// CheckEvent refuses an event a store cannot write.
func CheckEvent(ev brownout.Event) error {
	if ev.ID == "" || ev.Type == "" {
		return brownout.Errorf(brownout.EBADREQUEST, "event id and type must not be empty")
	}
	return nil
}
