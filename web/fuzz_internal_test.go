package web

import (
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzRedirectTarget feeds arbitrary next values and Referer paths to the
// redirect checks. Property: whatever safeNext and back return is a path
// on this origin as browsers read it: one leading "/", no backslash, no
// control character or space, no scheme or host, and no decoded path that
// begins with "//".
func FuzzRedirectTarget(f *testing.F) {
	for _, s := range []string{"/", "/services/a?range=1h", "/\t/evil.example", "//evil", "/\\evil", "/%5Cevil", "/%2F/evil", "https://evil", "/ok#frag", "/a/../..//evil", "/%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		check := func(what, got string) {
			t.Helper()
			if got == "" || got[0] != '/' || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\") {
				t.Fatalf("%s(%q) = %q", what, p, got)
			}
			for i := 0; i < len(got); i++ {
				if got[i] <= ' ' || got[i] >= 0x7f {
					t.Fatalf("%s(%q) = %q holds byte %#x", what, p, got, got[i])
				}
			}
			u, err := url.Parse(got)
			if err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(u.Path, "//") || strings.Contains(u.Path, "\\") {
				t.Fatalf("%s(%q) = %q leaves this origin (%v)", what, p, got, err)
			}
		}
		check("safeNext", safeNext(p))
		r := httptest.NewRequest("POST", "http://dash.example/emergency", nil)
		r.Header.Set("Referer", "http://dash.example"+p)
		check("back", back(r, "/"))
	})
}

// FuzzSessionCookie decodes arbitrary cookie values, and mutations of a
// valid one. Property: nothing panics, and a value that decodes carries
// exactly the payload that was signed.
func FuzzSessionCookie(f *testing.F) {
	s := signer{key: []byte("0123456789abcdef0123456789abcdef")}
	now := time.Unix(1_700_000_000, 0)
	// A fixed session (encodeSession draws a random id, and every fuzz
	// worker runs this setup on its own).
	payload := "tok_1|" + strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + "|0123456789abcdef0123456789abcdef|" + b64.EncodeToString([]byte("binding-value"))
	valid := b64.EncodeToString([]byte(payload)) + "." + b64.EncodeToString(s.mac("session", payload))
	if got, ok := s.decodeSession(valid, now); !ok || got.raw != payload {
		f.Fatalf("the valid seed does not decode: %+v, %v", got, ok)
	}
	f.Add(valid)
	f.Add("")
	f.Add(".")
	f.Add(strings.Repeat("a", 600))
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := s.decodeSession(v, now)
		if ok && (got.raw != payload || got.ID != "0123456789abcdef0123456789abcdef" || got.TokenID != "tok_1") {
			t.Fatalf("forged cookie %q accepted as %+v", v, got)
		}
	})
}
