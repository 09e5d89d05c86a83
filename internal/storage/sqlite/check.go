package sqlite

import (
	"context"
	"log/slog"

	"github.com/brownout-io/brownout/internal/storage"
)

// The store contract: a signature drift breaks the build here, not in a
// consumer.
var (
	_ storage.Store = (*DB)(nil)

	_ func(context.Context, string, *slog.Logger) (*DB, error) = Open
)
