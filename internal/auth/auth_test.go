package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"callbridge/internal/store"
	"callbridge/internal/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openStore(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "cb.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestGenerateKey(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		key, hash, prefix, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(key, "cb_") {
			t.Fatalf("key %q lacks cb_", key)
		}
		raw, err := base64.RawURLEncoding.DecodeString(key[3:])
		if err != nil || len(raw) != 32 {
			t.Fatalf("key body: %d bytes, %v", len(raw), err)
		}
		if prefix != key[:8] {
			t.Fatalf("prefix %q of %q", prefix, key)
		}
		if string(hash) != string(Hash(key)) || len(hash) != 32 {
			t.Fatal("hash is not SHA-256 of the key")
		}
		if seen[key] {
			t.Fatal("repeated key")
		}
		seen[key] = true
	}
}

func TestManager(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	if err := st.AddTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	m := Manager{Store: st}

	tests := []struct {
		name           string
		tenant, client string
		scope          store.Scope
		user           string
		wantErr        error
	}{
		{"integration", "", "crm", store.ScopeIntegration, "", nil},
		{"user", "", "alice-widget", store.ScopeUser, "alice", nil},
		{"other tenant same id", "acme", "crm", store.ScopeIntegration, "", nil},
		{"duplicate", "", "crm", store.ScopeAdmin, "", store.ErrExists},
		{"user without crm user", "", "u2", store.ScopeUser, "", store.ErrInvalid},
		{"integration with crm user", "", "i2", store.ScopeIntegration, "bob", store.ErrInvalid},
		{"crm user with a space inside", "", "u3", store.ScopeUser, "bob smith", nil},
		{"crm user with a trailing space", "", "u4", store.ScopeUser, "bob ", store.ErrInvalid},
		{"crm user with a control character", "", "u5", store.ScopeUser, "bob\x1fsmith", store.ErrInvalid},
		{"bad scope", "", "x", store.Scope("root"), "", store.ErrInvalid},
		{"empty client id", "", "", store.ScopeAdmin, "", store.ErrInvalid},
		{"client id with slash", "", "a/b", store.ScopeAdmin, "", store.ErrInvalid},
		{"client id too long", "", strings.Repeat("a", 65), store.ScopeAdmin, "", store.ErrInvalid},
		{"client id at limit", "", strings.Repeat("a", 64), store.ScopeAdmin, "", nil},
		{"unknown tenant", "nope", "crm", store.ScopeAdmin, "", store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := m.Add(ctx, tt.tenant, tt.client, tt.scope, tt.user)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Add: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if key != "" {
					t.Fatal("a key with an error")
				}
				return
			}
			if !strings.HasPrefix(key, "cb_") {
				t.Fatalf("key %q", key)
			}
		})
	}

	list, err := m.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range list {
		ids = append(ids, in.ClientID)
		if in.KeyHash != nil {
			t.Error("List returns key hashes")
		}
		if in.Tenant != store.DefaultTenant || len(in.KeyPrefix) != 8 {
			t.Errorf("listed %+v", in)
		}
	}
	if got, want := strings.Join(ids, ","), strings.Repeat("a", 64)+",alice-widget,crm,u3"; got != want {
		t.Fatalf("List: %s, want %s", got, want)
	}

	if err := m.Remove(ctx, "", "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Remove unknown: %v", err)
	}
	if _, err := m.Replace(ctx, "", "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Replace unknown: %v", err)
	}
}

