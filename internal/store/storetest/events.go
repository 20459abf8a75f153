package storetest

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"callbridge/internal/call"
	"callbridge/internal/store"
)

// commit writes calls and events in one batch and fails t on error.
func commit(t testing.TB, s store.Store, calls []*call.Call, events ...*call.Event) {
	t.Helper()
	if err := s.Commit(t.Context(), &store.Batch{Calls: Rows(t, calls...), Events: events}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func lastSeq(t testing.TB, s store.Store) int64 {
	t.Helper()
	n, err := s.LastSeq(t.Context())
	if err != nil {
		t.Fatalf("LastSeq: %v", err)
	}
	return n
}

func events(t testing.TB, s store.Store, f store.EventFilter) []*call.Event {
	t.Helper()
	evs, err := s.Events(t.Context(), f)
	if err != nil {
		t.Fatalf("Events(%+v): %v", f, err)
	}
	return evs
}

func seqs(evs []*call.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func seqRange(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// checkEvent compares an event read back from the log with the one committed: the
// scoping fields, Raw byte for byte, Wire as JSON with the right seq, and Decode.
func checkEvent(t testing.TB, got, want *call.Event) {
	t.Helper()
	if got.Seq != want.Seq {
		t.Errorf("event %s: seq %d, want %d", want.ID, got.Seq, want.Seq)
	}
	if got.Type != want.Type || got.Tenant != want.Tenant {
		t.Errorf("event seq %d: type/tenant %q/%q, want %q/%q", want.Seq, got.Type, got.Tenant, want.Type, want.Tenant)
	}
	if d := cmp.Diff(want.Extensions, got.Extensions, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("event seq %d: extensions (-want +got):\n%s", want.Seq, d)
	}
	if d := cmp.Diff(want.Users, got.Users, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("event seq %d: users (-want +got):\n%s", want.Seq, d)
	}
	if !bytes.Equal(got.Raw, want.Raw) {
		t.Errorf("event seq %d: raw\n got %s\nwant %s", want.Seq, got.Raw, want.Raw)
		return
	}
	wire := got.Wire()
	if !json.Valid(wire) {
		t.Errorf("event seq %d: Wire is not valid JSON: %s", want.Seq, wire)
		return
	}
	var w struct {
		Seq  int64          `json:"seq"`
		ID   string         `json:"id"`
		Type call.EventType `json:"type"`
	}
	if err := json.Unmarshal(wire, &w); err != nil {
		t.Errorf("event seq %d: Wire: %v", want.Seq, err)
	} else if w.Seq != want.Seq || w.ID != want.ID || w.Type != want.Type {
		t.Errorf("event seq %d: Wire has seq %d id %q type %q, want %d %q %q", want.Seq, w.Seq, w.ID, w.Type, want.Seq, want.ID, want.Type)
	}
	dec := &call.Event{Seq: got.Seq, Tenant: got.Tenant, Raw: got.Raw}
	if err := dec.Decode(); err != nil {
		t.Errorf("event seq %d: Decode: %v", want.Seq, err)
		return
	}
	wantDec := *want
	wantDec.Raw = got.Raw
	// The snapshot's Tenant and Acc are not part of the wire shape.
	if d := cmp.Diff(&wantDec, dec, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(call.Call{}, "Tenant", "Acc")); d != "" {
		t.Errorf("event seq %d: decoded (-want +got):\n%s", want.Seq, d)
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testCommitAssignsSeqs(t *testing.T, s store.Store) {
	if n := lastSeq(t, s); n != 0 {
		t.Fatalf("LastSeq of an empty store = %d, want 0", n)
	}
	if evs := events(t, s, store.EventFilter{}); len(evs) != 0 {
		t.Fatalf("Events of an empty store: %d events", len(evs))
	}

	a := NewCall(store.DefaultTenant, "call-a", Base, "101", "102")
	b := NewCall(store.DefaultTenant, "call-b", Base.Add(time.Second), "103")
	e1 := NewEvent(t, call.EventRinging, a, Base, "user-1", "user-2")
	e2 := NewEvent(t, call.EventRinging, b, Base.Add(time.Second))
	answer(a, "102", Base.Add(5*time.Second))
	e3 := NewEvent(t, call.EventAnswered, a, Base.Add(5*time.Second), "user-2")
	e3.Data = json.RawMessage(`{"extension":"102"}`)
	if err := e3.Encode(); err != nil {
		t.Fatal(err)
	}
	// A pbx-level event that concerns no extension and no user.
	e4 := &call.Event{ID: "ev-pbx", Type: call.EventConnected, Time: Base, Tenant: store.DefaultTenant, PBX: "pbx-1"}
	if err := e4.Encode(); err != nil {
		t.Fatal(err)
	}
	batch1 := []*call.Event{e1, e2, e3, e4}
	commit(t, s, []*call.Call{a, b}, batch1...)
	if got := seqs(batch1); !cmp.Equal(got, seqRange(1, 4)) {
		t.Fatalf("first batch seqs %v, want 1..4 in batch order", got)
	}
	if n := lastSeq(t, s); n != 4 {
		t.Fatalf("LastSeq = %d, want 4", n)
	}

	end(b, call.DispositionNoAnswer, Base.Add(30*time.Second))
	e5 := NewEvent(t, call.EventEnded, b, Base.Add(30*time.Second))
	end(a, call.DispositionAnswered, Base.Add(60*time.Second))
	e6 := NewEvent(t, call.EventEnded, a, Base.Add(60*time.Second), "user-2")
	commit(t, s, []*call.Call{b, a}, e5, e6)
	if e5.Seq != 5 || e6.Seq != 6 {
		t.Fatalf("second batch seqs %d, %d, want 5, 6 (LastSeq+1 on, in batch order)", e5.Seq, e6.Seq)
	}
	if n := lastSeq(t, s); n != 6 {
		t.Fatalf("LastSeq = %d, want 6", n)
	}

	all := []*call.Event{e1, e2, e3, e4, e5, e6}
	got := events(t, s, store.EventFilter{})
	if !cmp.Equal(seqs(got), seqRange(1, 6)) {
		t.Fatalf("Events(After 0) seqs %v, want 1..6", seqs(got))
	}
	for i := range got {
		checkEvent(t, got[i], all[i])
	}

	got = events(t, s, store.EventFilter{After: 2})
	if !cmp.Equal(seqs(got), seqRange(3, 6)) {
		t.Fatalf("Events(After 2) seqs %v, want 3..6", seqs(got))
	}
	for i := range got {
		checkEvent(t, got[i], all[i+2])
	}
	if got := events(t, s, store.EventFilter{After: 6}); len(got) != 0 {
		t.Fatalf("Events(After LastSeq) returned seqs %v, want none", seqs(got))
	}
	if got := events(t, s, store.EventFilter{After: 100}); len(got) != 0 {
		t.Fatalf("Events(After beyond LastSeq) returned seqs %v, want none", seqs(got))
	}
}

func testCommitEmptyAndCallsOnly(t *testing.T, s store.Store) {
	if err := s.Commit(t.Context(), &store.Batch{}); err != nil {
		t.Fatalf("Commit of an empty batch: %v", err)
	}
	if n := lastSeq(t, s); n != 0 {
		t.Fatalf("LastSeq after an empty batch = %d, want 0", n)
	}
	c := NewCall(store.DefaultTenant, "calls-only", Base, "101")
	commit(t, s, []*call.Call{c})
	if n := lastSeq(t, s); n != 0 {
		t.Fatalf("LastSeq after a batch of calls only = %d, want 0", n)
	}
	wantCall(t, s, c)

	e := NewEvent(t, call.EventRinging, c, Base)
	commit(t, s, nil, e)
	if e.Seq != 1 || lastSeq(t, s) != 1 {
		t.Fatalf("event-only batch: seq %d, LastSeq %d, want 1, 1", e.Seq, lastSeq(t, s))
	}
}

func testEventsLimit(t *testing.T, s store.Store) {
	c := NewCall(store.DefaultTenant, "call-1", Base, "101")
	var all []*call.Event
	for i := range 3 {
		var batch []*call.Event
		for j := range 7 {
			batch = append(batch, NewEvent(t, call.EventDTMF, c, Base.Add(time.Duration(i*7+j)*time.Second)))
		}
		commit(t, s, []*call.Call{c}, batch...)
		all = append(all, batch...)
	}
	got := events(t, s, store.EventFilter{Limit: 5})
	if !cmp.Equal(seqs(got), seqRange(1, 5)) {
		t.Fatalf("Events(Limit 5) seqs %v, want 1..5", seqs(got))
	}
	got = events(t, s, store.EventFilter{After: 18, Limit: 5})
	if !cmp.Equal(seqs(got), seqRange(19, 21)) {
		t.Fatalf("Events(After 18, Limit 5) seqs %v, want 19..21", seqs(got))
	}
	// Paging with Limit walks the whole log exactly once.
	var paged []*call.Event
	for after := int64(0); ; {
		page := events(t, s, store.EventFilter{After: after, Limit: 4})
		if len(page) > 4 {
			t.Fatalf("Events(Limit 4) returned %d events", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Seq
	}
	if !cmp.Equal(seqs(paged), seqRange(1, 21)) {
		t.Fatalf("paged seqs %v, want 1..21", seqs(paged))
	}
	for i := range paged {
		checkEvent(t, paged[i], all[i])
	}
}

func testEventsTenant(t *testing.T, s store.Store) {
	addTenant(t, s, "acme")
	d := NewCall(store.DefaultTenant, "call-d", Base, "101")
	a := NewCall("acme", "call-a", Base, "101")
	var all, acme []*call.Event
	for i := range 10 {
		c := d
		if i%3 == 0 {
			c = a
		}
		e := NewEvent(t, call.EventDTMF, c, Base.Add(time.Duration(i)*time.Second))
		all = append(all, e)
		if c == a {
			acme = append(acme, e)
		}
	}
	commit(t, s, []*call.Call{d, a}, all...)
	// acme has seqs 1, 4, 7, 10.
	got := events(t, s, store.EventFilter{Tenant: "acme"})
	if !cmp.Equal(seqs(got), []int64{1, 4, 7, 10}) {
		t.Fatalf("Events(Tenant acme) seqs %v, want [1 4 7 10]", seqs(got))
	}
	for i := range got {
		checkEvent(t, got[i], acme[i])
	}
	got = events(t, s, store.EventFilter{Tenant: "acme", After: 1, Limit: 2})
	if !cmp.Equal(seqs(got), []int64{4, 7}) {
		t.Fatalf("Events(Tenant acme, After 1, Limit 2) seqs %v, want [4 7]", seqs(got))
	}
	got = events(t, s, store.EventFilter{Tenant: store.DefaultTenant, After: 4})
	if !cmp.Equal(seqs(got), []int64{5, 6, 8, 9}) {
		t.Fatalf("Events(Tenant default, After 4) seqs %v, want [5 6 8 9]", seqs(got))
	}
	if got := events(t, s, store.EventFilter{Tenant: "nobody"}); len(got) != 0 {
		t.Fatalf("Events(Tenant nobody) seqs %v, want none", seqs(got))
	}
	if got := events(t, s, store.EventFilter{}); len(got) != 10 {
		t.Fatalf("Events without a tenant returned %d events, want all 10", len(got))
	}
}

// testCallEvents checks CallEvents returns one call's events of one tenant, oldest
// first, bounded by limit, across batches, and nothing for an unknown call.
func testCallEvents(t *testing.T, s store.Store) {
	addTenant(t, s, "acme")
	x := NewCall(store.DefaultTenant, "call-x", Base, "101")
	y := NewCall(store.DefaultTenant, "call-y", Base, "102")
	a := NewCall("acme", "call-a", Base, "101")
	var wantX []*call.Event
	for batch := range 3 {
		var evs []*call.Event
		for i := range 4 {
			at := Base.Add(time.Duration(batch*4+i) * time.Second)
			c := []*call.Call{x, y, a, x}[i]
			e := NewEvent(t, call.EventDTMF, c, at)
			evs = append(evs, e)
			if c == x {
				wantX = append(wantX, e)
			}
		}
		commit(t, s, []*call.Call{x, y, a}, evs...)
	}
	// An event as the hub makes it: the call encoded in Raw, Call nil, CallID set.
	h := NewEvent(t, call.EventDTMF, x, Base.Add(time.Minute))
	h.Call, h.CallID = nil, x.ID
	commit(t, s, nil, h)
	wantX = append(wantX, h)
	callEvents := func(tenant, id string, limit int) []*call.Event {
		t.Helper()
		evs, err := s.CallEvents(t.Context(), tenant, id, limit)
		if err != nil {
			t.Fatalf("CallEvents(%s, %s, %d): %v", tenant, id, limit, err)
		}
		return evs
	}
	got := callEvents(store.DefaultTenant, "call-x", 0)
	if !cmp.Equal(seqs(got), seqs(wantX)) {
		t.Fatalf("CallEvents(call-x) seqs %v, want %v", seqs(got), seqs(wantX))
	}
	for i := range got[:len(got)-1] {
		checkEvent(t, got[i], wantX[i])
	}
	if got := callEvents(store.DefaultTenant, "call-x", 2); !cmp.Equal(seqs(got), seqs(wantX[:2])) {
		t.Fatalf("CallEvents(call-x, limit 2) seqs %v, want %v", seqs(got), seqs(wantX[:2]))
	}
	if got := callEvents(store.DefaultTenant, "call-y", 0); !cmp.Equal(seqs(got), []int64{2, 6, 10}) {
		t.Fatalf("CallEvents(call-y) seqs %v, want [2 6 10]", seqs(got))
	}
	if got := callEvents("acme", "call-a", 0); !cmp.Equal(seqs(got), []int64{3, 7, 11}) {
		t.Fatalf("CallEvents(acme, call-a) seqs %v, want [3 7 11]", seqs(got))
	}
	// Another tenant's call, and a call that does not exist: no events.
	if got := callEvents(store.DefaultTenant, "call-a", 0); len(got) != 0 {
		t.Fatalf("CallEvents(default, acme's call) seqs %v, want none", seqs(got))
	}
	if got := callEvents("acme", "call-x", 0); len(got) != 0 {
		t.Fatalf("CallEvents(acme, default's call) seqs %v, want none", seqs(got))
	}
	if got := callEvents(store.DefaultTenant, "nope", 0); len(got) != 0 {
		t.Fatalf("CallEvents(unknown call) seqs %v, want none", seqs(got))
	}
}
