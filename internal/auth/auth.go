// Package auth issues, checks and revokes API tokens. Secrets are random,
// shown once, stored only as SHA-256 hashes and compared in constant time.
// Active tokens are cached in memory so that checking a request costs a
// hash and a map lookup, not a database round trip.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/sdk/api"
)

// Store is what the authenticator needs from durable storage.
type Store interface {
	CreateToken(ctx context.Context, t brownout.Token, a brownout.AuditEntry) error
	ListTokens(ctx context.Context) ([]brownout.Token, error)
	ActiveTokens(ctx context.Context) ([]brownout.Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time, a brownout.AuditEntry) (brownout.Token, error)
}

// Principal is who a request acts as.
type Principal struct {
	TokenID string
	Name    string
	Scope   string
	// Service is the one service an sdk token may act for.
	Service string

	// hash is the SHA-256 of the token's secret: it tells one secret from
	// another under the same ID (the bootstrap admin token is always
	// AdminTokenID, whatever its secret).
	hash [32]byte
}

// SessionBinding returns a value tied to the exact token behind p, its ID
// and its secret, keyed with key so that it reveals nothing of either. A
// dashboard session keeps it from sign-in and compares it on every
// request: when the token is revoked, or CONTROLPLANE_ADMIN_TOKEN is given
// a new secret under the same ID, the session no longer matches.
func (p Principal) SessionBinding(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("session-binding\x00"))
	m.Write([]byte(p.TokenID))
	m.Write([]byte{0})
	m.Write(p.hash[:])
	return m.Sum(nil)[:16]
}

// CanRead reports whether p may read everything (dashboard, API GETs).
func (p Principal) CanRead() bool {
	return p.Scope == brownout.ScopeAdmin || p.Scope == brownout.ScopeViewer
}

// Actor is p as the audit log records it.
func (p Principal) Actor() brownout.Actor { return brownout.Actor{ID: p.TokenID, Name: p.Name} }

// IsAdmin reports whether p may change things.
func (p Principal) IsAdmin() bool { return p.Scope == brownout.ScopeAdmin }

// CanActFor reports whether p may report or subscribe for service.
func (p Principal) CanActFor(service string) bool {
	return p.Scope == brownout.ScopeAdmin || (p.Scope == brownout.ScopeSDK && p.Service == service)
}

// AdminTokenID is the ID of the bootstrap admin token.
const AdminTokenID = "admin"

// adminName is the bootstrap admin token's name.
const adminName = "admin"

// Limits.
const (
	MaxTokenNameLen = 64
	MaxTokens       = 10_000
	tokenPrefix     = "bo_"
	// maxSecretLen bounds what is hashed for a presented token.
	maxSecretLen = 256
)

// Authenticator checks presented secrets against the active tokens.
type Authenticator struct {
	store     Store
	now       func() time.Time
	adminHash [32]byte

	// syncMu orders every change of the token set: a create or revoke
	// (its commit and its entry here) and a reload (its read of the
	// store and the swap). A reload whose read a local commit overtook
	// would otherwise undo it: a new token would count as revoked (and
	// the hub refuses a revoked token for good), a revoked one would
	// authenticate again. Authentication takes only mu.
	syncMu sync.Mutex
	mu     sync.RWMutex
	byHash map[[32]byte]brownout.Token
	byID   map[string][32]byte // token ID → key in byHash

	hookMu   sync.Mutex
	onRevoke []func(tokenID string)
}

// OnRevoke adds a function called with a token's ID whenever the token is
// revoked, after it has stopped authenticating. Whoever holds connections
// opened with tokens (the dashboard's live sockets) registers here, so that
// a revocation through any door closes them. fn must not block.
func (a *Authenticator) OnRevoke(fn func(tokenID string)) {
	a.hookMu.Lock()
	a.onRevoke = append(a.onRevoke, fn)
	a.hookMu.Unlock()
}

// New loads the active tokens. adminSecret is the bootstrap admin token.
func New(ctx context.Context, store Store, adminSecret string, now func() time.Time) (*Authenticator, error) {
	if adminSecret == "" {
		return nil, fmt.Errorf("empty admin token")
	}
	if now == nil {
		now = time.Now
	}
	a := &Authenticator{store: store, now: now, adminHash: sha256.Sum256([]byte(adminSecret)), byHash: map[[32]byte]brownout.Token{}, byID: map[string][32]byte{}}
	toks, err := store.ActiveTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("load tokens: %w", err)
	}
	for _, t := range toks {
		var h [32]byte
		copy(h[:], t.Hash)
		a.byHash[h] = t
		a.byID[t.ID] = h
	}
	return a, nil
}

