package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
)

// BenchmarkEmergencyCommit: one transaction saving 1,000 services' level
// changes, as a global emergency does, with no webhook and with one.
func BenchmarkEmergencyCommit(b *testing.B) {
	for _, hooks := range []int{0, 1} {
		b.Run(fmt.Sprintf("webhooks=%d", hooks), func(b *testing.B) {
			db := MustOpenDB(b)
			ctx := context.Background()
			for i := range hooks {
				id := fmt.Sprintf("wh%d", i)
				if err := db.CreateWebhook(ctx, brownout.Webhook{ID: id, Name: id, URL: "https://x.example.com/", Format: "json", Secret: "s", CreatedAt: time.Now()}, brownout.AuditEntry{At: time.Now(), Actor: "a", Action: "webhook.create", Target: "webhook:" + id}); err != nil {
					b.Fatal(err)
				}
			}
			batch := make([]brownout.StateChange, 1000)
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				for i := range batch {
					batch[i] = brownout.StateChange{
						State:   brownout.ServiceState{Name: fmt.Sprintf("svc%d", i), Level: 3, ChangedAt: time.Now(), CreatedAt: time.Now()},
						Changes: []brownout.LevelChange{{Kind: brownout.KindEffective, FromLevel: 0, ToLevel: 3, At: time.Now(), Cause: brownout.CauseOverride}},
					}
				}
				if err := db.SaveServiceStates(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
