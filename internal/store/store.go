// Package store persists callbridge's state: tenants, integrations (key hashes),
// extensions, CRM-user mappings, calls, the event log and webhook subscriptions with
// their deliveries. SQLite is the embedded default; other backends implement the same
// Store interface and pass the same tests (package storetest).
package store

import (
	"context"
	"errors"
	"time"

	"callbridge/internal/call"
)

// DefaultTenant is the tenant of a single-company install; it is never named by users.
const DefaultTenant = "default"

// Errors the store returns; callers test them with errors.Is.
var (
	// ErrNotFound: no such record.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a record with that key exists already.
	ErrExists = errors.New("store: already exists")
	// ErrInvalid: the request is malformed (a bad cursor, an empty name).
	ErrInvalid = errors.New("store: invalid request")
)

// Store is the persistence interface every backend implements.
type Store interface {
	// Commit writes a batch of call changes and their events in ONE transaction and
	// assigns the events' Seq, in order. Either all of it is durable or none.
	Commit(ctx context.Context, b *Batch) error
	// LastSeq is the seq of the newest committed event (0 for an empty log).
	LastSeq(ctx context.Context) (int64, error)
	// Events returns committed events with seq > f.After, oldest first.
	Events(ctx context.Context, f EventFilter) ([]*call.Event, error)
	// CallEvents returns the committed events of one call of tenant, oldest first,
	// at most limit of them (limit <= 0 or above MaxCallEvents: MaxCallEvents). An
	// unknown call has no events: the answer is empty, not ErrNotFound.
	CallEvents(ctx context.Context, tenant, callID string, limit int) ([]*call.Event, error)

	// Call returns one call of a tenant.
	Call(ctx context.Context, tenant, id string) (*call.Call, error)
	// Calls lists a tenant's calls, newest first, with keyset pagination.
	Calls(ctx context.Context, f CallFilter) (CallPage, error)
	// LiveCalls returns every call, all tenants, that has not ended (for a restart).
	LiveCalls(ctx context.Context) ([]*call.Call, error)

	// Tenants.
	AddTenant(ctx context.Context, name string) error
	Tenants(ctx context.Context) ([]Tenant, error)
	RemoveTenant(ctx context.Context, name string) error

	// Integrations: one key per (tenant, client id); only the key's hash is stored.
	AddIntegration(ctx context.Context, in Integration) error
	ReplaceIntegrationKey(ctx context.Context, tenant, clientID string, hash []byte, prefix string) error
	RemoveIntegration(ctx context.Context, tenant, clientID string) error
	Integrations(ctx context.Context, tenant string) ([]Integration, error)
	IntegrationByHash(ctx context.Context, hash []byte) (Integration, error)

	// Extensions: PBX members, with their API-control permission.
	UpsertExtensions(ctx context.Context, exts []Extension) error
	Extensions(ctx context.Context, tenant string) ([]Extension, error)
	SetExtensionAPI(ctx context.Context, tenant, number string, enabled bool) error

	// Mappings between CRM users and extensions.
	AddMapping(ctx context.Context, m Mapping) error
	RemoveMapping(ctx context.Context, m Mapping) error
	Mappings(ctx context.Context, tenant string) ([]Mapping, error)

	// Webhook subscriptions and their durable deliveries.
	AddWebhook(ctx context.Context, w Webhook) error
	RemoveWebhook(ctx context.Context, tenant, id string) error
	Webhooks(ctx context.Context, tenant string) ([]Webhook, error)
	EnqueueDeliveries(ctx context.Context, ds []Delivery) error
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error)
	UpdateDelivery(ctx context.Context, d Delivery) error

	// Ping checks the store answers (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// MaxCallEvents bounds the events one CallEvents call returns.
const MaxCallEvents = 10000

// Batch is what one group commit writes.
type Batch struct {
	// Calls are the calls' latest states; a call changed several times in a batch
	// appears once.
	Calls []CallRow
	// Events are appended to the log in order; Commit sets their Seq.
	Events []*call.Event
}

// CallRow is a call with its API JSON already encoded (encoding happens off the
// single writer goroutine).
type CallRow struct {
	Call *call.Call
	JSON []byte
	// Acc is the call's accounting state, encoded.
	Acc []byte
}

// EventFilter selects events from the log.
type EventFilter struct {
	After int64
	Limit int
	// Tenant, when set, keeps that tenant's events only.
	Tenant string
}

// CallFilter selects calls of one tenant.
type CallFilter struct {
	Tenant string
	// Phone matches the customer number as presented or its E.164 form.
	Phone     string
	PhoneE164 string
	// Extensions keeps calls that concern any of these extensions.
	Extensions  []string
	Direction   call.Direction
	Disposition call.Disposition
	State       call.State
	From, To    time.Time
	Limit       int
	// Cursor continues a previous page (CallPage.Next).
	Cursor string
}

// CallPage is one page of calls.
type CallPage struct {
	Calls []*call.Call
	// Next is the cursor of the following page, empty on the last page.
	Next string
}

// Tenant is one virtual PBX (a "domain" in ECSS-10's terms).
type Tenant struct {
	Name      string
	CreatedAt time.Time
}

// Scope is what an integration key may do.
type Scope string

// Scopes.
const (
	ScopeAdmin       Scope = "admin"
	ScopeIntegration Scope = "integration"
	ScopeUser        Scope = "user"
)

// Valid reports whether s is a known scope.
func (s Scope) Valid() bool {
	return s == ScopeAdmin || s == ScopeIntegration || s == ScopeUser
}

// Integration is a (client id, API key) pair; the key itself is never stored.
type Integration struct {
	Tenant   string
	ClientID string
	Scope    Scope
	// CRMUser binds a user-scope key to one CRM user.
	CRMUser string
	KeyHash []byte
	// KeyPrefix is the key's first characters, to recognise it in a list.
	KeyPrefix string
	CreatedAt time.Time
	RotatedAt time.Time
}

// Extension is a PBX member of a tenant. Numbers are unique within a tenant.
type Extension struct {
	Tenant     string
	PBX        string
	Number     string
	Name       string
	APIEnabled bool
	Status     string
	UpdatedAt  time.Time
}

// Mapping binds a CRM user to an extension.
type Mapping struct {
	Tenant    string
	CRMUser   string
	Extension string
}

// Webhook is a subscription: events matching Events are delivered to URL.
type Webhook struct {
	Tenant    string
	ID        string
	URL       string
	Secret    string
	Events    []string
	CreatedAt time.Time
}

// Delivery is one event owed to one webhook.
type Delivery struct {
	ID        int64
	Tenant    string
	WebhookID string
	Seq       int64
	Attempts  int
	NextAt    time.Time
	// Status is pending, delivered or dead.
	Status    string
	LastError string
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead"
)
