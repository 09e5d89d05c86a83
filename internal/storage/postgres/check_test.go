package postgres

import "github.com/brownout-io/brownout/internal/replica"

var _ replica.Store = (*DB)(nil)
