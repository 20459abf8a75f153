package hub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"callbridge/internal/call"
	"callbridge/internal/hub"
	"callbridge/internal/store"
	"callbridge/internal/store/sqlite"
	"callbridge/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakePBX is a connector driven by the test: it hands the test its sink and records
// the commands it gets.
type fakePBX struct {
	id    string
	alive []string
	exts  []hub.Extension
	fail  error

	mu   sync.Mutex
	sink hub.Sink
	cmds []hub.Command
	up   chan struct{}
}

func newFake(id string, exts ...string) *fakePBX {
	f := &fakePBX{id: id, up: make(chan struct{})}
	for _, e := range exts {
		f.exts = append(f.exts, hub.Extension{Number: e, APIEnabled: true})
	}
	return f
}

func (f *fakePBX) ID() string { return f.id }

func (f *fakePBX) Run(ctx context.Context, sink hub.Sink) error {
	sink.Extensions(f.id, f.exts)
	sink.Connected(f.id, f.alive, time.Now())
	f.mu.Lock()
	f.sink = sink
	f.mu.Unlock()
	close(f.up)
	<-ctx.Done()
	return nil
}

func (f *fakePBX) Control(ctx context.Context, cmd hub.Command) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, cmd)
	return f.fail
}

func (f *fakePBX) send(u call.Update) {
	<-f.up
	u.PBX = f.id
	f.sink.Update(u)
}

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

type env struct {
	t      *testing.T
	st     *sqlite.DB
	h      *hub.Hub
	cancel context.CancelFunc
	done   chan error
}

func openStore(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func start(t *testing.T, st *sqlite.DB, cfg hub.Config) *env {
	t.Helper()
	cfg.Store = st
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, st: st, h: h, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- h.Run(ctx) }()
	return e
}

func (e *env) stop() {
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Fatal(err)
	}
}

// checkFor polls fn until it returns nil or the timeout passes.
func checkFor(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	testutil.CheckFor(t, timeout, fn)
}

func collect(t *testing.T, sub *hub.Subscription, n int) []*call.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*call.Event
	for len(out) < n {
		evs, err := sub.Next(ctx, 100)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(out), n, err)
		}
		out = append(out, evs...)
	}
	return out
}

func types(evs []*call.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Type))
	}
	return out
}

func TestLifecyclePersistedAndPublished(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "cb.db"))
	defer st.Close()
	pbx := newFake("pbx", "101", "102")
	e := start(t, st, hub.Config{Connectors: []hub.Connector{pbx}})
	defer e.stop()

	sub := e.h.Subscribe(0)
	pbx.send(call.Update{PBXCallID: "c1", Time: at(0), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "89066800404", DID: "4950000000", Extensions: []string{"101", "102"}})
	pbx.send(call.Update{PBXCallID: "c1", Time: at(2), Kind: call.KindAnswer, Extension: "102"})
	pbx.send(call.Update{PBXCallID: "c1", Time: at(3), Kind: call.KindDTMF, Digits: "5"})
	pbx.send(call.Update{PBXCallID: "c1", Time: at(4), Kind: call.KindAnswer, Extension: "102"}) // duplicate: ignored
	pbx.send(call.Update{PBXCallID: "c1", Time: at(9), Kind: call.KindEnd, Cause: "NORMAL_CLEARING"})
	pbx.send(call.Update{PBXCallID: "c1", Time: at(9.5), Kind: call.KindFinal, Recording: "rec.wav"})
	pbx.send(call.Update{PBXCallID: "c1", Time: at(10), Kind: call.KindEnd}) // second hang-up: ignored

	// pbx.connected first, then the call's events, in order.
	evs := collect(t, sub, 6)
	want := []string{"pbx.connected", "call.ringing", "call.answered", "call.dtmf", "call.ended", "call.recorded"}
	if fmt.Sprint(types(evs)) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", types(evs), want)
	}
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Errorf("event %d has seq %d", i, ev.Seq)
		}
	}
	ended := evs[4]
	if err := ended.Decode(); err != nil {
		t.Fatal(err)
	}
	c := ended.Call
	if c.CustomerE164 != "+79066800404" || c.AnsweredBy != "102" || c.Disposition != call.DispositionAnswered || c.TalkS != 7 {
		t.Errorf("ended call: %+v", c)
	}
	got, err := st.Call(context.Background(), store.DefaultTenant, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Recording != "rec.wav" || got.State != call.StateEnded {
		t.Errorf("stored call: recording %q state %s", got.Recording, got.State)
	}
}

