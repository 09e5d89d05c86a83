package postgres

import (
	"context"

	"github.com/brownout-io/brownout/internal/storage"
)

// The store contract: a signature drift breaks the build here, not in a
// consumer. What replicas need on top (replica.Store) is asserted by the
// tests, which may import the consumer.
var (
	_ storage.Store = (*DB)(nil)

	_ func(context.Context, string, Options) (*DB, error) = Open
)
