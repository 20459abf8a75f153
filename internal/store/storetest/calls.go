package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"callbridge/internal/call"
	"callbridge/internal/store"
)

// answer connects c to ext at at, starting the talk interval.
func answer(c *call.Call, ext string, at time.Time) {
	at = at.UTC().Truncate(time.Microsecond)
	c.State = call.StateActive
	c.AnsweredBy, c.Agent = ext, ext
	c.AnsweredAt = &at
	c.Acc.TalkSince = &at
	c.RingS = at.Sub(c.StartedAt).Seconds()
	c.LastSeen = at
}

// hold puts c on hold at at, closing the talk interval.
func hold(c *call.Call, at time.Time) {
	at = at.UTC().Truncate(time.Microsecond)
	c.State = call.StateHeld
	if c.Acc.TalkSince != nil {
		c.Acc.TalkNS += int64(at.Sub(*c.Acc.TalkSince))
		c.Acc.TalkSince = nil
	}
	c.Acc.HoldSince = &at
	c.LastSeen = at
}

// end ends c with disposition d at at, closing the open intervals.
func end(c *call.Call, d call.Disposition, at time.Time) {
	at = at.UTC().Truncate(time.Microsecond)
	if c.Acc.TalkSince != nil {
		c.Acc.TalkNS += int64(at.Sub(*c.Acc.TalkSince))
		c.Acc.TalkSince = nil
	}
	if c.Acc.HoldSince != nil {
		c.Acc.HoldNS += int64(at.Sub(*c.Acc.HoldSince))
		c.Acc.HoldSince = nil
	}
	c.State = call.StateEnded
	c.Disposition = d
	c.Cause = "normal_clearing"
	c.EndedAt = &at
	c.LastSeen = at
	c.TalkS = time.Duration(c.Acc.TalkNS).Seconds()
	c.HoldS = time.Duration(c.Acc.HoldNS).Seconds()
}

func getCall(t testing.TB, s store.Store, tenant, id string) *call.Call {
	t.Helper()
	c, err := s.Call(t.Context(), tenant, id)
	if err != nil {
		t.Fatalf("Call(%q, %q): %v", tenant, id, err)
	}
	return c
}

// wantCall checks the store returns want, tenant and accounting included.
func wantCall(t testing.TB, s store.Store, want *call.Call) {
	t.Helper()
	got := getCall(t, s, want.Tenant, want.ID)
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("Call(%q, %q) (-want +got):\n%s", want.Tenant, want.ID, d)
	}
}

func calls(t testing.TB, s store.Store, f store.CallFilter) store.CallPage {
	t.Helper()
	p, err := s.Calls(t.Context(), f)
	if err != nil {
		t.Fatalf("Calls(%+v): %v", f, err)
	}
	return p
}

func ids(cs []*call.Call) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

// allCalls pages through Calls with f and returns every call, checking each page.
func allCalls(t testing.TB, s store.Store, f store.CallFilter) []*call.Call {
	t.Helper()
	var out []*call.Call
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatalf("Calls(%+v): pagination does not end", f)
		}
		p := calls(t, s, f)
		if f.Limit > 0 && len(p.Calls) > f.Limit {
			t.Fatalf("Calls(Limit %d) returned %d calls", f.Limit, len(p.Calls))
		}
		if p.Next != "" && len(p.Calls) == 0 {
			t.Fatalf("Calls(%+v): empty page with a next cursor", f)
		}
		out = append(out, p.Calls...)
		if p.Next == "" {
			return out
		}
		f.Cursor = p.Next
	}
}

// newestFirst checks cs is ordered by StartedAt, newest first.
func newestFirst(t testing.TB, cs []*call.Call) {
	t.Helper()
	for i := 1; i < len(cs); i++ {
		if cs[i].StartedAt.After(cs[i-1].StartedAt) {
			t.Fatalf("calls not newest first: %s (%s) after %s (%s)", cs[i].ID, cs[i].StartedAt, cs[i-1].ID, cs[i-1].StartedAt)
		}
	}
}

