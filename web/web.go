// Package web is the operator dashboard.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/auth"
	"github.com/brownout-io/brownout/internal/controller"
)

// History is what the dashboard reads of the past.
type History interface {
	ListAudit(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.AuditEntry], error)
	ListLevelChanges(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.LevelChange], error)
	QuerySamples(ctx context.Context, service string, from, to time.Time, step time.Duration) ([]brownout.SamplePoint, error)
}

// Deps are the dashboard's collaborators.
type Deps struct {
	Controller *controller.Controller
	Auth       *auth.Authenticator
	History    History
	Log        *slog.Logger
	Now        func() time.Time
	// SessionKey signs session cookies; it persists in the data directory.
	SessionKey []byte
	// OriginPatterns are extra hosts allowed to open the live websocket.
	OriginPatterns []string
}

// New returns the dashboard's handler.
func New(d Deps) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>Brownout</title><h1>Brownout</h1><p>The API is at <a href="/api/openapi.yaml">/api/openapi.yaml</a>.</p>`))
	})
	return mux
}
