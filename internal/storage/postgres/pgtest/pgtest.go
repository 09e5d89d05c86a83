// Package pgtest gives tests a database of their own on a real PostgreSQL
// server: by default 127.0.0.1:5432 as user postgres (trust
// authentication), or the server BROWNOUT_TEST_POSTGRES names (a
// postgres:// URL). Without a server the test is skipped, except under
// CI=true, where it fails: CI must never pass by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultDSN is the server tests use when BROWNOUT_TEST_POSTGRES is unset.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerDSN returns the DSN of the test server (BROWNOUT_TEST_POSTGRES or
// DefaultDSN).
func ServerDSN() string {
	if dsn := os.Getenv("BROWNOUT_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return DefaultDSN
}

// NewDatabase creates an empty database for tb on the test server and
// returns its postgres:// DSN; it is dropped, with whatever is still
// connected to it, when the test ends. Each test gets its own database
// rather than a schema because LISTEN/NOTIFY channels are per database.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server := ServerDSN()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("PostgreSQL test server %s unreachable (required with CI=true): %v", redact(server), err)
		}
		tb.Skipf("PostgreSQL test server %s unreachable (set BROWNOUT_TEST_POSTGRES): %v", redact(server), err)
	}
	defer admin.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "brownout_test_" + hex.EncodeToString(b[:])
	// template0: copying template1 fails while anything else is connected
	// to it, which parallel tests would be.
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0`); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
	})
	return WithDatabase(tb, server, name)
}

// WithDatabase returns dsn with its database replaced by name.
func WithDatabase(tb testing.TB, dsn, name string) string {
	tb.Helper()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " dbname=" + name
	}
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("BROWNOUT_TEST_POSTGRES is not a URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}