func TestSubscribeFromCursorNoGapNoDuplicate(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "cb.db"))
	defer st.Close()
	pbx := newFake("pbx", "101")
	// A tiny ring forces the early part of the replay to come from the store.
	e := start(t, st, hub.Config{Connectors: []hub.Connector{pbx}, RingSize: 8})
	defer e.stop()

	const calls = 50
	send := func(from, to int) {
		for i := from; i < to; i++ {
			id := fmt.Sprintf("c%d", i)
			pbx.send(call.Update{PBXCallID: id, Time: at(float64(i)), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "100200", Extensions: []string{"101"}})
			pbx.send(call.Update{PBXCallID: id, Time: at(float64(i) + 0.5), Kind: call.KindEnd, Disposition: call.DispositionBusy})
		}
	}
	send(0, calls/2)
	checkFor(t, 5*time.Second, func() error {
		if e.h.LastSeq() < calls+1 {
			return fmt.Errorf("last seq %d", e.h.LastSeq())
		}
		return nil
	})
	// Start in the middle of what is already logged; the rest arrives while reading.
	sub := e.h.Subscribe(7)
	go send(calls/2, calls)
	evs := collect(t, sub, 2*calls+1-7)
	for i, ev := range evs {
		if ev.Seq != int64(8+i) {
			t.Fatalf("event %d: seq %d, want %d", i, ev.Seq, 8+i)
		}
	}
}

func TestRestartEndsLostCalls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cb.db")
	st := openStore(t, path)
	pbx := newFake("pbx", "101")
	gone := newFake("gone", "201")
	e := start(t, st, hub.Config{Connectors: []hub.Connector{pbx, gone}})
	pbx.send(call.Update{PBXCallID: "ringing", Time: at(0), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "+74951343060", Extensions: []string{"101"}})
	pbx.send(call.Update{PBXCallID: "talking", Time: at(0), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "+74951343061", Extensions: []string{"101"}})
	pbx.send(call.Update{PBXCallID: "talking", Time: at(1), Kind: call.KindAnswer, Extension: "101"})
	pbx.send(call.Update{PBXCallID: "talking", Time: at(6), Kind: call.KindDTMF, Digits: "1"})
	pbx.send(call.Update{PBXCallID: "kept", Time: at(0), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "+74951343062", Extensions: []string{"101"}})
	gone.send(call.Update{PBXCallID: "orphan", Time: at(0), Kind: call.KindRing, Direction: call.DirectionOut, Customer: "+74951343063", Extensions: []string{"201"}})
	checkFor(t, 5*time.Second, func() error {
		live, err := st.LiveCalls(context.Background())
		if err != nil || len(live) != 4 {
			return fmt.Errorf("%d live calls, %v", len(live), err)
		}
		return nil
	})
	e.stop()
	st.Close()

	// The PBX comes back knowing only "kept"; PBX "gone" is no longer configured.
	st = openStore(t, path)
	defer st.Close()
	pbx = newFake("pbx", "101")
	pbx.alive = []string{"kept"}
	e = start(t, st, hub.Config{Connectors: []hub.Connector{pbx}})
	defer e.stop()
	checkFor(t, 5*time.Second, func() error {
		live, err := st.LiveCalls(context.Background())
		if err != nil || len(live) != 1 || live[0].PBXCallID != "kept" {
			return fmt.Errorf("live calls %d, %v", len(live), err)
		}
		return nil
	})
	page, err := st.Calls(context.Background(), store.CallFilter{Tenant: store.DefaultTenant, State: call.StateEnded})
	if err != nil {
		t.Fatal(err)
	}
	byPBX := map[string]*call.Call{}
	for _, c := range page.Calls {
		byPBX[c.PBXCallID] = c
	}
	for id, want := range map[string]struct {
		disp  call.Disposition
		ended time.Time
	}{
		"ringing": {call.DispositionNoAnswer, at(0)},
		"talking": {call.DispositionAnswered, at(6)},
		"orphan":  {call.DispositionNoAnswer, at(0)},
	} {
		c := byPBX[id]
		if c == nil {
			t.Errorf("%s: not ended", id)
			continue
		}
		if c.Cause != call.CauseLost || c.Disposition != want.disp || !c.EndedAt.Equal(want.ended) {
			t.Errorf("%s: cause %q disposition %q ended %v, want lost %q %v", id, c.Cause, c.Disposition, c.EndedAt, want.disp, want.ended)
		}
	}
	if c := byPBX["talking"]; c != nil && c.TalkS != 5 {
		t.Errorf("lost call talk_s %v, want 5 (until last seen)", c.TalkS)
	}
}

