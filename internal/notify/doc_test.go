package notify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/notify"
)

// verify is the receiver's check that docs/notifications.md shows,
// verbatim (TestDocVerifyIsThisOne holds the two together).
// doc:begin
func verify(secret, header string, body []byte, now time.Time) bool {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return hmac.Equal([]byte(sig), []byte(hex.EncodeToString(m.Sum(nil))))
}

// doc:end

func TestDocVerifyIsThisOne(t *testing.T) {
	doc, err := os.ReadFile("../../docs/notifications.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/notifications.md has no Go block")
	}
	src, err := os.ReadFile("doc_test.go")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	body := s[strings.Index(s, "// doc:begin\n")+len("// doc:begin\n") : strings.Index(s, "\n// doc:end")]
	if string(m[1]) != body {
		t.Fatalf("the doc's verify differs from the tested one:\n%s\n---\n%s", m[1], body)
	}
}

func TestDocVerifyAcceptsOnlyGoodSignatures(t *testing.T) {
	now := time.Now()
	body := []byte(`{"id":"evt_1","type":"service.stale"}`)
	sig := notify.Sign("whsec_k", now, body)
	if !verify("whsec_k", sig, body, now) {
		t.Fatal("a good signature is refused")
	}
	if verify("whsec_other", sig, body, now) || verify("whsec_k", sig, append(body, ' '), now) || verify("whsec_k", sig, body, now.Add(10*time.Minute)) {
		t.Fatal("a bad signature is accepted")
	}
}