func testCallUpsertKeepsLatest(t *testing.T, s store.Store) {
	c := NewCall(store.DefaultTenant, "call-1", Base, "101", "102")
	commit(t, s, []*call.Call{c}, NewEvent(t, call.EventRinging, c, Base))
	wantCall(t, s, c)

	answer(c, "102", Base.Add(4*time.Second))
	commit(t, s, []*call.Call{c}, NewEvent(t, call.EventAnswered, c, Base.Add(4*time.Second)))
	wantCall(t, s, c)
	if got := getCall(t, s, c.Tenant, c.ID); got.Acc.TalkSince == nil || !got.Acc.TalkSince.Equal(*c.Acc.TalkSince) {
		t.Fatalf("Acc.TalkSince = %v, want %v", got.Acc.TalkSince, c.Acc.TalkSince)
	}

	hold(c, Base.Add(64*time.Second))
	c.Recording = "https://pbx.example/rec/call-1.wav"
	c.DTMF = "12#"
	commit(t, s, []*call.Call{c}, NewEvent(t, call.EventHeld, c, Base.Add(64*time.Second)))
	wantCall(t, s, c)

	// A batch that only carries other calls leaves this one alone.
	other := NewCall(store.DefaultTenant, "call-2", Base.Add(time.Minute), "103")
	commit(t, s, []*call.Call{other})
	wantCall(t, s, c)

	end(c, call.DispositionAnswered, Base.Add(94*time.Second))
	c.Acc.Final = true
	commit(t, s, []*call.Call{c}, NewEvent(t, call.EventEnded, c, Base.Add(94*time.Second)))
	wantCall(t, s, c)
	got := getCall(t, s, c.Tenant, c.ID)
	if got.Tenant != store.DefaultTenant {
		t.Fatalf("Tenant = %q, want %q", got.Tenant, store.DefaultTenant)
	}
	wantAcc := call.Accounting{TalkNS: int64(60 * time.Second), HoldNS: int64(30 * time.Second), Final: true}
	if d := cmp.Diff(wantAcc, got.Acc); d != "" {
		t.Fatalf("Acc (-want +got):\n%s", d)
	}

	// Listing shows the call once, in its latest state.
	p := calls(t, s, store.CallFilter{Tenant: store.DefaultTenant})
	if !cmp.Equal(ids(p.Calls), []string{"call-2", "call-1"}) {
		t.Fatalf("Calls = %v, want [call-2 call-1]", ids(p.Calls))
	}
	if p.Calls[1].State != call.StateEnded || p.Calls[1].Disposition != call.DispositionAnswered || p.Calls[1].Tenant != store.DefaultTenant {
		t.Fatalf("listed call-1 is %s/%s tenant %q, want ended/answered tenant default", p.Calls[1].State, p.Calls[1].Disposition, p.Calls[1].Tenant)
	}
	if _, err := s.Call(t.Context(), store.DefaultTenant, "no-such-call"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Call(unknown id) error %v, want ErrNotFound", err)
	}
}

