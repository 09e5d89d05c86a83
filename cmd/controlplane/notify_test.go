package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// An operator's round trip through the CLI: a webhook whose receiver
// fails lands its delivery in the dead letters; once the receiver is
// fixed, a redrive delivers it.
func TestWebhookDeadLetterRedrive(t *testing.T) {
	srv := startWithService(t)
	var failing atomic.Bool
	failing.Store(true)
	var got atomic.Int64
	var lastBody atomic.Value
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if failing.Load() {
			http.Error(w, "receiver down", http.StatusBadGateway)
			return
		}
		lastBody.Store(string(b))
		got.Add(1)
	}))
	t.Cleanup(recv.Close)

	r := runAs(t, srv, srv.AdminToken, "webhook", "create", "--name", "ops", "--url", recv.URL+"/hook", "--format", "slack", "--events", "emergency.on")
	if r.err != nil {
		t.Fatalf("webhook create: %v\n%s", r.err, r.stderr)
	}
	if secret := strings.TrimSpace(r.stdout); !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("webhook create stdout = %q, want the secret alone", r.stdout)
	}
	id := regexp.MustCompile(`whk_[0-9a-f]+`).FindString(r.stderr)
	if out := mustRun(t, srv, "webhook", "list"); !strings.Contains(row(out, id), "slack") || strings.Contains(out, "/hook") {
		t.Fatalf("webhook list (the path is a secret):\n%s", out)
	}
	mustRun(t, srv, "emergency", "on", "--reason", "drill")

	var dl string
	deadline := time.Now().Add(30 * time.Second)
	for dl == "" {
		if time.Now().After(deadline) {
			t.Fatal("no dead letter")
		}
		time.Sleep(50 * time.Millisecond)
		out := mustRun(t, srv, "deadletter", "list")
		if m := regexp.MustCompile(`(evt_[0-9a-f]+\.whk_[0-9a-f]+)\s+emergency\.on\s+-\s+3\s`).FindStringSubmatch(out); m != nil {
			dl = m[1]
			if !strings.Contains(out, "502") || !strings.Contains(out, "receiver down") {
				t.Fatalf("dead letter without its last error:\n%s", out)
			}
		}
	}
	failing.Store(false)
	if out := mustRun(t, srv, "deadletter", "redrive", dl); !strings.Contains(out, "back in the outbox") {
		t.Fatalf("redrive printed %q", out)
	}
	for got.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the redriven delivery never arrived")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, _ := lastBody.Load().(string); !strings.Contains(b, `"text":"emergency mode ON by admin`) {
		t.Fatalf("slack body %s", b)
	}
	if out := mustRun(t, srv, "deadletter", "list"); !strings.Contains(out, "No dead letters.") {
		t.Fatalf("after redrive:\n%s", out)
	}
	if out := mustRun(t, srv, "webhook", "delete", id); !strings.Contains(out, "deleted") {
		t.Fatalf("webhook delete printed %q", out)
	}
}
