// Package replica runs one controller among several replicas that share a
// store (PostgreSQL): it campaigns for leadership with the store's lease
// and tells the controller when it leads (its state commits then fenced by
// the leadership term) and when it follows; it feeds the store's change
// feed to the controller, the authenticator and the hub, so that a
// follower publishes every committed change exactly like the leader; it
// ships the reports this replica received to the leader as per-tick
// partial sums; and it keeps this replica's row in the replica set
// (leader, subscribers, notification lag) fresh.
//
// With the embedded SQLite store there is one replica, which always leads:
// the same control loop runs with no campaign, no feed and no partials.
package replica