// testLargeBatch commits batches far above any chunking a backend does internally
// (SQLite: 128 rows per INSERT) and checks nothing is lost or reordered.
func testLargeBatch(t *testing.T, s store.Store) {
	const nCalls, perCall = 300, 3
	var cs []*call.Call
	var evs []*call.Event
	for i := range nCalls {
		// Each call rings three extensions, one of them its own: 900 call-extension pairs.
		c := NewCall(store.DefaultTenant, fmt.Sprintf("big-%03d", i), Base.Add(time.Duration(i)*time.Second),
			fmt.Sprintf("e%03d", i), "shared", fmt.Sprintf("g%d", i%10))
		cs = append(cs, c)
		for j := range perCall {
			evs = append(evs, NewEvent(t, call.EventDTMF, c, c.StartedAt.Add(time.Duration(j)*time.Millisecond), fmt.Sprintf("user-%d", i%7)))
		}
	}
	commit(t, s, cs, evs...)
	if n := lastSeq(t, s); n != nCalls*perCall {
		t.Fatalf("LastSeq = %d, want %d", n, nCalls*perCall)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d of the batch has seq %d, want %d", i, e.Seq, i+1)
		}
	}
	var got []*call.Event
	for after := int64(0); ; {
		page := events(t, s, store.EventFilter{After: after, Limit: 250})
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].Seq
	}
	if len(got) != len(evs) {
		t.Fatalf("read back %d events, want %d", len(got), len(evs))
	}
	for i := range got {
		checkEvent(t, got[i], evs[i])
		if t.Failed() {
			t.FailNow()
		}
	}
	for _, i := range []int{0, 127, 128, 129, 255, 256, 299} {
		wantCall(t, s, cs[i])
	}
	if all := allCalls(t, s, store.CallFilter{Tenant: store.DefaultTenant, Limit: 1000}); len(all) != nCalls {
		t.Fatalf("Calls returned %d calls, want %d", len(all), nCalls)
	}
	// Every call's extensions were recorded, across the chunks.
	for _, i := range []int{0, 127, 128, 200, 299} {
		p := calls(t, s, store.CallFilter{Tenant: store.DefaultTenant, Extensions: []string{fmt.Sprintf("e%03d", i)}})
		if !cmp.Equal(ids(p.Calls), []string{cs[i].ID}) {
			t.Fatalf("Calls(extension e%03d) = %v, want [%s]", i, ids(p.Calls), cs[i].ID)
		}
	}
	if n := len(allCalls(t, s, store.CallFilter{Tenant: store.DefaultTenant, Extensions: []string{"shared"}, Limit: 1000})); n != nCalls {
		t.Fatalf("Calls(extension shared) returned %d calls, want %d", n, nCalls)
	}
	if n := len(allCalls(t, s, store.CallFilter{Tenant: store.DefaultTenant, Extensions: []string{"g3"}, Limit: 1000})); n != nCalls/10 {
		t.Fatalf("Calls(extension g3) returned %d calls, want %d", n, nCalls/10)
	}

	// A second large batch updates every call.
	evs = evs[:0]
	for _, c := range cs {
		end(c, call.DispositionNoAnswer, c.StartedAt.Add(20*time.Second))
		evs = append(evs, NewEvent(t, call.EventEnded, c, c.EndedAt.Add(0)))
	}
	commit(t, s, cs, evs...)
	if evs[0].Seq != nCalls*perCall+1 || evs[len(evs)-1].Seq != nCalls*perCall+nCalls {
		t.Fatalf("second batch seqs %d..%d, want %d..%d", evs[0].Seq, evs[len(evs)-1].Seq, nCalls*perCall+1, nCalls*perCall+nCalls)
	}
	for _, i := range []int{0, 128, 299} {
		wantCall(t, s, cs[i])
	}
	ended := allCalls(t, s, store.CallFilter{Tenant: store.DefaultTenant, State: call.StateEnded, Limit: 1000})
	if len(ended) != nCalls {
		t.Fatalf("Calls(State ended) returned %d calls, want %d", len(ended), nCalls)
	}
	if live, err := s.LiveCalls(t.Context()); err != nil || len(live) != 0 {
		t.Fatalf("LiveCalls = %d calls, %v; want none", len(live), err)
	}
}

