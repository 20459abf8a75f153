// Package storetest is the conformance suite of store.Store: every backend (SQLite
// now, PostgreSQL later) runs Run from its own tests and must pass all of it.
//
// The suite pins the behaviour callers rely on (seq assignment, keyset pagination,
// tenant isolation, the error kinds of store) rather than any one backend's SQL. It
// also exports the builders it uses, so a backend's own tests and benchmarks can make
// realistic calls, rows and events the same way the hub does.
package storetest

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/store"
)

// Run runs the conformance suite as subtests of t. Each subtest calls open for a
// fresh, empty store (only the default tenant exists); open must fail t if it cannot
// open one and must arrange for the store to be closed with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Ping", testPing},
		{"CommitAssignsSeqs", testCommitAssignsSeqs},
		{"CommitEmptyAndCallsOnly", testCommitEmptyAndCallsOnly},
		{"EventsLimit", testEventsLimit},
		{"EventsTenant", testEventsTenant},
		{"CallEvents", testCallEvents},
		{"CallUpsertKeepsLatest", testCallUpsertKeepsLatest},
		{"LargeBatch", testLargeBatch},
		{"CallsFilters", testCallsFilters},
		{"CallsExtensionsGrow", testCallsExtensionsGrow},
		{"CallsPagination", testCallsPagination},
		{"CallsPaginationFiltered", testCallsPaginationFiltered},
		{"CallsPaginationStable", testCallsPaginationStable},
		{"CallsBadCursor", testCallsBadCursor},
		{"LiveCalls", testLiveCalls},
		{"TenantIsolation", testTenantIsolation},
		{"Tenants", testTenants},
		{"RemoveTenantWithData", testRemoveTenantWithData},
		{"Integrations", testIntegrations},
		{"IntegrationKeyRotation", testIntegrationKeyRotation},
		{"Extensions", testExtensions},
		{"Mappings", testMappings},
		{"Webhooks", testWebhooks},
		{"Deliveries", testDeliveries},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if s == nil {
				t.Fatal("open returned a nil store")
			}
			tc.fn(t, s)
		})
	}
}

// Base is the time the suite's calls start around: a fixed UTC instant with no
// sub-microsecond part, so every backend stores it exactly.
var Base = time.Date(2025, time.March, 14, 9, 0, 0, 0, time.UTC)

// NewCall returns a ringing inbound call of tenant, started at at (normalised to UTC
// microseconds, the precision stores keep) and offered to the rung extensions.
func NewCall(tenant, id string, at time.Time, rung ...string) *call.Call {
	at = at.UTC().Truncate(time.Microsecond)
	return &call.Call{
		ID:           id,
		Tenant:       tenant,
		PBX:          "pbx-1",
		PBXCallID:    "1710406800." + id,
		Direction:    call.DirectionIn,
		State:        call.StateRinging,
		Customer:     "84951234567",
		CustomerE164: "+74951234567",
		DID:          "+74950000000",
		Rung:         rung,
		StartedAt:    at,
		LastSeen:     at,
	}
}

// Row encodes c the way the hub does before a commit: the API JSON with
// encoding/json and the accounting state in CallRow.Acc. It snapshots c, so the
// caller may go on changing it.
func Row(tb testing.TB, c *call.Call) store.CallRow {
	tb.Helper()
	js, err := json.Marshal(c)
	if err != nil {
		tb.Fatalf("encode call %s: %v", c.ID, err)
	}
	acc, err := json.Marshal(c.Acc)
	if err != nil {
		tb.Fatalf("encode call %s accounting: %v", c.ID, err)
	}
	return store.CallRow{Call: c.Clone(), JSON: js, Acc: acc}
}

// Rows encodes calls with Row.
func Rows(tb testing.TB, calls ...*call.Call) []store.CallRow {
	tb.Helper()
	out := make([]store.CallRow, 0, len(calls))
	for _, c := range calls {
		out = append(out, Row(tb, c))
	}
	return out
}

var eventIDs atomic.Int64

// NewEvent returns an event of type typ about c at time at, with a snapshot of c,
// c's extensions and the given CRM users, encoded (Raw filled) with Event.Encode.
func NewEvent(tb testing.TB, typ call.EventType, c *call.Call, at time.Time, users ...string) *call.Event {
	tb.Helper()
	e := &call.Event{
		ID:         fmt.Sprintf("ev-%d", eventIDs.Add(1)),
		Type:       typ,
		Time:       at.UTC().Truncate(time.Microsecond),
		Tenant:     c.Tenant,
		PBX:        c.PBX,
		Call:       c.Clone(),
		Extensions: c.Extensions(),
		Users:      users,
	}
	if err := e.Encode(); err != nil {
		tb.Fatalf("encode event: %v", err)
	}
	return e
}
