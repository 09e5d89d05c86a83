package web

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/web/pages/service"
)

func TestSessionCookie(t *testing.T) {
	s := signer{key: []byte("0123456789abcdef0123456789abcdef")}
	now := time.Unix(1_700_000_000, 0)
	value, sess := s.encodeSession("tok_1", []byte("binding"), now.Add(time.Hour))
	got, ok := s.decodeSession(value, now)
	if !ok || got.TokenID != "tok_1" || got.raw != sess.raw {
		t.Fatalf("decode = %+v, %v", got, ok)
	}
	if _, ok := s.decodeSession(value, now.Add(time.Hour)); ok {
		t.Error("expired session accepted")
	}
	other := signer{key: []byte("another key of thirty-two bytes!")}
	if _, ok := other.decodeSession(value, now); ok {
		t.Error("session signed with another key accepted")
	}
	p, sig, _ := strings.Cut(value, ".")
	forged := b64.EncodeToString([]byte("admin|9999999999|00")) + "." + sig
	if _, ok := s.decodeSession(forged, now); ok || p == "" {
		t.Error("payload swapped under a valid signature accepted")
	}
	if !s.checkCSRF(sess, s.csrf(sess)) {
		t.Error("own CSRF token refused")
	}
	_, sess2 := s.encodeSession("tok_1", []byte("binding"), now.Add(time.Hour))
	if s.checkCSRF(sess, s.csrf(sess2)) {
		t.Error("another session's CSRF token accepted")
	}
	if s.checkCSRF(sess, "") || s.checkLogin("", s.loginToken("")) {
		t.Error("empty tokens accepted")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/services/a?range=1h": "/services/a?range=1h",
		"//evil.example/":      "/",
		"/\\evil.example":      "/",
		"https://evil.example": "/",
		"/login?next=/":        "/",
		"":                     "/",
		"/\t/evil.example":     "/",
		"/%5Cevil.example":     "/",
		"/%2F/evil.example":    "/",
		"/overrides#o-1":       "/overrides#o-1",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseThresholds(t *testing.T) {
	def := levels.Default()
	f := service.FormOf(def, false)
	form := url.Values{"cooldown": {f.Cooldown}}
	for i := range 3 {
		for j := range 3 {
			for k := range 2 {
				form.Set(service.FieldName(i, j, k == 1), f.Cells[i][j][k])
			}
		}
	}
	got, _, err := parseThresholds(form.Get)
	if err != nil {
		t.Fatalf("parse defaults: %v", err)
	}
	if got.Validate() != nil || got.Levels[2].ErrorRate.Enter != 0.25 || time.Duration(got.Cooldown) != time.Minute {
		t.Errorf("round trip of the defaults = %+v", got)
	}
	form.Set("levels[1].memory.exit", "lots")
	_, kept, err := parseThresholds(form.Get)
	var be *brownout.Error
	if err == nil || !asError(err, &be) || be.Field != "levels[1].memory.exit" || kept.Cells[1][1][1] != "lots" {
		t.Errorf("bad number: err %v, kept %q", err, kept.Cells[1][1][1])
	}
}

func asError(err error, target **brownout.Error) bool {
	e, ok := err.(*brownout.Error)
	*target = e
	return ok
}

func TestFlagSetFromForm(t *testing.T) {
	global := featureflags.Default()
	form := url.Values{"flag": {"analytics", "personalization", "real_time_data", "recommendations"}}
	// Defaults as they are, except analytics on at level 1, plus a new flag
	// on at levels 0 and 1.
	for _, f := range []string{"analytics", "personalization", "real_time_data", "recommendations"} {
		form.Set("f:"+f+":0", "on")
	}
	form.Set("f:real_time_data:1", "on")
	form.Set("f:analytics:1", "on")
	form.Set("new_flag", "dark_mode")
	form.Set("new:0", "on")
	form.Set("new:1", "on")
	set, _ := flagSetFromForm(form, global)
	if err := set.Validate(false); err != nil {
		t.Fatalf("invalid set: %v", err)
	}
	eff := featureflags.Merge(global, set)
	if !eff[1]["analytics"] || eff[2]["analytics"] || !eff[0]["dark_mode"] || !eff[1]["dark_mode"] || eff[2]["dark_mode"] {
		t.Errorf("merged = %v", eff)
	}
	// Only the differences and the new flag are the service's own.
	own := 0
	for _, lf := range set.Levels {
		own += len(lf.Flags)
	}
	if own != 5 {
		t.Errorf("own cells = %d, want 5 (analytics@1, dark_mode@0-3): %+v", own, set)
	}
	// Nothing changed: no own set at all.
	form = url.Values{"flag": {"analytics"}, "f:analytics:0": {"on"}}
	if set, _ := flagSetFromForm(form, global); len(set.Levels) != 0 {
		t.Errorf("unchanged form gave %+v", set)
	}
}

func TestBands(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	changes := []brownout.LevelChange{ // newest first
		{Kind: brownout.KindEffective, FromLevel: 2, ToLevel: 0, At: t0.Add(40 * time.Minute)},
		{Kind: brownout.KindComputed, FromLevel: 0, ToLevel: 3, At: t0.Add(30 * time.Minute)},
		{Kind: brownout.KindEffective, FromLevel: 0, ToLevel: 2, At: t0.Add(20 * time.Minute)},
	}
	got := service.Bands(changes, t0, t0.Add(time.Hour), 0)
	want := []int{0, 2, 0}
	if len(got) != len(want) {
		t.Fatalf("bands = %+v", got)
	}
	for i, b := range got {
		if b.Level != want[i] {
			t.Errorf("band %d level %d, want %d", i, b.Level, want[i])
		}
	}
	if !got[1].From.Equal(t0.Add(20*time.Minute)) || !got[1].To.Equal(t0.Add(40*time.Minute)) {
		t.Errorf("L2 band = %v–%v", got[1].From, got[1].To)
	}
}
