package netlimit_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/brownout-io/brownout/internal/netlimit"
)

func TestSlots(t *testing.T) {
	s := netlimit.NewSlots(3, 2)
	r1, err := s.Acquire("a", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire("a", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire("a", false); !errors.Is(err, netlimit.ErrPerAddr) {
		t.Fatalf("third slot for a: %v, want ErrPerAddr", err)
	}
	if _, err := s.Acquire("a", true); err != nil {
		t.Fatalf("exempt slot: %v", err)
	}
	if _, err := s.Acquire("b", false); !errors.Is(err, netlimit.ErrTotal) {
		t.Fatalf("fourth slot in total: %v, want ErrTotal", err)
	}
	r1()
	r1() // twice is once
	if got := s.Total(); got != 2 {
		t.Fatalf("Total after one release = %d, want 2", got)
	}
	if _, err := s.Acquire("b", false); err != nil {
		t.Fatal(err)
	}
	if _, err := netlimit.NewSlots(0, 0).Acquire("x", false); err != nil {
		t.Fatalf("no caps: %v", err)
	}
}

func TestClientIP(t *testing.T) {
	p, err := netlimit.ParseProxies("10.0.0.0/8, 127.0.0.1, ::1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, remote, xff, realIP, want string
	}{
		{"untrusted peer: headers ignored", "203.0.113.9:5000", "198.51.100.1", "198.51.100.2", "203.0.113.9"},
		{"trusted peer, one hop", "10.1.2.3:5000", "198.51.100.1", "", "198.51.100.1"},
		{"spoofed left part is skipped", "10.1.2.3:5000", "6.6.6.6, 198.51.100.1, 10.9.9.9", "", "198.51.100.1"},
		{"x-real-ip when no xff", "127.0.0.1:5000", "", "198.51.100.2", "198.51.100.2"},
		{"garbage hop stops the walk", "10.1.2.3:5000", "198.51.100.1, junk", "", "10.1.2.3"},
		{"only proxies in xff", "10.1.2.3:5000", "10.0.0.1", "", "10.1.2.3"},
		{"ipv6 loopback proxy", "[::1]:5000", "2001:db8::1", "", "2001:db8::1"},
		{"mapped v4 peer", "[::ffff:10.1.2.3]:5000", "198.51.100.1", "", "198.51.100.1"},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if tt.realIP != "" {
			r.Header.Set("X-Real-IP", tt.realIP)
		}
		if got := p.ClientIP(r); got != tt.want {
			t.Errorf("%s: ClientIP = %s, want %s", tt.name, got, tt.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0/8"} {
		if _, err := netlimit.ParseProxies(bad); err == nil {
			t.Errorf("ParseProxies(%q): no error", bad)
		}
	}
}
