package brownout

import "github.com/brownout-io/brownout/sdk/api"

// Notification types live in sdk/api, where the API's clients read them.
const (
	EventLevelChanged = api.EventLevelChanged
	EventEmergencyOn  = api.EventEmergencyOn
	EventEmergencyOff = api.EventEmergencyOff
	EventServiceStale = api.EventServiceStale
	EventServiceLive  = api.EventServiceLive
	FormatJSON        = api.FormatJSON
	FormatSlack       = api.FormatSlack
)

// EventTypes returns every event type.
func EventTypes() []string { return api.EventTypes() }

// Event is something webhooks are told about.
type Event = api.Event

// Webhook is an admin-managed notification destination.
type Webhook = api.Webhook

// Delivery is one event on its way to one webhook.
type Delivery = api.Delivery
