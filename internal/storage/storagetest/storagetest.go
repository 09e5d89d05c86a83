// Package storagetest is the store contract as tests: Run holds a store to
// everything storage.Store promises, so that the SQLite and the PostgreSQL
// store prove themselves against the same suite. Each store's own tests
// call it with an Opener that makes a fresh, empty store:
//
//	func TestContract(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store { return MustOpenDB(t) })
//	}
package storagetest

import (
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// Opener returns a fresh, empty store for one test and closes it (and
// removes what it made) when the test ends.
type Opener func(t *testing.T) storage.Store

// Run runs the contract suite against the stores open makes, each test in
// its own store and in parallel.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"ConfigRoundTrip", testConfigRoundTrip},
		{"ConfigBadServiceName", testConfigBadServiceName},
		{"SaveServiceState", testSaveServiceState},
		{"VersionsAllocated", testVersionsAllocated},
		{"VersionsAllocatedConcurrently", testVersionsAllocatedConcurrently},
		{"Overrides", testOverrides},
		{"Tokens", testTokens},
		{"EndedSessions", testEndedSessions},
		{"SaveServiceStatesIsAllOrNothing", testSaveServiceStatesIsAllOrNothing},
		{"OverrideWithStatesIsAllOrNothing", testOverrideWithStatesIsAllOrNothing},
		{"ListAuditPagination", testListAuditPagination},
		{"ListBadCursor", testListBadCursor},
		{"AuditActorID", testAuditActorID},
		{"ListLevelChangesPagination", testListLevelChangesPagination},
		{"QuerySamplesRaw", testQuerySamplesRaw},
		{"QuerySamplesWeighting", testQuerySamplesWeighting},
		{"QuerySamplesBadRequest", testQuerySamplesBadRequest},
		{"SamplesReplace", testSamplesReplace},
		{"FreshStoreStaysRaw", testFreshStoreStaysRaw},
		{"RollupAndPrune", testRollupAndPrune},
		{"Epoch", testEpoch},
		{"Ping", testPing},
		{"Observer", testObserver},
		{"RetireService", testRetireService},
		{"Webhooks", testWebhooks},
		{"OutboxInSameTransaction", testOutboxInSameTransaction},
		{"DeliveryLifecycle", testDeliveryLifecycle},
		{"DeadLetterPagination", testDeadLetterPagination},
		{"ClaimsDoNotOverlap", testClaimsDoNotOverlap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

// WantCode fails the test unless err carries a *brownout.Error with code.
func WantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want code %q", code)
	}
	if got := brownout.ErrorCode(err); got != code {
		tb.Fatalf("got code %q (%v), want %q", got, err, code)
	}
}

// TS returns a fixed UTC time offset by d, so that tests never read the
// clock.
func TS(d time.Duration) time.Time {
	return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(d)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
