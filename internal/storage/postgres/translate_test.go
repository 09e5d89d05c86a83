package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

func TestTranslate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		err     error
		code    string
		down    bool   // wraps storage.ErrUnavailable
		message string // part of the message users see
	}{
		{"no rows", pgx.ErrNoRows, brownout.ENOTFOUND, false, "not found"},
		{"unique", &pgconn.PgError{Code: "23505"}, brownout.ECONFLICT, false, "already exists"},
		{"disk full", &pgconn.PgError{Code: "53100"}, brownout.EUNAVAILABLE, true, "disk is full"},
		{"read-only", fmt.Errorf("exec: %w", &pgconn.PgError{Code: "25006"}), brownout.EUNAVAILABLE, true, "read-only"},
		{"shutting down", &pgconn.PgError{Code: "57P01"}, brownout.EUNAVAILABLE, true, "shutting down"},
		{"connection", &pgconn.PgError{Code: "08006"}, brownout.EUNAVAILABLE, true, "connection"},
		{"too many", &pgconn.PgError{Code: "53300"}, brownout.EUNAVAILABLE, true, "no free connections"},
		{"eof", io.ErrUnexpectedEOF, brownout.EUNAVAILABLE, true, "unavailable"},
		{"deadline", context.DeadlineExceeded, brownout.EUNAVAILABLE, true, "unavailable"},
		{"canceled by the caller", context.Canceled, brownout.EINTERNAL, false, ""},
		{"syntax: our bug, not the database's", &pgconn.PgError{Code: "42601"}, brownout.EINTERNAL, false, ""},
		{"brownout error kept", brownout.Errorf(brownout.EINVALID, "x"), brownout.EINVALID, false, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translate(tt.err)
			if code := brownout.ErrorCode(got); code != tt.code {
				t.Fatalf("code %q (%v), want %q", code, got, tt.code)
			}
			if down := errors.Is(got, storage.ErrUnavailable); down != tt.down {
				t.Fatalf("wraps ErrUnavailable: %v, want %v", down, tt.down)
			}
			if tt.message != "" && !strings.Contains(brownout.ErrorMessage(got), tt.message) {
				t.Fatalf("message %q, want it to say %q", brownout.ErrorMessage(got), tt.message)
			}
		})
	}
}
