// Package sdk lets a Go service live with Brownout: it receives the
// service's degradation level and feature flags from the controller, and
// reports the load and error rate the controller decides on.
//
// # Reading flags
//
// Connect returns a Client at once; the connection is made in the
// background. Enabled, Level and State read an immutable snapshot through an
// atomic pointer: no lock, no allocation, a few nanoseconds, safe from any
// goroutine, so they belong on hot paths:
//
//	if client.Enabled("recommendations") {
//		recs = recommend(user)
//	}
//
// A flag the controller does not name falls back to the defaults given with
// WithDefaults, then false.
//
// # Never failing the caller
//
// The client never returns an error from a read. What it serves, by
// precedence:
//
//  1. The break-glass switch: the BROWNOUT_FORCE_LEVEL environment variable
//     or the file of WithForceFile (polled every second) forces a level on
//     this host, for when the controller cannot be reached at all.
//  2. The staleness policy (WithStalenessPolicy): after the controller has
//     been unreachable for a while, FallTo serves at least a given level.
//     The default, HoldLast, keeps the last state.
//  3. The last state the controller pushed.
//  4. Before the first state: the state file's last-known-good state
//     (WithStateFile), else the defaults (WithDefaults).
//
// When the level comes from this host (1, 2) the flags are those the
// controller last sent for that level, else those given with WithLevelFlags
// for it, else the defaults. State.Source says which case applies.
//
// # Connection
//
// The client subscribes over a websocket, sends the version it holds so
// that a reconnect that missed nothing costs one small frame, and
// acknowledges every state it applies, which lets the controller show
// convergence and propagation latency. Versions never go back: a state not
// newer than the one applied is ignored. It reconnects with capped
// exponential backoff and full jitter (0.5 s doubling to 30 s), reset once a
// connection has lasted 30 s, and honours Retry-After. A refused token
// (401, close code 4401) or a token for another service (403, 4403) is
// final: the client stops trying and reports it through Err, the handler of
// WithErrorHandler and the log, and keeps serving what it has.
//
// # Reporting
//
// Every report interval the client sends the process's CPU and memory
// percentages and the requests and errors counted since the previous report
// (Middleware, Transport, Record), plus the state of each registered
// component (Register). While disconnected, reports wait in a bounded
// buffer, oldest dropped first and counted in Stats.
//
// # Reacting
//
// OnChange callbacks run on one goroutine of the client, in registration
// order, outside any lock; changes that happen while a callback runs are
// coalesced (latest wins). Shed turns optional routes away with 503 and
// Retry-After from a given level on.
package sdk
