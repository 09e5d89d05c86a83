// Command peers measures pushing one change to N clients with Brownout and
// with the servers a user would pick instead, on the same machine in the
// same run, each server in its own process so that its CPU and memory are
// its own:
//
//   - Brownout: one override changes a service's level; N real SDK
//     instances (sdk.Connect) each apply the new state.
//   - centrifuge v0.40 (the library behind Centrifugo): one Publish to a
//     channel that N websocket clients are subscribed to server-side.
//   - centrifuge-ack: the same, but each client answers every publication
//     with a message of its own, which the server reads and counts, as a
//     Brownout SDK acknowledges every state it applies (the controller's
//     convergence). A bare broadcast reads nothing back; this row prices
//     that difference.
//   - flagd (OpenFeature's flag daemon), when --flagd-bin names a binary:
//     one atomic rewrite of its flag file, streamed to N SyncFlags streams
//     (what its in-process providers hold), each parsing the whole flag
//     configuration.
//
// For each it reports the time from the change to the last client having
// it, server CPU per client per change and server memory per connected
// client, and the ratios to Brownout.
//
//	go build -o ../../bin/controlplane ../../cmd/controlplane
//	go run . --bin ../../bin/controlplane --flagd-bin PATH --clients 1000,5000
//
// --cpu-profile DIR also writes CPU profiles of each server (flagd's
// excepted) and of the tool's own clients during the changes.
//
// It is its own module so that centrifuge and its dependencies stay out of
// Brownout's.
package main