func testCallsFilters(t *testing.T, s store.Store) {
	addTenant(t, s, "acme")
	at := func(i int) time.Time { return Base.Add(time.Duration(i) * time.Minute) }

	c1 := NewCall(store.DefaultTenant, "c1", at(1), "101", "102")
	c1.Customer, c1.CustomerE164 = "84951110001", "+74951110001"
	answer(c1, "102", at(1).Add(5*time.Second))
	end(c1, call.DispositionAnswered, at(1).Add(50*time.Second))

	c2 := NewCall(store.DefaultTenant, "c2", at(2), "103")
	c2.Customer, c2.CustomerE164 = "+7 (495) 111-00-01", "+74951110001"
	end(c2, call.DispositionNoAnswer, at(2).Add(30*time.Second))

	c3 := NewCall(store.DefaultTenant, "c3", at(3))
	c3.Direction = call.DirectionOut
	c3.Customer, c3.CustomerE164 = "84952220002", "+74952220002"
	answer(c3, "104", at(3).Add(7*time.Second))

	c4 := NewCall(store.DefaultTenant, "c4", at(4), "105")
	c4.Customer, c4.CustomerE164 = "anonymous", ""
	answer(c4, "105", at(4).Add(3*time.Second))
	c4.Transfers = []call.Transfer{{Kind: call.TransferAttended, From: "105", To: "201", Completed: true, At: at(4).Add(20 * time.Second)}}
	c4.Agent = "201"
	hold(c4, at(4).Add(40*time.Second))

	c5 := NewCall(store.DefaultTenant, "c5", at(5), "107")
	c5.Direction = call.DirectionInternal
	c5.Customer, c5.CustomerE164 = "106", ""
	end(c5, call.DispositionBusy, at(5).Add(2*time.Second))

	c6 := NewCall(store.DefaultTenant, "c6", at(6), "108")
	c6.Customer, c6.CustomerE164 = "84951110001", "+74951110001"

	// Another tenant's call matches most filters and must never show up.
	a1 := NewCall("acme", "a1", at(7), "101", "102", "105", "201")
	a1.Customer, a1.CustomerE164 = "84951110001", "+74951110001"
	end(a1, call.DispositionAnswered, at(7).Add(time.Minute))

	commit(t, s, []*call.Call{c1, c2, c3})
	commit(t, s, []*call.Call{c4, c5, c6, a1})

	def := store.DefaultTenant
	cases := []struct {
		name string
		f    store.CallFilter
		want []string
	}{
		{"all", store.CallFilter{}, []string{"c6", "c5", "c4", "c3", "c2", "c1"}},
		{"phone raw", store.CallFilter{Phone: "84951110001"}, []string{"c6", "c1"}},
		{"phone raw formatted", store.CallFilter{Phone: "+7 (495) 111-00-01"}, []string{"c2"}},
		{"phone e164", store.CallFilter{PhoneE164: "+74951110001"}, []string{"c6", "c2", "c1"}},
		{"phone raw and e164", store.CallFilter{Phone: "84951110001", PhoneE164: "+74951110001"}, []string{"c6", "c2", "c1"}},
		{"phone formatted and e164", store.CallFilter{Phone: "+7 (495) 111-00-01", PhoneE164: "+74951110001"}, []string{"c6", "c2", "c1"}},
		{"phone raw unknown", store.CallFilter{Phone: "000"}, nil},
		{"phone e164 other", store.CallFilter{PhoneE164: "+74952220002"}, []string{"c3"}},
		{"extension rung", store.CallFilter{Extensions: []string{"101"}}, []string{"c1"}},
		{"extension answered by", store.CallFilter{Extensions: []string{"104"}}, []string{"c3"}},
		{"extension rung and answered", store.CallFilter{Extensions: []string{"102"}}, []string{"c1"}},
		{"extension transfer target", store.CallFilter{Extensions: []string{"201"}}, []string{"c4"}},
		{"extension transfer source", store.CallFilter{Extensions: []string{"105"}}, []string{"c4"}},
		{"extension internal caller", store.CallFilter{Extensions: []string{"106"}}, []string{"c5"}},
		{"extensions any of", store.CallFilter{Extensions: []string{"102", "107", "999"}}, []string{"c5", "c1"}},
		{"extensions overlapping", store.CallFilter{Extensions: []string{"105", "201"}}, []string{"c4"}},
		{"extension unknown", store.CallFilter{Extensions: []string{"999"}}, nil},
		{"direction in", store.CallFilter{Direction: call.DirectionIn}, []string{"c6", "c4", "c2", "c1"}},
		{"direction out", store.CallFilter{Direction: call.DirectionOut}, []string{"c3"}},
		{"direction internal", store.CallFilter{Direction: call.DirectionInternal}, []string{"c5"}},
		{"disposition answered", store.CallFilter{Disposition: call.DispositionAnswered}, []string{"c1"}},
		{"disposition no answer", store.CallFilter{Disposition: call.DispositionNoAnswer}, []string{"c2"}},
		{"disposition busy", store.CallFilter{Disposition: call.DispositionBusy}, []string{"c5"}},
		{"disposition failed", store.CallFilter{Disposition: call.DispositionFailed}, nil},
		{"state ringing", store.CallFilter{State: call.StateRinging}, []string{"c6"}},
		{"state active", store.CallFilter{State: call.StateActive}, []string{"c3"}},
		{"state held", store.CallFilter{State: call.StateHeld}, []string{"c4"}},
		{"state ended", store.CallFilter{State: call.StateEnded}, []string{"c5", "c2", "c1"}},
		// From is inclusive, To exclusive: [From, To).
		{"from", store.CallFilter{From: at(3)}, []string{"c6", "c5", "c4", "c3"}},
		{"to", store.CallFilter{To: at(3)}, []string{"c2", "c1"}},
		{"from to", store.CallFilter{From: at(2), To: at(5)}, []string{"c4", "c3", "c2"}},
		{"from to between calls", store.CallFilter{From: at(2).Add(time.Second), To: at(4).Add(time.Second)}, []string{"c4", "c3"}},
		{"from to empty", store.CallFilter{From: at(8), To: at(9)}, nil},
		{"from in another zone", store.CallFilter{From: at(5).In(time.FixedZone("MSK", 3*3600))}, []string{"c6", "c5"}},
		{"direction and extensions", store.CallFilter{Direction: call.DirectionIn, Extensions: []string{"101", "105", "104"}}, []string{"c4", "c1"}},
		{"state and phone", store.CallFilter{State: call.StateEnded, PhoneE164: "+74951110001"}, []string{"c2", "c1"}},
		{"extensions and time", store.CallFilter{Extensions: []string{"101", "105", "107"}, From: at(2), To: at(5)}, []string{"c4"}},
		{"all filters", store.CallFilter{Phone: "84951110001", PhoneE164: "+74951110001", Extensions: []string{"102"}, Direction: call.DirectionIn,
			Disposition: call.DispositionAnswered, State: call.StateEnded, From: at(1), To: at(2)}, []string{"c1"}},
	}
	for _, tc := range cases {
		f := tc.f
		f.Tenant = def
		got := ids(allCalls(t, s, f))
		if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
			t.Errorf("%s: Calls(%+v) (-want +got):\n%s", tc.name, f, d)
		}
	}
	// The listed calls are the stored ones.
	p := calls(t, s, store.CallFilter{Tenant: def, Extensions: []string{"201"}})
	if len(p.Calls) == 1 {
		if d := cmp.Diff(c4, p.Calls[0], cmpopts.EquateEmpty(), cmpopts.IgnoreFields(call.Call{}, "Acc")); d != "" {
			t.Errorf("listed c4 (-want +got):\n%s", d)
		}
	}
	got := ids(allCalls(t, s, store.CallFilter{Tenant: "acme", Extensions: []string{"101"}}))
	if !cmp.Equal(got, []string{"a1"}) {
		t.Errorf("Calls(acme, extension 101) = %v, want [a1]", got)
	}
}

