package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of every delivery.
const (
	// HeaderSignature is "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// t + "." + body under the webhook's secret>".
	HeaderSignature = "Brownout-Signature"
	// HeaderDelivery is the delivery's ID, the same on every attempt and
	// redrive: delivery is at least once, so receivers deduplicate by it.
	HeaderDelivery = "Brownout-Delivery"
	// HeaderEvent is the event's type.
	HeaderEvent = "Brownout-Event"
)

// Sign returns the Brownout-Signature value of body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verification errors.
var (
	ErrBadSignature = errors.New("signature does not match")
	ErrOldSignature = errors.New("signature timestamp outside the tolerance")
)

// Verify checks a Brownout-Signature header against body as a receiver
// does: the HMAC must match (compared in constant time) and the timestamp
// must be within tolerance of now, so that a captured request cannot be
// replayed later. It is what docs/notifications.md shows receivers.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrOldSignature
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return ErrBadSignature
}
