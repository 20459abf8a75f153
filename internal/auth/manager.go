package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"callbridge/internal/store"
)

// AdminClientID is the client id of the key EnsureAdmin creates on a fresh install.
const AdminClientID = "admin"

// maxClientID and maxCRMUser bound identifiers that end up in logs, lists and URLs.
const (
	maxClientID = 64
	maxCRMUser  = 128
)

// Manager adds, rotates, removes and lists integrations (ECSS-10's add/list/remove/
// replace). An empty tenant means the default tenant.
type Manager struct {
	Store store.Store
	// Auth, when set, is flushed after a removal or rotation so this process stops
	// accepting the old key at once; other processes stop within their TTL.
	Auth *Authenticator
}

// Add creates an integration and returns its key, which is shown once and never
// stored. A user-scope key is bound to crmUser; other scopes take none. A client id
// that exists in the tenant already gives an error wrapping store.ErrExists.
func (m Manager) Add(ctx context.Context, tenant, clientID string, scope store.Scope, crmUser string) (string, error) {
	tenant = orDefault(tenant)
	if err := validClientID(clientID); err != nil {
		return "", err
	}
	if !scope.Valid() {
		return "", fmt.Errorf("auth: add %q: %w: scope %q (admin, integration or user)", clientID, store.ErrInvalid, scope)
	}
	if scope == store.ScopeUser {
		if err := validCRMUser(crmUser); err != nil {
			return "", fmt.Errorf("auth: add %q: %w", clientID, err)
		}
	} else if crmUser != "" {
		return "", fmt.Errorf("auth: add %q: %w: only a user-scope key is bound to a CRM user", clientID, store.ErrInvalid)
	}
	key, hash, prefix, err := GenerateKey()
	if err != nil {
		return "", err
	}
	err = m.Store.AddIntegration(ctx, store.Integration{Tenant: tenant, ClientID: clientID, Scope: scope, CRMUser: crmUser, KeyHash: hash, KeyPrefix: prefix})
	if err != nil {
		return "", fmt.Errorf("auth: add %q: %w", clientID, err)
	}
	return key, nil
}

// Replace gives a client a new key; the old one stops working (at once on this
// process when Auth is set, within the TTL elsewhere).
func (m Manager) Replace(ctx context.Context, tenant, clientID string) (string, error) {
	key, hash, prefix, err := GenerateKey()
	if err != nil {
		return "", err
	}
	if err := m.Store.ReplaceIntegrationKey(ctx, orDefault(tenant), clientID, hash, prefix); err != nil {
		return "", fmt.Errorf("auth: replace %q: %w", clientID, err)
	}
	m.invalidate()
	return key, nil
}

// Remove deletes a client and its key.
func (m Manager) Remove(ctx context.Context, tenant, clientID string) error {
	if err := m.Store.RemoveIntegration(ctx, orDefault(tenant), clientID); err != nil {
		return fmt.Errorf("auth: remove %q: %w", clientID, err)
	}
	m.invalidate()
	return nil
}

// List returns a tenant's integrations without their key hashes (the prefix is
// enough to recognise a key; the hash has no use outside the store).
func (m Manager) List(ctx context.Context, tenant string) ([]store.Integration, error) {
	ins, err := m.Store.Integrations(ctx, orDefault(tenant))
	if err != nil {
		return nil, fmt.Errorf("auth: list: %w", err)
	}
	for i := range ins {
		ins[i].KeyHash = nil
	}
	return ins, nil
}

// EnsureAdmin creates the first admin key of a fresh install: when the default
// tenant has no integration at all, it adds client "admin" with scope admin and
// returns its key (created true) for the caller to show once. Otherwise it does
// nothing, so a removed admin key is never silently recreated.
func (m Manager) EnsureAdmin(ctx context.Context) (key string, created bool, err error) {
	ins, err := m.Store.Integrations(ctx, store.DefaultTenant)
	if err != nil {
		return "", false, fmt.Errorf("auth: ensure admin: %w", err)
	}
	if len(ins) > 0 {
		return "", false, nil
	}
	key, err = m.Add(ctx, store.DefaultTenant, AdminClientID, store.ScopeAdmin, "")
	if errors.Is(err, store.ErrExists) {
		// Another process won the race and printed its key; ours is not needed.
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return key, true, nil
}

func (m Manager) invalidate() {
	if m.Auth != nil {
		m.Auth.Invalidate()
	}
}

func orDefault(tenant string) string {
	if tenant == "" {
		return store.DefaultTenant
	}
	return tenant
}

// validClientID keeps client ids safe to print, log and put in a URL path.
func validClientID(id string) error {
	if id == "" || len(id) > maxClientID {
		return fmt.Errorf("auth: %w: client id must be 1-%d characters", store.ErrInvalid, maxClientID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("auth: %w: client id %q: only letters, digits, '.', '_' and '-'", store.ErrInvalid, id)
		}
	}
	return nil
}

// validCRMUser refuses control characters (the store joins lists of users with one)
// and surrounding white space (a user id that differs only by it would look the same
// in every list and never match).
func validCRMUser(u string) error {
	if u == "" || len(u) > maxCRMUser {
		return fmt.Errorf("%w: a user-scope key needs a CRM user of 1-%d characters", store.ErrInvalid, maxCRMUser)
	}
	if strings.TrimSpace(u) != u {
		return fmt.Errorf("%w: CRM user %q: leading or trailing white space", store.ErrInvalid, u)
	}
	for _, r := range u {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("%w: CRM user %q: control characters or invalid UTF-8", store.ErrInvalid, u)
		}
	}
	return nil
}
