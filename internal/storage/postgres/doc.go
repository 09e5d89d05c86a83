// Package postgres is Brownout's store for several controller replicas: one
// PostgreSQL database that every replica shares, through a pgx pool. It
// implements the same contract as the embedded SQLite store (storage.Store,
// proven by the same storagetest suite) and what replicas need on top of it
// (replica.Store): a change feed, a leadership lease with fenced commits,
// per-tick report partials and the replica registry.
//
// # Schema and migrations
//
// The schema is migrations/postgres, numbered like migrations/sqlite (one
// history, a file per dialect). Open applies it with goose under goose's
// Postgres session locker (an advisory lock held for the run), so replicas
// starting together migrate once: the others wait for the lock, then find
// nothing to do. Times are BIGINT Unix nanoseconds, as in SQLite, so both
// stores answer alike; JSON documents are TEXT, kept byte for byte. The
// epoch is made by the first migration, in the database.
//
// # Durability and versions
//
// Every method that changes something commits before it returns, the change
// and its audit entry in one transaction (synchronous_commit as the server
// is configured; the default waits for the WAL flush). A service's version
// is allocated by the upsert that commits its state: a state saved with
// Version 0 takes the stored version plus one, under the row's lock, so two
// replicas committing the same service get consecutive versions and a
// version never goes back, across replicas and failover.
//
// # Change feed
//
// Each committing transaction also sends pg_notify on Channel with a
// brownout.Change naming what changed (a service's state and version, a
// config scope, an override or token id), so PostgreSQL delivers it to
// every listener only if, and after, the transaction commits. Listen
// follows the channel on a connection of its own; every (re)connect is
// announced as a ChangeResync, once LISTEN is in place, so that the
// receiver re-reads what it holds and a notification lost while it was
// disconnected never leaves it stale. A silent connection is probed every
// few seconds, so a cut is noticed in seconds.
//
// # Leadership
//
// One row (leader) holds the lease: holder, term and expiry, all on the
// database's clock. Lead takes it when it is free or expired (term + 1) or
// renews it. A state commit whose context carries a brownout.Fence first
// reads the lease row FOR SHARE and refuses with brownout.ErrFenced unless
// the fence is the current unexpired lease; a takeover's UPDATE waits for
// that commit, so a deposed leader's write can never land after the new
// leader's first.
//
// # Errors
//
// As in SQLite: *brownout.Error for what the caller caused. A database that
// cannot be reached — refused or broken connections, a write that does not
// finish within Options.WriteTimeout, a server shutting down — is an error
// wrapping storage.ErrUnavailable (503); the pool reconnects on its own.
package postgres