// testCallsExtensionsGrow: a call offered to more extensions in a later batch is
// found by the new ones and still by the old.
func testCallsExtensionsGrow(t *testing.T, s store.Store) {
	c := NewCall(store.DefaultTenant, "grow", Base, "108")
	commit(t, s, []*call.Call{c})
	c.Rung = append(c.Rung, "109", "110")
	commit(t, s, []*call.Call{c})
	answer(c, "110", Base.Add(10*time.Second))
	c.Transfers = []call.Transfer{{Kind: call.TransferBlind, From: "110", To: "301", At: Base.Add(20 * time.Second)}}
	c.Agent = "301"
	commit(t, s, []*call.Call{c})
	for _, ext := range []string{"108", "109", "110", "301"} {
		p := calls(t, s, store.CallFilter{Tenant: store.DefaultTenant, Extensions: []string{ext}})
		if !cmp.Equal(ids(p.Calls), []string{"grow"}) {
			t.Errorf("Calls(extension %s) = %v, want [grow]", ext, ids(p.Calls))
		}
	}
	// A call matching several of the extensions is listed once.
	p := calls(t, s, store.CallFilter{Tenant: store.DefaultTenant, Extensions: []string{"108", "109", "110", "301"}})
	if !cmp.Equal(ids(p.Calls), []string{"grow"}) {
		t.Errorf("Calls(extensions 108 109 110 301) = %v, want [grow] once", ids(p.Calls))
	}
	wantCall(t, s, c)
}

// paginationSet commits n calls of tenant with started_at in groups of three equal
// times, in shuffled order over several batches, and returns them.
func paginationSet(t testing.TB, s store.Store, tenant, prefix string, n int) []*call.Call {
	t.Helper()
	cs := make([]*call.Call, n)
	for i := range n {
		c := NewCall(tenant, fmt.Sprintf("%s-%03d", prefix, i), Base.Add(time.Duration(i/3)*time.Second), fmt.Sprintf("1%02d", i%5))
		if i%2 == 1 {
			c.Direction = call.DirectionOut
		}
		cs[i] = c
	}
	shuffled := slices.Clone(cs)
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for len(shuffled) > 0 {
		k := min(60, len(shuffled))
		commit(t, s, shuffled[:k])
		shuffled = shuffled[k:]
	}
	return cs
}