func TestControlRouting(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "cb.db"))
	defer st.Close()
	pbx := newFake("pbx", "101", "102")
	pbx.exts = append(pbx.exts, hub.Extension{Number: "103", APIEnabled: false})
	e := start(t, st, hub.Config{Connectors: []hub.Connector{pbx}})
	defer e.stop()
	<-pbx.up
	ctx := context.Background()

	id, err := e.h.Originate(ctx, store.DefaultTenant, "101", "+79066800404")
	if err != nil {
		t.Fatal(err)
	}
	pbx.mu.Lock()
	got := pbx.cmds[0]
	pbx.mu.Unlock()
	if got.Action != hub.ActionOriginate || got.CallID != id || got.Extension != "101" || got.To != "+79066800404" {
		t.Fatalf("originate command %+v", got)
	}
	// The PBX reports the call with the id it was given: the call keeps it.
	pbx.send(call.Update{PBXCallID: "o1", CallID: id, Time: at(0), Kind: call.KindRing, Direction: call.DirectionOut, Customer: "+79066800404", Extensions: []string{"101"}})
	checkFor(t, 5*time.Second, func() error {
		_, err := st.Call(ctx, store.DefaultTenant, id)
		return err
	})
	pbx.send(call.Update{PBXCallID: "o2", Time: at(0), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "+79066800405", Extensions: []string{"103"}})
	var disabledCall string
	checkFor(t, 5*time.Second, func() error {
		page, err := st.Calls(ctx, store.CallFilter{Tenant: store.DefaultTenant, Extensions: []string{"103"}})
		if err != nil || len(page.Calls) != 1 {
			return fmt.Errorf("%v", err)
		}
		disabledCall = page.Calls[0].ID
		return nil
	})

	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"hold routed", func() error {
			return e.h.Control(ctx, store.DefaultTenant, hub.Command{Action: hub.ActionHangup, CallID: id})
		}, nil},
		{"unknown call", func() error {
			return e.h.Control(ctx, store.DefaultTenant, hub.Command{Action: hub.ActionHold, CallID: "nope"})
		}, hub.ErrNotFound},
		{"other tenant", func() error { return e.h.Control(ctx, "acme", hub.Command{Action: hub.ActionHold, CallID: id}) }, hub.ErrNotFound},
		{"extension not enabled", func() error {
			return e.h.Control(ctx, store.DefaultTenant, hub.Command{Action: hub.ActionAnswer, CallID: disabledCall})
		}, hub.ErrNotEnabled},
		{"originate from disabled", func() error { _, err := e.h.Originate(ctx, store.DefaultTenant, "103", "1234567"); return err }, hub.ErrNotEnabled},
		{"originate from unknown", func() error { _, err := e.h.Originate(ctx, store.DefaultTenant, "999", "1234567"); return err }, hub.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("ended call", func(t *testing.T) {
		pbx.send(call.Update{PBXCallID: "o1", Time: at(5), Kind: call.KindEnd})
		checkFor(t, 5*time.Second, func() error {
			c, err := st.Call(ctx, store.DefaultTenant, id)
			if err != nil || c.State != call.StateEnded {
				return fmt.Errorf("not ended: %v", err)
			}
			return nil
		})
		if err := e.h.Control(ctx, store.DefaultTenant, hub.Command{Action: hub.ActionHold, CallID: id}); !errors.Is(err, hub.ErrEnded) {
			t.Fatalf("err %v, want ErrEnded", err)
		}
	})
	t.Run("connector refuses", func(t *testing.T) {
		pbx.mu.Lock()
		pbx.fail = fmt.Errorf("conference: %w", hub.ErrUnsupported)
		pbx.mu.Unlock()
		_, err := e.h.Originate(ctx, store.DefaultTenant, "102", "1234567")
		if !errors.Is(err, hub.ErrUnsupported) {
			t.Fatalf("err %v, want ErrUnsupported", err)
		}
	})
}