// Authenticate returns the principal of a presented secret, or an
// EUNAUTHORIZED error.
func (a *Authenticator) Authenticate(secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, brownout.Errorf(brownout.EUNAUTHORIZED, "missing token: send Authorization: Bearer TOKEN")
	}
	if len(secret) > maxSecretLen {
		return Principal{}, brownout.Errorf(brownout.EUNAUTHORIZED, "invalid token")
	}
	h := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(h[:], a.adminHash[:]) == 1 {
		return a.admin(), nil
	}
	a.mu.RLock()
	t, ok := a.byHash[h]
	a.mu.RUnlock()
	// The map lookup is by hash of a high-entropy secret; the compare below
	// keeps the final check constant-time all the same.
	if !ok || subtle.ConstantTimeCompare(t.Hash, h[:]) != 1 {
		return Principal{}, brownout.Errorf(brownout.EUNAUTHORIZED, "invalid or revoked token")
	}
	return principal(t), nil
}

func (a *Authenticator) admin() Principal {
	return Principal{TokenID: AdminTokenID, Name: adminName, Scope: brownout.ScopeAdmin, hash: a.adminHash}
}

func principal(t brownout.Token) Principal {
	p := Principal{TokenID: t.ID, Name: t.Name, Scope: t.Scope, Service: t.Service}
	copy(p.hash[:], t.Hash)
	return p
}

// TokenRequest is the body of POST /tokens: the API's api.TokenRequest
// with its checks.
type TokenRequest api.TokenRequest

// Validate checks a token request.
func (r TokenRequest) Validate() error {
	switch r.Scope {
	case brownout.ScopeAdmin, brownout.ScopeViewer:
		if r.Service != "" {
			return brownout.FieldErrorf(brownout.EINVALID, "service", "only sdk tokens are bound to a service")
		}
	case brownout.ScopeSDK:
		if r.Service == "" {
			return brownout.FieldErrorf(brownout.EINVALID, "service", "is required for an sdk token")
		}
		if err := brownout.CheckName("service", r.Service); err != nil {
			return err
		}
	default:
		return brownout.FieldErrorf(brownout.EINVALID, "scope", "must be admin, viewer or sdk")
	}
	name := strings.TrimSpace(r.Name)
	if name == "" {
		return brownout.FieldErrorf(brownout.EINVALID, "name", "is required")
	}
	if strings.EqualFold(name, brownout.SystemActor) || strings.EqualFold(name, adminName) {
		return brownout.FieldErrorf(brownout.EINVALID, "name", "%q is reserved: %q and %q are the controller's own actors in the audit log; choose a name that says who uses the token", name, brownout.SystemActor, adminName)
	}
	if len(name) > MaxTokenNameLen {
		return brownout.FieldErrorf(brownout.EINVALID, "name", "must be at most %d bytes", MaxTokenNameLen)
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f {
			return brownout.FieldErrorf(brownout.EINVALID, "name", "must not contain control characters")
		}
	}
	return nil
}

