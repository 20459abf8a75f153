package api

import (
	"errors"
	"testing"

	"callbridge/internal/auth"
	"callbridge/internal/store"
)

// TestWSTokenSecret: nodes sharing a secret accept each other's tokens (and a token
// survives a restart); a different secret, or none, does not.
func TestWSTokenSecret(t *testing.T) {
	p := auth.Principal{Tenant: store.DefaultTenant, ClientID: "widget", Scope: store.ScopeUser, CRMUser: "alice"}
	secret := []byte("a shared secret of the cluster")
	a, b := newWSTokens(secret), newWSTokens(secret)
	tok, _, err := a.issue(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.verify(tok); err != nil || got != p {
		t.Fatalf("another node with the same secret: %+v, %v", got, err)
	}
	for name, other := range map[string]*wsTokens{
		"other secret": newWSTokens([]byte("another secret, another cluster")),
		"no secret":    newWSTokens(nil),
	} {
		if _, err := other.verify(tok); !errors.Is(err, errBadToken) {
			t.Errorf("%s accepts the token: %v", name, err)
		}
	}
	r1, r2 := newWSTokens(nil), newWSTokens(nil)
	tok, _, _ = r1.issue(p)
	if _, err := r2.verify(tok); !errors.Is(err, errBadToken) {
		t.Errorf("two processes without a secret share tokens: %v", err)
	}
}