// checkAllOnce checks got holds every id of want exactly once, newest first.
func checkAllOnce(t testing.TB, got, want []*call.Call) {
	t.Helper()
	seen := map[string]int{}
	for _, c := range got {
		seen[c.ID]++
		if seen[c.ID] == 2 {
			t.Errorf("call %s listed more than once", c.ID)
		}
	}
	for _, c := range want {
		if seen[c.ID] == 0 {
			t.Errorf("call %s missing", c.ID)
		}
	}
	if len(got) != len(want) {
		t.Errorf("listed %d calls, want %d", len(got), len(want))
	}
	newestFirst(t, got)
}

func testCallsPagination(t *testing.T, s store.Store) {
	addTenant(t, s, "acme")
	cs := paginationSet(t, s, store.DefaultTenant, "p", 250)
	paginationSet(t, s, "acme", "q", 40) // interleaved times, other tenant

	f := store.CallFilter{Tenant: store.DefaultTenant, Limit: 100}
	var got []*call.Call
	var sizes []int
	for {
		p := calls(t, s, f)
		sizes = append(sizes, len(p.Calls))
		got = append(got, p.Calls...)
		if p.Next == "" {
			break
		}
		if len(sizes) > 10 {
			t.Fatal("pagination does not end")
		}
		f.Cursor = p.Next
	}
	if !cmp.Equal(sizes, []int{100, 100, 50}) {
		t.Fatalf("page sizes %v, want [100 100 50]", sizes)
	}
	checkAllOnce(t, got, cs)
	for _, c := range got {
		if c.Tenant != store.DefaultTenant {
			t.Fatalf("call %s of tenant %q listed for default", c.ID, c.Tenant)
		}
	}

	// One big page lists the calls in the same order as the pages.
	one := calls(t, s, store.CallFilter{Tenant: store.DefaultTenant, Limit: 1000})
	if one.Next != "" {
		t.Errorf("a page holding every call has a next cursor %q", one.Next)
	}
	if d := cmp.Diff(ids(got), ids(one.Calls)); d != "" {
		t.Errorf("paged order differs from one page (-paged +one):\n%s", d)
	}

	// A last page that is exactly full has no next cursor.
	for _, limit := range []int{50, 125, 250} {
		var n int
		f := store.CallFilter{Tenant: store.DefaultTenant, Limit: limit}
		for {
			p := calls(t, s, f)
			n++
			if p.Next == "" {
				if len(p.Calls) != limit {
					t.Errorf("Limit %d: last page (page %d) has %d calls, want %d: an empty page was left over", limit, n, len(p.Calls), limit)
				}
				break
			}
			f.Cursor = p.Next
		}
		if n != 250/limit {
			t.Errorf("Limit %d: %d pages, want %d", limit, n, 250/limit)
		}
	}

	// Smaller pages, other tenant.
	q := allCalls(t, s, store.CallFilter{Tenant: "acme", Limit: 7})
	if len(q) != 40 {
		t.Errorf("acme: listed %d calls, want 40", len(q))
	}
	newestFirst(t, q)
}

func testCallsPaginationFiltered(t *testing.T, s store.Store) {
	cs := paginationSet(t, s, store.DefaultTenant, "p", 250)
	var out, ext101 []*call.Call
	for _, c := range cs {
		if c.Direction == call.DirectionOut {
			out = append(out, c)
		}
		if c.Concerns("101") {
			ext101 = append(ext101, c)
		}
	}
	checkAllOnce(t, allCalls(t, s, store.CallFilter{Tenant: store.DefaultTenant, Direction: call.DirectionOut, Limit: 30}), out)
	checkAllOnce(t, allCalls(t, s, store.CallFilter{Tenant: store.DefaultTenant, Extensions: []string{"101"}, Limit: 7}), ext101)
	var window []*call.Call
	from, to := Base.Add(20*time.Second), Base.Add(60*time.Second)
	for _, c := range cs {
		if !c.StartedAt.Before(from) && c.StartedAt.Before(to) {
			window = append(window, c)
		}
	}
	checkAllOnce(t, allCalls(t, s, store.CallFilter{Tenant: store.DefaultTenant, From: from, To: to, Limit: 11}), window)
}

