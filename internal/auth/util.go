package auth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

// AdminTokenFile is the file in the data directory that holds a generated
// admin token.
const AdminTokenFile = "admin.token"

// LoadOrCreateAdminToken returns the admin token kept in dir, creating it
// (mode 0600) on first use. created tells whether it was just made.
func LoadOrCreateAdminToken(dir string) (token, path string, created bool, err error) {
	path = filepath.Join(dir, AdminTokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", path, false, fmt.Errorf("admin token file %s is empty", path)
		}
		return t, path, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", path, false, fmt.Errorf("read admin token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", path, false, err
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return "", path, false, fmt.Errorf("write admin token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", path, false, fmt.Errorf("write admin token: %w", err)
	}
	return token, path, true, nil
}

// Throttle limits authentication failures per client address: after
// Burst failures, one more is allowed every Every. It keeps at most
// maxClients entries, evicting the oldest.
type Throttle struct {
	Burst int
	Every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	clients map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

const maxThrottleClients = 10_000

// NewThrottle returns a throttle allowing burst failures, refilled one per
// every.
func NewThrottle(burst int, every time.Duration, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{Burst: burst, Every: every, now: now, clients: map[string]*bucket{}}
}

// Blocked reports whether addr has used up its failures, and how long to
// wait.
func (t *Throttle) Blocked(addr string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.clients[addr]
	if b == nil {
		return false, 0
	}
	t.refill(b)
	if b.tokens >= 1 {
		return false, 0
	}
	return true, time.Duration((1 - b.tokens) * float64(t.Every))
}

// Fail records an authentication failure from addr.
func (t *Throttle) Fail(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.clients[addr]
	if b == nil {
		if len(t.clients) >= maxThrottleClients {
			t.evict()
		}
		b = &bucket{tokens: float64(t.Burst), at: t.now()}
		t.clients[addr] = b
	}
	t.refill(b)
	if b.tokens > 0 {
		b.tokens--
	}
}

func (t *Throttle) refill(b *bucket) {
	now := t.now()
	if el := now.Sub(b.at); el > 0 {
		b.tokens += float64(el) / float64(t.Every)
		if b.tokens > float64(t.Burst) {
			b.tokens = float64(t.Burst)
		}
		b.at = now
	}
}

// evict drops full buckets (clients that have not failed lately), or the
// oldest half when all are in use.
func (t *Throttle) evict() {
	for k, b := range t.clients {
		t.refill(b)
		if b.tokens >= float64(t.Burst) {
			delete(t.clients, k)
		}
	}
	if len(t.clients) < maxThrottleClients {
		return
	}
	n := 0
	for k := range t.clients {
		delete(t.clients, k)
		n++
		if n >= maxThrottleClients/2 {
			return
		}
	}
}

// SessionKeyFile is the file in the data directory that holds the key
// signing dashboard session cookies, so sessions survive a restart.
const SessionKeyFile = "session.key"

// LoadOrCreateSessionKey returns the 32-byte session key kept in dir,
// creating it (mode 0600) on first use.
func LoadOrCreateSessionKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, SessionKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		key, derr := base64.RawURLEncoding.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(key) < 32 {
			return nil, fmt.Errorf("session key file %s is corrupt; delete it to make a new one", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read session key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(base64.RawURLEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write session key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("write session key: %w", err)
	}
	return key, nil
}
