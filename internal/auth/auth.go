package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"callbridge/internal/store"
)

// ErrUnauthorized is returned for a key that is empty, malformed or unknown (never
// issued, removed or rotated away); callers answer 401 and must not say which.
var ErrUnauthorized = errors.New("auth: unauthorized")

// DefaultTTL bounds how long a removed or rotated key keeps working on a node that
// saw it recently: short enough for revocation, long enough to spare the store a
// query on every request of a busy integration.
const DefaultTTL = 5 * time.Second

// maxCache bounds the cache so a node with very many keys cannot grow without limit.
const maxCache = 10000

// maxKeyLen rejects absurd Authorization values before they reach the store.
const maxKeyLen = 256

// Principal is who a request acts as: an integration of a tenant, with its scope.
type Principal struct {
	Tenant   string
	ClientID string
	Scope    store.Scope
	// CRMUser is set for user-scope keys: the CRM user whose calls the key may see.
	CRMUser string
}

type cached struct {
	p   Principal
	exp time.Time
}

// Authenticator resolves keys to principals, caching hits briefly.
type Authenticator struct {
	st  store.Store
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cached // by key hash: the cache never holds a key
}

// NewAuthenticator reads keys from st and caches hits for ttl (0: DefaultTTL;
// negative: no cache, every request asks the store).
func NewAuthenticator(st store.Store, ttl time.Duration) *Authenticator {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	return &Authenticator{st: st, ttl: ttl, now: time.Now, cache: map[[sha256.Size]byte]cached{}}
}

// Authenticate returns the principal key stands for, or ErrUnauthorized. Other
// errors mean the store could not answer (the key may be fine).
func (a *Authenticator) Authenticate(ctx context.Context, key string) (Principal, error) {
	if key == "" || len(key) > maxKeyLen || !strings.HasPrefix(key, KeyPrefix) {
		return Principal{}, ErrUnauthorized
	}
	h := sha256.Sum256([]byte(key))
	now := a.now()
	if a.ttl > 0 {
		a.mu.Lock()
		c, ok := a.cache[h]
		a.mu.Unlock()
		if ok && now.Before(c.exp) {
			return c.p, nil
		}
	}
	// Looking a key up by its hash leaks nothing through timing: an attacker cannot
	// choose hashes, so learning how much of one matched tells them nothing.
	in, err := a.st.IntegrationByHash(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		a.forget(h)
		return Principal{}, ErrUnauthorized
	}
	if err != nil {
		// The store's error never contains the key (only its hash is sent).
		return Principal{}, fmt.Errorf("auth: look up key: %w", err)
	}
	if !in.Scope.Valid() || (in.Scope == store.ScopeUser) != (in.CRMUser != "") {
		// A row no Manager would write: refuse rather than guess what it may do.
		return Principal{}, ErrUnauthorized
	}
	p := Principal{Tenant: in.Tenant, ClientID: in.ClientID, Scope: in.Scope, CRMUser: in.CRMUser}
	if a.ttl > 0 {
		a.put(h, cached{p: p, exp: now.Add(a.ttl)}, now)
	}
	return p, nil
}

func (a *Authenticator) put(h [sha256.Size]byte, c cached, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.cache[h]; !ok && len(a.cache) >= maxCache {
		for k, v := range a.cache {
			if !now.Before(v.exp) {
				delete(a.cache, k)
			}
		}
		// Still full of live entries: drop arbitrary ones (map order is random); they
		// cost one store query each when next used.
		for k := range a.cache {
			if len(a.cache) < maxCache {
				break
			}
			delete(a.cache, k)
		}
	}
	a.cache[h] = c
}

func (a *Authenticator) forget(h [sha256.Size]byte) {
	a.mu.Lock()
	delete(a.cache, h)
	a.mu.Unlock()
}

// Invalidate empties the cache so a key removed or rotated through this process
// stops working at once rather than within the TTL.
func (a *Authenticator) Invalidate() {
	a.mu.Lock()
	clear(a.cache)
	a.mu.Unlock()
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p, for handlers behind an authenticating layer.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal WithPrincipal stored, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
