package sqlite

import (
	"testing"

	"github.com/brownout-io/brownout/internal/storage"
)

func TestAuditService(t *testing.T) {
	t.Parallel()
	tests := []struct{ target, want string }{
		{"service:checkout", "checkout"},
		{"service:checkout/flags", "checkout"},
		{"service:checkout:thresholds", "checkout"},
		{"override:o1 service:checkout", "checkout"},
		{"override:o1 service:*", ""},
		{"checkout", ""},
		{"thresholds:*", ""},
		{"token:t1", ""},
		{"service:", ""},
		{"service:Bad/x", ""},
		{"myservice:checkout", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := storage.AuditService(tt.target); got != tt.want {
			t.Errorf("auditService(%q) = %q, want %q", tt.target, got, tt.want)
		}
	}
}