// fakeClock is a settable clock for TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	if err := st.AddTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	m := Manager{Store: st}
	admin, err := m.Add(ctx, "", "ops", store.ScopeAdmin, "")
	if err != nil {
		t.Fatal(err)
	}
	user, err := m.Add(ctx, "acme", "alice", store.ScopeUser, "alice@acme")
	if err != nil {
		t.Fatal(err)
	}

	a := NewAuthenticator(st, 0)
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	a.now = clock.now

	tests := []struct {
		name    string
		key     string
		want    Principal
		wantErr error
	}{
		{"admin", admin, Principal{Tenant: "default", ClientID: "ops", Scope: store.ScopeAdmin}, nil},
		{"user", user, Principal{Tenant: "acme", ClientID: "alice", Scope: store.ScopeUser, CRMUser: "alice@acme"}, nil},
		{"empty", "", Principal{}, ErrUnauthorized},
		{"unknown", "cb_" + strings.Repeat("A", 43), Principal{}, ErrUnauthorized},
		{"not a key", "Basic dXNlcjpwYXNz", Principal{}, ErrUnauthorized},
		{"truncated", admin[:20], Principal{}, ErrUnauthorized},
		{"huge", "cb_" + strings.Repeat("x", 10000), Principal{}, ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Authenticate(ctx, tt.key)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if p != tt.want {
				t.Fatalf("principal %+v, want %+v", p, tt.want)
			}
			if err != nil && tt.key != "" && strings.Contains(err.Error(), tt.key) {
				t.Fatal("the error names the key")
			}
		})
	}

	t.Run("removed key stops working after the TTL", func(t *testing.T) {
		if _, err := a.Authenticate(ctx, admin); err != nil {
			t.Fatal(err)
		}
		if err := m.Remove(ctx, "", "ops"); err != nil {
			t.Fatal(err)
		}
		clock.add(DefaultTTL - time.Millisecond)
		if _, err := a.Authenticate(ctx, admin); err != nil {
			t.Fatalf("within the TTL a cached key still works: %v", err)
		}
		clock.add(2 * time.Millisecond)
		if _, err := a.Authenticate(ctx, admin); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("after the TTL: %v", err)
		}
	})

	t.Run("rotation with Auth set takes effect at once", func(t *testing.T) {
		mm := Manager{Store: st, Auth: a}
		if _, err := a.Authenticate(ctx, user); err != nil {
			t.Fatal(err)
		}
		fresh, err := mm.Replace(ctx, "acme", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Authenticate(ctx, user); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("old key after rotation: %v", err)
		}
		p, err := a.Authenticate(ctx, fresh)
		if err != nil || p.ClientID != "alice" || p.CRMUser != "alice@acme" {
			t.Fatalf("new key: %+v, %v", p, err)
		}
	})

	t.Run("no cache", func(t *testing.T) {
		nc := NewAuthenticator(st, -1)
		key, err := m.Add(ctx, "", "tmp", store.ScopeIntegration, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Authenticate(ctx, key); err != nil {
			t.Fatal(err)
		}
		if err := m.Remove(ctx, "", "tmp"); err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Authenticate(ctx, key); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("uncached removed key: %v", err)
		}
	})
}

func TestCacheBounded(t *testing.T) {
	a := NewAuthenticator(nil, time.Minute)
	now := time.Unix(0, 0)
	for i := range maxCache + 500 {
		var h [32]byte
		h[0], h[1], h[2] = byte(i), byte(i>>8), byte(i>>16)
		a.put(h, cached{exp: now.Add(time.Minute)}, now)
	}
	if n := len(a.cache); n > maxCache {
		t.Fatalf("cache holds %d entries, bound %d", n, maxCache)
	}
}

func TestEnsureAdmin(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	m := Manager{Store: st}
	key, created, err := m.EnsureAdmin(ctx)
	if err != nil || !created || key == "" {
		t.Fatalf("first: %q %v %v", key, created, err)
	}
	p, err := NewAuthenticator(st, 0).Authenticate(ctx, key)
	if err != nil || p.Scope != store.ScopeAdmin || p.ClientID != "admin" || p.Tenant != store.DefaultTenant {
		t.Fatalf("admin principal %+v, %v", p, err)
	}
	key, created, err = m.EnsureAdmin(ctx)
	if err != nil || created || key != "" {
		t.Fatalf("second: %q %v %v", key, created, err)
	}
	// Any integration means an operator set the install up: no admin is recreated.
	if err := m.Remove(ctx, "", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Add(ctx, "", "crm", store.ScopeIntegration, ""); err != nil {
		t.Fatal(err)
	}
	if _, created, err := m.EnsureAdmin(ctx); err != nil || created {
		t.Fatalf("with another integration: %v %v", created, err)
	}
}

func TestPrincipalContext(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("principal in an empty context")
	}
	want := Principal{Tenant: "t", ClientID: "c", Scope: store.ScopeUser, CRMUser: "u"}
	got, ok := FromContext(WithPrincipal(context.Background(), want))
	if !ok || got != want {
		t.Fatalf("got %+v %v", got, ok)
	}
}