func TestStoppedHubRefusesUpdates(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "cb.db"))
	defer st.Close()
	pbx := newFake("pbx", "101")
	e := start(t, st, hub.Config{Connectors: []hub.Connector{pbx}})
	<-pbx.up
	e.stop()
	done := make(chan struct{})
	go func() {
		pbx.sink.Update(call.Update{PBX: "pbx", PBXCallID: "late", Time: at(0), Kind: call.KindRing, Direction: call.DirectionIn})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("update to a stopped hub blocked")
	}
}

// silentPBX never comes up: a PBX that is down when callbridge restarts.
type silentPBX struct{ id string }

func (s silentPBX) ID() string                                 { return s.id }
func (s silentPBX) Run(ctx context.Context, _ hub.Sink) error  { <-ctx.Done(); return nil }
func (s silentPBX) Control(context.Context, hub.Command) error { return hub.ErrUnsupported }

// TestUnreachablePBXCallsEndLost: calls of a PBX that does not come back within
// LostAfter are ended as lost, not left ringing or active for ever.
func TestUnreachablePBXCallsEndLost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cb.db")
	st := openStore(t, path)
	pbx := newFake("pbx", "101")
	e := start(t, st, hub.Config{Connectors: []hub.Connector{pbx}})
	pbx.send(call.Update{PBXCallID: "c1", Time: at(0), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "+74951343060", Extensions: []string{"101"}})
	pbx.send(call.Update{PBXCallID: "c1", Time: at(1), Kind: call.KindAnswer, Extension: "101"})
	checkFor(t, 5*time.Second, func() error {
		live, err := st.LiveCalls(context.Background())
		if err != nil || len(live) != 1 {
			return fmt.Errorf("%d live calls, %v", len(live), err)
		}
		return nil
	})
	e.stop()
	st.Close()

	st = openStore(t, path)
	defer st.Close()
	e = start(t, st, hub.Config{Connectors: []hub.Connector{silentPBX{"pbx"}}, LostAfter: 50 * time.Millisecond})
	defer e.stop()
	checkFor(t, 5*time.Second, func() error {
		live, err := st.LiveCalls(context.Background())
		if err != nil || len(live) != 0 {
			return fmt.Errorf("%d live calls, %v", len(live), err)
		}
		return nil
	})
	page, err := st.Calls(context.Background(), store.CallFilter{Tenant: store.DefaultTenant})
	if err != nil || len(page.Calls) != 1 {
		t.Fatalf("%v %v", page, err)
	}
	if c := page.Calls[0]; c.Cause != call.CauseLost || c.Disposition != call.DispositionAnswered || !c.EndedAt.Equal(at(1)) {
		t.Fatalf("%+v", c)
	}
}

// capablePBX can only hang up and transfer.
type capablePBX struct{ *fakePBX }

func (capablePBX) Capabilities() []string { return []string{call.ActionHangup, call.ActionTransfer} }

// TestAllowedActions: a call's snapshot carries what its state allows, narrowed to
// what its PBX can do, and nothing when its extension is not enabled for API control.
func TestAllowedActions(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "cb.db"))
	defer st.Close()
	full := newFake("full", "101")
	full.exts = append(full.exts, hub.Extension{Number: "103", APIEnabled: false})
	narrow := capablePBX{newFake("narrow", "201")}
	e := start(t, st, hub.Config{Connectors: []hub.Connector{full, narrow}})
	defer e.stop()
	ring := func(f *fakePBX, id, ext string) {
		f.send(call.Update{PBXCallID: id, Time: at(0), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "+74951343060", Extensions: []string{ext}})
		f.send(call.Update{PBXCallID: id, Time: at(1), Kind: call.KindAnswer, Extension: ext})
	}
	ring(full, "a", "101")
	ring(full, "b", "103")
	ring(narrow.fakePBX, "c", "201")
	want := map[string][]string{
		"a": {"hangup", "hold", "transfer", "conference", "dtmf"},
		"b": {},
		"c": {"hangup", "transfer"},
	}
	checkFor(t, 5*time.Second, func() error {
		live, err := st.LiveCalls(context.Background())
		if err != nil || len(live) != 3 {
			return fmt.Errorf("%d live, %v", len(live), err)
		}
		for _, c := range live {
			if c.State != call.StateActive {
				return fmt.Errorf("%s %s", c.PBXCallID, c.State)
			}
			if fmt.Sprint(c.Allowed) != fmt.Sprint(want[c.PBXCallID]) {
				return fmt.Errorf("call %s allows %v, want %v", c.PBXCallID, c.Allowed, want[c.PBXCallID])
			}
		}
		return nil
	})
}