// Create issues a token and returns it with its secret, which is never
// available again.
func (a *Authenticator) Create(ctx context.Context, req TokenRequest, actor brownout.Actor) (brownout.Token, string, error) {
	if err := req.Validate(); err != nil {
		return brownout.Token{}, "", err
	}
	a.mu.RLock()
	n := len(a.byHash)
	a.mu.RUnlock()
	if n >= MaxTokens {
		return brownout.Token{}, "", brownout.Errorf(brownout.EINVALID, "there are already %d active tokens, the most allowed; revoke some first", MaxTokens)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return brownout.Token{}, "", fmt.Errorf("random: %w", err)
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	h := sha256.Sum256([]byte(secret))
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	t := brownout.Token{
		ID: "tok_" + hex.EncodeToString(idb[:]), Name: strings.TrimSpace(req.Name), Scope: req.Scope, Service: req.Service,
		Hash: h[:], CreatedAt: a.now().UTC(), CreatedBy: actor.Name,
	}
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	if err := a.store.CreateToken(ctx, t, audit(t.CreatedAt, actor, "token.create", "token:"+t.ID, nil, t)); err != nil {
		return brownout.Token{}, "", fmt.Errorf("store token: %w", err)
	}
	a.mu.Lock()
	a.byHash[h] = t
	a.byID[t.ID] = h
	a.mu.Unlock()
	return t, secret, nil
}

// List returns every token, revoked ones included, newest first.
func (a *Authenticator) List(ctx context.Context) ([]brownout.Token, error) {
	return a.store.ListTokens(ctx)
}

// Revoke revokes a token. The caller closes its live connections after
// Revoke returns: the token is gone from Active and Lookup before Revoke
// returns, so a connection registered after the close checks Active once
// registered and ends itself (see Active).
func (a *Authenticator) Revoke(ctx context.Context, id string, actor brownout.Actor) (brownout.Token, error) {
	if id == AdminTokenID {
		return brownout.Token{}, brownout.Errorf(brownout.ECONFLICT, "the bootstrap admin token is set by configuration (CONTROLPLANE_ADMIN_TOKEN or the admin.token file) and cannot be revoked through the API")
	}
	now := a.now().UTC()
	a.syncMu.Lock()
	a.mu.RLock()
	before := a.byHash[a.byID[id]]
	a.mu.RUnlock()
	after := before
	after.RevokedAt = &now
	t, err := a.store.RevokeToken(ctx, id, now, audit(now, actor, "token.revoke", "token:"+id, before, after))
	if err != nil {
		a.syncMu.Unlock()
		return brownout.Token{}, err
	}
	a.mu.Lock()
	if h, ok := a.byID[id]; ok {
		delete(a.byHash, h)
		delete(a.byID, id)
	}
	a.mu.Unlock()
	a.syncMu.Unlock()
	a.hookMu.Lock()
	hooks := a.onRevoke
	a.hookMu.Unlock()
	for _, fn := range hooks {
		fn(id)
	}
	return t, nil
}

func audit(at time.Time, actor brownout.Actor, action, target string, before, after any) brownout.AuditEntry {
	return brownout.AuditEntry{At: at, Actor: actor.Name, ActorID: actor.ID, Action: action, Target: target, Before: mustJSON(before), After: mustJSON(after)}
}

// Reload re-reads the active tokens from the store, for a change made
// through another replica that shares it: tokens created there start to
// authenticate here, and tokens revoked there stop, and the OnRevoke hooks
// run for each so that their connections on this replica close.
func (a *Authenticator) Reload(ctx context.Context) error {
	a.syncMu.Lock()
	toks, err := a.store.ActiveTokens(ctx)
	if err != nil {
		a.syncMu.Unlock()
		return fmt.Errorf("load tokens: %w", err)
	}
	byHash := make(map[[32]byte]brownout.Token, len(toks))
	byID := make(map[string][32]byte, len(toks))
	for _, t := range toks {
		var h [32]byte
		copy(h[:], t.Hash)
		byHash[h] = t
		byID[t.ID] = h
	}
	a.mu.Lock()
	var gone []string
	for id := range a.byID {
		if _, ok := byID[id]; !ok {
			gone = append(gone, id)
		}
	}
	a.byHash, a.byID = byHash, byID
	a.mu.Unlock()
	a.syncMu.Unlock()
	if len(gone) == 0 {
		return nil
	}
	a.hookMu.Lock()
	hooks := a.onRevoke
	a.hookMu.Unlock()
	for _, id := range gone {
		for _, fn := range hooks {
			fn(id)
		}
	}
	return nil
}

// Active reports whether the token with this ID may still be used. A
// long-lived connection checks it after registering where revocation will
// find it: a revocation either finds the connection or is seen here.
func (a *Authenticator) Active(id string) bool {
	_, ok := a.Lookup(id)
	return ok
}

// Lookup returns the principal of an active token by its ID, for sessions
// that remember a token's ID rather than its secret. The bootstrap admin
// token's ID is AdminTokenID.
func (a *Authenticator) Lookup(id string) (Principal, bool) {
	if id == AdminTokenID {
		return a.admin(), true
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	h, ok := a.byID[id]
	if !ok {
		return Principal{}, false
	}
	return principal(a.byHash[h]), true
}
