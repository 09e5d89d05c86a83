package brownout

import (
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	good := []string{"a", "checkout", "checkout-7f9c", "a.b_c-d", "0", strings.Repeat("a", 64)}
	bad := []string{"", "A", "-a", ".a", "_a", "a b", "a/b", "ä", strings.Repeat("a", 65), "a\x00"}
	for _, s := range good {
		if !ValidName(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range bad {
		if ValidName(s) {
			t.Errorf("%q accepted", s)
		}
		err := CheckName("service", s)
		if ErrorCode(err) != EBADREQUEST || !strings.Contains(err.Error(), NameRule) {
			t.Errorf("%q: error %v does not name the rule", s, err)
		}
	}
}

func TestErrorMessageHidesInternals(t *testing.T) {
	if got := ErrorMessage(errString("sql: database is locked at /data/x.db")); got != "internal error" {
		t.Fatalf("got %q", got)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