// testCallsPaginationStable: calls that arrive while a client pages do not shift the
// pages it has still to read.
func testCallsPaginationStable(t *testing.T, s store.Store) {
	cs := paginationSet(t, s, store.DefaultTenant, "p", 250)
	f := store.CallFilter{Tenant: store.DefaultTenant, Limit: 100}
	p := calls(t, s, f)
	got := p.Calls
	var newer []*call.Call
	for i := range 10 {
		newer = append(newer, NewCall(store.DefaultTenant, fmt.Sprintf("new-%d", i), Base.Add(time.Hour+time.Duration(i)*time.Second), "101"))
	}
	commit(t, s, newer)
	f.Cursor = p.Next
	got = append(got, allCalls(t, s, f)...)
	checkAllOnce(t, got, cs)
}

func testCallsBadCursor(t *testing.T, s store.Store) {
	paginationSet(t, s, store.DefaultTenant, "p", 5)
	for _, cur := range []string{"not a cursor", "%%%", "AAAA", "////", "\x00"} {
		_, err := s.Calls(t.Context(), store.CallFilter{Tenant: store.DefaultTenant, Cursor: cur})
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Calls(Cursor %q) error %v, want ErrInvalid", cur, err)
		}
	}
}

func testLiveCalls(t *testing.T, s store.Store) {
	addTenant(t, s, "acme")
	ringing := NewCall(store.DefaultTenant, "ringing", Base, "101")
	active := NewCall("acme", "active", Base.Add(time.Second), "201")
	answer(active, "201", Base.Add(3*time.Second))
	held := NewCall(store.DefaultTenant, "held", Base.Add(2*time.Second), "102")
	answer(held, "102", Base.Add(4*time.Second))
	hold(held, Base.Add(14*time.Second))
	ended := NewCall("acme", "ended", Base.Add(3*time.Second), "202")
	end(ended, call.DispositionCancelled, Base.Add(9*time.Second))
	endsLater := NewCall(store.DefaultTenant, "ends-later", Base.Add(4*time.Second), "103")
	commit(t, s, []*call.Call{ringing, active, held, ended, endsLater})

	end(endsLater, call.DispositionNoAnswer, Base.Add(30*time.Second))
	commit(t, s, []*call.Call{endsLater})

	live, err := s.LiveCalls(t.Context())
	if err != nil {
		t.Fatalf("LiveCalls: %v", err)
	}
	byID := func(a, b *call.Call) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(live, byID)
	want := []*call.Call{active, held, ringing}
	// LiveCalls is what a restart resumes from: the accounting must come back too.
	if d := cmp.Diff(want, live, cmpopts.EquateEmpty()); d != "" {
		t.Fatalf("LiveCalls (-want +got):\n%s", d)
	}
}

func testTenantIsolation(t *testing.T, s store.Store) {
	addTenant(t, s, "acme")
	addTenant(t, s, "beta")
	a := NewCall("acme", "call-a", Base, "101")
	b := NewCall("beta", "call-b", Base.Add(time.Second), "101")
	commit(t, s, []*call.Call{a, b}, NewEvent(t, call.EventRinging, a, Base), NewEvent(t, call.EventRinging, b, Base))

	wantCall(t, s, a)
	wantCall(t, s, b)
	for _, tc := range []struct{ tenant, id string }{{"beta", "call-a"}, {store.DefaultTenant, "call-a"}, {"acme", "call-b"}, {"nobody", "call-a"}} {
		if c, err := s.Call(t.Context(), tc.tenant, tc.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Call(%q, %q) = %v, %v; want ErrNotFound", tc.tenant, tc.id, c, err)
		}
	}
	for _, f := range []store.CallFilter{
		{Tenant: "beta"},
		{Tenant: "beta", Extensions: []string{"101"}},
		{Tenant: "beta", Phone: "84951234567"},
		{Tenant: "beta", PhoneE164: "+74951234567"},
	} {
		if got := ids(calls(t, s, f).Calls); !cmp.Equal(got, []string{"call-b"}) {
			t.Errorf("Calls(%+v) = %v, want [call-b]", f, got)
		}
	}
	if got := ids(calls(t, s, store.CallFilter{Tenant: store.DefaultTenant}).Calls); len(got) != 0 {
		t.Errorf("Calls(default) = %v, want none", got)
	}
	if got := events(t, s, store.EventFilter{Tenant: "beta"}); len(got) != 1 || got[0].Tenant != "beta" {
		t.Errorf("Events(beta) = %v, want beta's one event", seqs(got))
	}
}