func TestRawListeners(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "cb.db"))
	defer st.Close()
	e := start(t, st, hub.Config{Connectors: []hub.Connector{newFake("a"), newFake("b")}, Tenants: map[string]string{"b": "acme"}})
	defer e.stop()
	s := e.h.SubscribeRaw(store.DefaultTenant, 2)
	if !e.h.RawWanted("a") || e.h.RawWanted("b") {
		t.Fatal("RawWanted does not follow tenants")
	}
	for i := 0; i < 5; i++ {
		e.h.Raw("a", []byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	e.h.Raw("b", []byte(`{"other":true}`))
	if got := string(<-s.C()); got != `{"n":0}` {
		t.Fatalf("first raw event %s", got)
	}
	if s.Dropped() != 3 {
		t.Fatalf("dropped %d, want 3 (a listener that does not read loses, never blocks)", s.Dropped())
	}
	s.Close()
	if e.h.RawWanted("a") {
		t.Fatal("raw still wanted after the last listener left")
	}
}

// TestSubscribeTenant: a tenant's subscription yields exactly that tenant's events of
// the log, in order, from the store and then live, and is not held up by stretches of
// other tenants' events.
func TestSubscribeTenant(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "cb.db"))
	defer st.Close()
	busy, small := newFake("busy", "101"), newFake("small", "201")
	e := start(t, st, hub.Config{Connectors: []hub.Connector{busy, small}, Tenants: map[string]string{"small": "acme"}, RingSize: 8})
	defer e.stop()
	ring := func(p *fakePBX, id, ext string, s float64) {
		p.send(call.Update{PBXCallID: id, Time: at(s), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "100200", Extensions: []string{ext}})
		p.send(call.Update{PBXCallID: id, Time: at(s + 0.5), Kind: call.KindEnd, Disposition: call.DispositionBusy})
	}
	for i := range 40 {
		ring(busy, fmt.Sprintf("b%d", i), "101", float64(i))
		if i%10 == 0 {
			ring(small, fmt.Sprintf("s%d", i), "201", float64(i))
		}
	}
	acme := func() []int64 {
		evs, err := st.Events(context.Background(), store.EventFilter{Tenant: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, ev := range evs {
			out = append(out, ev.Seq)
		}
		return out
	}
	checkFor(t, 5*time.Second, func() error {
		if n := len(acme()); n < 8 {
			return fmt.Errorf("%d acme events", n)
		}
		return nil
	})
	sub := e.h.SubscribeTenant(0, "acme")
	want := acme()
	got := collect(t, sub, len(want))
	for i, ev := range got {
		if ev.Tenant != "acme" || i >= len(want) || ev.Seq != want[i] {
			t.Fatalf("event %d: seq %d tenant %q, want seq %v", i, ev.Seq, ev.Tenant, want)
		}
	}
	// A long stretch of the busy tenant, then one acme call: it comes through.
	for i := range 30 {
		ring(busy, fmt.Sprintf("b2-%d", i), "101", float64(100+i))
	}
	ring(small, "s-late", "201", 200)
	got = collect(t, sub, 2)
	if got[0].Tenant != "acme" || !strings.Contains(string(got[0].Raw), `"pbx_call_id":"s-late"`) {
		t.Fatalf("late event %s", got[0].Raw)
	}
	if sub.Cursor() < got[1].Seq {
		t.Fatalf("cursor %d behind the last event %d", sub.Cursor(), got[1].Seq)
	}
}
