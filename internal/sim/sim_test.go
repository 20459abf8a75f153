package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"callbridge/internal/call"
	"callbridge/internal/hub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSink plays the hub: it applies every update with the real state machine and
// remembers anything the machine refused.
type fakeSink struct {
	mu          sync.Mutex
	calls       map[string]*call.Call
	order       []string
	updates     map[string][]call.Update
	errs        []error
	statuses    []hub.Status
	connected   [][]string
	exts        []hub.Extension
	disconnects int
	lost        []string
}

func newSink() *fakeSink {
	return &fakeSink{calls: map[string]*call.Call{}, updates: map[string][]call.Update{}}
}

func (s *fakeSink) Update(u call.Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.calls[u.PBXCallID]
	if !ok {
		c = &call.Call{ID: u.CallID, PBX: u.PBX, PBXCallID: u.PBXCallID}
		s.calls[u.PBXCallID] = c
		s.order = append(s.order, u.PBXCallID)
	}
	if prev := s.updates[u.PBXCallID]; len(prev) > 0 && u.Time.Before(prev[len(prev)-1].Time) {
		s.errs = append(s.errs, fmt.Errorf("%s %s: time went backwards", u.PBXCallID, u.Kind))
	}
	s.updates[u.PBXCallID] = append(s.updates[u.PBXCallID], u)
	if _, err := call.Apply(c, &u); err != nil {
		s.errs = append(s.errs, fmt.Errorf("%s %s: %w", u.PBXCallID, u.Kind, err))
	}
}

func (s *fakeSink) Status(st hub.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statuses = append(s.statuses, st)
}

// Connected ends what the PBX no longer has, as the hub does.
func (s *fakeSink) Synced(pbx string, at time.Time) {}

func (s *fakeSink) Connected(pbx string, alive []string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connected = append(s.connected, alive)
	for id, c := range s.calls {
		if c.State.Live() && !slices.Contains(alive, id) {
			u := call.Lost(c)
			if _, err := call.Apply(c, &u); err != nil {
				s.errs = append(s.errs, err)
			}
			s.lost = append(s.lost, id)
		}
	}
}

func (s *fakeSink) Disconnected(pbx string, reason error, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disconnects++
}

func (s *fakeSink) Extensions(pbx string, exts []hub.Extension) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exts = exts
}

// call returns a copy of the call as the hub would have it, or nil.
func (s *fakeSink) call(id string) *call.Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.calls[id]; ok {
		return c.Clone()
	}
	return nil
}

func (s *fakeSink) kinds(id string) []call.Kind {
	s.mu.Lock()
	defer s.mu.Unlock()
	var k []call.Kind
	for _, u := range s.updates[id] {
		k = append(k, u.Kind)
	}
	return k
}

func (s *fakeSink) started() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

func (s *fakeSink) final(id string) bool {
	c := s.call(id)
	return c != nil && c.Acc.Final
}

func (s *fakeSink) allFinal() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		if !c.Acc.Final {
			return false
		}
	}
	return true
}

func (s *fakeSink) noErrors(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, err := range s.errs {
		if i == 10 {
			t.Errorf("... and %d more", len(s.errs)-10)
			break
		}
		t.Errorf("state machine refused an update: %v", err)
	}
}

// checkFor polls fn every few milliseconds until it holds or timeout passes.
func checkFor(t *testing.T, timeout time.Duration, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// run starts p.Run and returns a function that stops it and waits for it to return;
// the test's cleanup stops it too.
func run(t *testing.T, p *PBX, sink hub.Sink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, sink) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newPBX(t testing.TB, cfg Config) *PBX {
	t.Helper()
	if cfg.ID == "" {
		cfg.ID = "sim"
	}
	if cfg.Extensions == 0 {
		cfg.Extensions = 20
	}
	if cfg.Seed == 0 {
		cfg.Seed = 42
	}
	p, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// quiet checks that the PBX holds nothing for ended calls: no call, no step, no line.
func quiet(t *testing.T, p *PBX) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.calls) != 0 || len(p.byCallID) != 0 || len(p.steps) != 0 {
		t.Errorf("after every call ended: %d calls, %d by call id, %d steps pending", len(p.calls), len(p.byCallID), len(p.steps))
	}
	for i, l := range p.lines {
		if l != lineFree {
			t.Errorf("extension %s still %v", p.exts[i], l)
		}
	}
}

func TestNew(t *testing.T) {
	bad := []Config{
		{Extensions: 10},
		{ID: "sim", Extensions: 0},
		{ID: "sim", Extensions: 10001},
		{ID: "sim", Extensions: 10, Rate: -1},
		{ID: "sim", Extensions: 10, Rate: 2e6},
		{ID: "sim", Extensions: 10, Speed: -2},
		{ID: "sim", Extensions: 10, ExternalPrefix: "+7 495"},
		{ID: "sim", Extensions: 10, ExternalPrefix: "+123456789"},
		{ID: "sim", Extensions: 10, ExternalPrefix: "+"},
	}
	for _, cfg := range bad {
		if _, err := New(cfg, nil); err == nil || !strings.HasPrefix(err.Error(), "sim: ") {
			t.Errorf("New(%+v) = %v, want an error starting with \"sim: \"", cfg, err)
		}
	}
	for _, tc := range []struct {
		n           int
		first, last string
	}{{1, "101", "101"}, {899, "101", "999"}, {900, "10000", "10899"}, {10000, "10000", "19999"}} {
		p := newPBX(t, Config{Extensions: tc.n})
		m := p.members()
		if len(m) != tc.n || m[0].Number != tc.first || m[len(m)-1].Number != tc.last || !m[0].APIEnabled {
			t.Errorf("%d extensions: got %d from %s to %s", tc.n, len(m), m[0].Number, m[len(m)-1].Number)
		}
		if _, ok := p.ext(tc.last); !ok {
			t.Errorf("%d extensions: %s not found", tc.n, tc.last)
		}
		for _, s := range []string{"0" + tc.first, "+" + tc.first, "100", "20000", ""} {
			if _, ok := p.ext(s); ok {
				t.Errorf("%d extensions: %q taken for an extension", tc.n, s)
			}
		}
	}
	if p := newPBX(t, Config{}); p.speed != 1 || p.did != "+74950000000" || p.ID() != "sim" {
		t.Errorf("defaults: speed %v, did %q", p.speed, p.did)
	}
}

func TestFlows(t *testing.T) {
	type check func(t *testing.T, c *call.Call, kinds []call.Kind)
	has := func(k call.Kind) check {
		return func(t *testing.T, _ *call.Call, kinds []call.Kind) {
			if !slices.Contains(kinds, k) {
				t.Errorf("no %s update in %v", k, kinds)
			}
		}
	}
	tests := []struct {
		flow  Flow
		dir   call.Direction
		disp  call.Disposition
		cause string
		check check
	}{
		{FlowInboundAnswered, call.DirectionIn, call.DispositionAnswered, "NORMAL_CLEARING", func(t *testing.T, c *call.Call, _ []call.Kind) {
			if c.AnsweredBy != "105" || c.DID != "+74950000000" || !strings.HasPrefix(c.Customer, "+7495") || len(c.Customer) != 12 {
				t.Errorf("answered by %q, did %q, customer %q", c.AnsweredBy, c.DID, c.Customer)
			}
		}},
		{FlowMissed, call.DirectionIn, call.DispositionNoAnswer, "NO_ANSWER", nil},
		{FlowBusy, call.DirectionIn, call.DispositionBusy, "USER_BUSY", nil},
		{FlowCallerCancels, call.DirectionIn, call.DispositionCancelled, "ORIGINATOR_CANCEL", nil},
		{FlowClickToCall, call.DirectionOut, call.DispositionAnswered, "NORMAL_CLEARING", nil},
		{FlowHoldResume, call.DirectionIn, call.DispositionAnswered, "NORMAL_CLEARING", func(t *testing.T, c *call.Call, kinds []call.Kind) {
			has(call.KindHold)(t, c, kinds)
			has(call.KindResume)(t, c, kinds)
		}},
		{FlowBlindTransfer, call.DirectionIn, call.DispositionAnswered, "NORMAL_CLEARING", func(t *testing.T, c *call.Call, _ []call.Kind) {
			if len(c.Transfers) != 1 || c.Transfers[0].Kind != call.TransferBlind || !c.Transfers[0].Completed ||
				c.Transfers[0].From != "105" || len(c.Rung) != 2 || c.Rung[1] != c.Transfers[0].To {
				t.Errorf("transfers %+v, rung %v", c.Transfers, c.Rung)
			}
		}},
		{FlowAttendedTransfer, call.DirectionIn, call.DispositionAnswered, "NORMAL_CLEARING", func(t *testing.T, c *call.Call, kinds []call.Kind) {
			has(call.KindHold)(t, c, kinds)
			if len(c.Transfers) != 1 || c.Transfers[0].Kind != call.TransferAttended || !c.Transfers[0].Completed {
				t.Errorf("transfers %+v", c.Transfers)
			}
		}},
		{FlowDTMF, call.DirectionIn, call.DispositionAnswered, "NORMAL_CLEARING", func(t *testing.T, c *call.Call, _ []call.Kind) {
			if c.DTMF == "" {
				t.Error("no digits")
			}
		}},
		{FlowOutbound, call.DirectionOut, call.DispositionAnswered, "NORMAL_CLEARING", nil},
		{FlowRingGroup, call.DirectionIn, call.DispositionAnswered, "NORMAL_CLEARING", func(t *testing.T, c *call.Call, _ []call.Kind) {
			if len(c.Rung) != 3 || !slices.Contains(c.Rung, c.AnsweredBy) {
				t.Errorf("rung %v, answered by %q", c.Rung, c.AnsweredBy)
			}
		}},
		{FlowInternal, call.DirectionInternal, call.DispositionAnswered, "NORMAL_CLEARING", func(t *testing.T, c *call.Call, _ []call.Kind) {
			if len(c.Customer) != 3 || c.Customer == "105" || c.DID != "" {
				t.Errorf("internal call from %q, did %q", c.Customer, c.DID)
			}
		}},
	}
	if len(tests) != len(Flows()) {
		t.Fatalf("%d flows tested, %d exist", len(tests), len(Flows()))
	}
	for i, tc := range tests {
		t.Run(string(tc.flow), func(t *testing.T) {
			t.Parallel()
			p := newPBX(t, Config{Speed: 200, Seed: int64(i + 1)})
			sink := newSink()
			stop := run(t, p, sink)
			id, err := p.Start(tc.flow, "105")
			if err != nil {
				t.Fatal(err)
			}
			checkFor(t, 10*time.Second, "the final record", func() bool { return sink.final(id) })
			stop()
			sink.noErrors(t)
			quiet(t, p)
			c := sink.call(id)
			if c.Direction != tc.dir || c.Disposition != tc.disp || c.Cause != tc.cause || c.PBX != "sim" {
				t.Errorf("got %s %s %s on %q, want %s %s %s", c.Direction, c.Disposition, c.Cause, c.PBX, tc.dir, tc.disp, tc.cause)
			}
			if want := "sim://recordings/" + id + ".wav"; (c.Recording == want) != (tc.disp == call.DispositionAnswered) {
				t.Errorf("recording %q for a %s call", c.Recording, c.Disposition)
			}
			if tc.flow != FlowInternal && !slices.Contains(c.Rung, "105") {
				t.Errorf("rung %v, want 105 among them", c.Rung)
			}
			if tc.check != nil {
				tc.check(t, c, sink.kinds(id))
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	p := newPBX(t, Config{Extensions: 1, Speed: 1})
	if _, err := p.Start("fax", ""); err == nil || !strings.HasPrefix(err.Error(), "sim: ") {
		t.Errorf("unknown flow: %v", err)
	}
	if _, err := p.Start(FlowMissed, "555"); !errors.Is(err, ErrNoExtension) {
		t.Errorf("unknown extension: %v", err)
	}
	if _, err := p.Start(FlowInternal, "101"); !errors.Is(err, ErrBusy) {
		t.Errorf("internal call with no other extension: %v", err)
	}
	// Before Run: the call starts and its updates wait for the sink.
	id, err := p.Start(FlowMissed, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Start(FlowMissed, "101"); !errors.Is(err, ErrBusy) {
		t.Errorf("busy extension: %v", err)
	}
	if _, err := p.Start(FlowMissed, ""); !errors.Is(err, ErrBusy) {
		t.Errorf("no free extension: %v", err)
	}
	if _, err := p.Start(FlowBusy, "101"); err != nil {
		t.Errorf("busy flow on a busy extension: %v", err)
	}
	if p.Live() != 2 {
		t.Errorf("Live() = %d, want 2", p.Live())
	}
	sink := newSink()
	run(t, p, sink)
	checkFor(t, 5*time.Second, "the queued ring", func() bool { return sink.call(id) != nil })
	if c := sink.call(id); c.State != call.StateRinging {
		t.Errorf("state %s", c.State)
	}
	sink.noErrors(t)
}

func TestIDsDifferAcrossProcesses(t *testing.T) {
	a, err1 := newPBX(t, Config{Seed: 7}).Start(FlowMissed, "101")
	b, err2 := newPBX(t, Config{Seed: 7}).Start(FlowMissed, "101")
	if err1 != nil || err2 != nil || a == b || !strings.HasPrefix(a, "sim-1-") {
		t.Errorf("ids %q and %q (%v, %v)", a, b, err1, err2)
	}
}

func TestOriginateKeepsCallID(t *testing.T) {
	p := newPBX(t, Config{Speed: 10})
	sink := newSink()
	run(t, p, sink)
	ctx := context.Background()
	cmd := hub.Command{Action: hub.ActionOriginate, CallID: "cb-1", Extension: "101", To: "+79161234567"}
	if err := p.Control(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd  hub.Command
		want error
	}{
		{hub.Command{Action: hub.ActionOriginate, CallID: "cb-2", Extension: "101", To: "+79160000000"}, ErrBusy},
		{hub.Command{Action: hub.ActionOriginate, CallID: "cb-3", Extension: "999", To: "+79160000000"}, ErrNoExtension},
		{hub.Command{Action: hub.ActionOriginate, CallID: "cb-4", Extension: "102"}, nil},
		{hub.Command{Action: hub.ActionOriginate, CallID: "cb-1", Extension: "102", To: "+79160000000"}, nil},
	} {
		err := p.Control(ctx, tc.cmd)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.HasPrefix(err.Error(), "sim: ") {
			t.Errorf("%+v: %v, want %v", tc.cmd, err, tc.want)
		}
	}
	var id string
	checkFor(t, 5*time.Second, "the originated call to be answered", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if len(sink.order) == 0 {
			return false
		}
		id = sink.order[0]
		return sink.calls[id].State == call.StateActive
	})
	c := sink.call(id)
	if first := sink.updates[id][0]; first.CallID != "cb-1" || c.ID != "cb-1" {
		t.Errorf("first update's CallID %q, call id %q", first.CallID, c.ID)
	}
	if c.Direction != call.DirectionOut || c.Customer != "+79161234567" || c.AnsweredBy != "101" {
		t.Errorf("call %s from %s to %s answered by %s", c.Direction, c.Rung, c.Customer, c.AnsweredBy)
	}
	// callbridge knows the call by its own id only.
	if err := p.Control(ctx, hub.Command{Action: hub.ActionHangup, CallID: "cb-1"}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, "the final record", func() bool { return sink.final(id) })
	if c := sink.call(id); c.Disposition != call.DispositionAnswered || c.Recording == "" {
		t.Errorf("ended %s, recording %q", c.Disposition, c.Recording)
	}
	if err := p.Control(ctx, hub.Command{Action: hub.ActionHangup, CallID: "cb-1"}); !errors.Is(err, ErrNoCall) {
		t.Errorf("hang-up of an ended call: %v", err)
	}
	sink.noErrors(t)
	quiet(t, p)
}

func TestControl(t *testing.T) {
	// Speed 1: nothing the test waits for happens on its own within a second.
	p := newPBX(t, Config{Speed: 1, Extensions: 10})
	sink := newSink()
	run(t, p, sink)
	ctx := context.Background()
	id, err := p.Start(FlowMissed, "101")
	if err != nil {
		t.Fatal(err)
	}
	do := func(cmd hub.Command) error {
		cmd.PBXCallID = id
		return p.Control(ctx, cmd)
	}
	must := func(cmd hub.Command) {
		t.Helper()
		if err := do(cmd); err != nil {
			t.Fatalf("%s: %v", cmd.Action, err)
		}
	}
	refused := func(cmd hub.Command, want error) {
		t.Helper()
		if err := do(cmd); !errors.Is(err, want) || !strings.HasPrefix(err.Error(), "sim: ") {
			t.Errorf("%+v: %v, want %v", cmd, err, want)
		}
	}
	state := func(want call.State) func() bool {
		return func() bool { c := sink.call(id); return c != nil && c.State == want }
	}

	refused(hub.Command{Action: hub.ActionHold}, hub.ErrUnsupported)
	refused(hub.Command{Action: hub.ActionAnswer, Extension: "102"}, hub.ErrUnsupported)
	refused(hub.Command{Action: hub.ActionAnswer, Extension: "5"}, ErrNoExtension)
	must(hub.Command{Action: hub.ActionAnswer, Extension: "101"})
	checkFor(t, 2*time.Second, "answered", state(call.StateActive))
	refused(hub.Command{Action: hub.ActionAnswer}, hub.ErrUnsupported)

	must(hub.Command{Action: hub.ActionHold})
	checkFor(t, 2*time.Second, "held", state(call.StateHeld))
	refused(hub.Command{Action: hub.ActionHold}, hub.ErrUnsupported)
	refused(hub.Command{Action: hub.ActionDTMF, Digits: "1"}, hub.ErrUnsupported)
	must(hub.Command{Action: hub.ActionResume})
	checkFor(t, 2*time.Second, "resumed", state(call.StateActive))
	refused(hub.Command{Action: hub.ActionResume}, hub.ErrUnsupported)

	must(hub.Command{Action: hub.ActionDTMF, Digits: "12#"})
	checkFor(t, 2*time.Second, "digits", func() bool { return sink.call(id).DTMF == "12#" })
	if err := do(hub.Command{Action: hub.ActionDTMF, Digits: "1x"}); err == nil || errors.Is(err, hub.ErrUnsupported) {
		t.Errorf("bad digits: %v", err)
	}

	err = do(hub.Command{Action: hub.ActionConference, To: "103"})
	if !errors.Is(err, hub.ErrUnsupported) || !strings.HasPrefix(err.Error(), "sim: conference not supported") {
		t.Errorf("conference: %v", err)
	}
	refused(hub.Command{Action: "park"}, hub.ErrUnsupported)

	refused(hub.Command{Action: hub.ActionTransfer, To: "+74951234567"}, ErrNoExtension)
	refused(hub.Command{Action: hub.ActionTransfer, To: "101"}, ErrBusy)
	must(hub.Command{Action: hub.ActionTransfer, To: "102"})
	checkFor(t, 2*time.Second, "the transfer", func() bool { return len(sink.call(id).Transfers) == 1 })
	refused(hub.Command{Action: hub.ActionHold}, hub.ErrUnsupported)
	// The hub names the call's earlier agent; the target's phone is what rings.
	must(hub.Command{Action: hub.ActionAnswer, Extension: "101"})
	checkFor(t, 2*time.Second, "the target to answer", func() bool { return sink.call(id).Agent == "102" })
	if tr := sink.call(id).Transfers[0]; tr.Kind != call.TransferBlind || tr.From != "101" || tr.To != "102" || !tr.Completed {
		t.Errorf("transfer %+v", tr)
	}

	// An attended transfer the agent abandons: back to the customer, target freed.
	must(hub.Command{Action: hub.ActionTransfer, To: "103", Attended: true})
	checkFor(t, 2*time.Second, "the consultation hold", state(call.StateHeld))
	refused(hub.Command{Action: hub.ActionTransfer, To: "104"}, hub.ErrUnsupported)
	must(hub.Command{Action: hub.ActionResume})
	checkFor(t, 2*time.Second, "resumed", state(call.StateActive))
	p.mu.Lock()
	if p.lines[2] != lineFree || p.lines[1] != lineBusy || p.lines[0] != lineFree {
		t.Errorf("lines 101..103: %v %v %v", p.lines[0], p.lines[1], p.lines[2])
	}
	p.mu.Unlock()

	// Cancelled through the API's verb: the same.
	refused(hub.Command{Action: hub.ActionTransferCancel}, hub.ErrUnsupported) // nothing to cancel yet
	must(hub.Command{Action: hub.ActionTransfer, To: "103", Attended: true})
	checkFor(t, 2*time.Second, "the consultation hold", state(call.StateHeld))
	must(hub.Command{Action: hub.ActionTransferCancel})
	checkFor(t, 2*time.Second, "cancelled", state(call.StateActive))

	if err := p.Control(ctx, hub.Command{Action: hub.ActionAgent, Extension: "104", Status: "paused"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Control(ctx, hub.Command{Action: hub.ActionAgent, Extension: "1040", Status: "paused"}); !errors.Is(err, ErrNoExtension) {
		t.Errorf("agent status of an unknown extension: %v", err)
	}
	checkFor(t, 2*time.Second, "the agent status", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.statuses) == 1 && sink.statuses[0].Type == call.EventAgentStatus &&
			sink.statuses[0].Extension == "104" && sink.statuses[0].Status == "paused"
	})

	must(hub.Command{Action: hub.ActionHangup})
	checkFor(t, 2*time.Second, "the final record", func() bool { return sink.final(id) })
	// A hang-up cancels the script: nothing is left to run for the call.
	quiet(t, p)
	c := sink.call(id)
	if c.Disposition != call.DispositionAnswered || c.Cause != "NORMAL_CLEARING" || c.Recording == "" || c.AnsweredBy != "101" {
		t.Errorf("ended %s %s, recording %q, answered by %s", c.Disposition, c.Cause, c.Recording, c.AnsweredBy)
	}
	refused(hub.Command{Action: hub.ActionHangup}, ErrNoCall)
	if err := p.Control(ctx, hub.Command{Action: hub.ActionHold, PBXCallID: "sim-99"}); !errors.Is(err, ErrNoCall) {
		t.Errorf("unknown call: %v", err)
	}
	if err := p.Control(ctx, hub.Command{Action: hub.ActionHold, CallID: "0190"}); !errors.Is(err, ErrNoCall) {
		t.Errorf("unknown call id: %v", err)
	}
	sink.noErrors(t)
}

func TestRejectRinging(t *testing.T) {
	p := newPBX(t, Config{Speed: 1})
	sink := newSink()
	run(t, p, sink)
	ctx := context.Background()
	id, err := p.Start(FlowMissed, "101")
	if err != nil {
		t.Fatal(err)
	}
	busy, err := p.Start(FlowBusy, "102")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Control(ctx, hub.Command{Action: hub.ActionAnswer, PBXCallID: busy}); !errors.Is(err, ErrBusy) {
		t.Errorf("answer of a busy call: %v", err)
	}
	if err := p.Control(ctx, hub.Command{Action: hub.ActionHangup, PBXCallID: id, CallID: "cb-7"}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 2*time.Second, "the final record", func() bool { return sink.final(id) })
	c := sink.call(id)
	if c.Disposition != call.DispositionCancelled || c.Cause != "CALL_REJECTED" || c.Recording != "" {
		t.Errorf("rejected call ended %s %s, recording %q", c.Disposition, c.Cause, c.Recording)
	}
	checkFor(t, 5*time.Second, "the busy call to end", func() bool { return sink.final(busy) })
	sink.noErrors(t)
	quiet(t, p)
}

func TestAttendedTransferControl(t *testing.T) {
	p := newPBX(t, Config{Speed: 50})
	sink := newSink()
	run(t, p, sink)
	ctx := context.Background()
	id, err := p.Start(FlowMissed, "101")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []hub.Command{
		{Action: hub.ActionAnswer, PBXCallID: id},
		{Action: hub.ActionTransfer, PBXCallID: id, Extension: "101", To: "102", Attended: true},
		{Action: hub.ActionTransferComplete, PBXCallID: id},
	} {
		if err := p.Control(ctx, cmd); err != nil {
			t.Fatalf("%s: %v", cmd.Action, err)
		}
	}
	checkFor(t, 5*time.Second, "the transfer to complete", func() bool {
		c := sink.call(id)
		return c != nil && len(c.Transfers) == 1 && c.Transfers[0].Completed
	})
	// The far end may have hung up already: talk after the transfer is 0.2 s at the least.
	if err := p.Control(ctx, hub.Command{Action: hub.ActionHangup, PBXCallID: id}); err != nil && !errors.Is(err, ErrNoCall) {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, "the final record", func() bool { return sink.final(id) })
	c := sink.call(id)
	kinds := sink.kinds(id)
	want := []call.Kind{call.KindRing, call.KindAnswer, call.KindHold, call.KindRing, call.KindTransfer, call.KindEnd, call.KindFinal}
	if !slices.Equal(kinds, want) {
		t.Errorf("updates %v, want %v", kinds, want)
	}
	if len(c.Transfers) != 1 || c.Transfers[0].Kind != call.TransferAttended || !c.Transfers[0].Completed || c.Transfers[0].To != "102" || c.Disposition != call.DispositionAnswered {
		t.Errorf("transfers %+v, disposition %s", c.Transfers, c.Disposition)
	}
	sink.noErrors(t)
	quiet(t, p)
}

func TestExtensionStatus(t *testing.T) {
	p := newPBX(t, Config{Speed: 200, ExtensionStatus: true})
	sink := newSink()
	run(t, p, sink)
	id, err := p.Start(FlowInboundAnswered, "101")
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, "the final record", func() bool { return sink.final(id) })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	var got []string
	for _, s := range sink.statuses {
		if s.Type != call.EventExtStatus || s.Extension != "101" || s.PBX != "sim" || s.Time.IsZero() {
			t.Errorf("status %+v", s)
		}
		got = append(got, s.Status)
	}
	if want := []string{"ringing", "busy", "available"}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
}

func TestPausedAgentGetsNoCalls(t *testing.T) {
	p := newPBX(t, Config{Extensions: 1, Speed: 100})
	if err := p.Control(context.Background(), hub.Command{Action: hub.ActionAgent, Extension: "101", Status: "paused"}); err != nil {
		t.Fatal(err)
	}
	if err := p.SetRate(300); err != nil {
		t.Fatal(err)
	}
	sink := newSink()
	run(t, p, sink)
	checkFor(t, 5*time.Second, "30 calls", func() bool { return sink.started() >= 30 })
	if err := p.SetRate(0); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, "every call to end", func() bool { return p.Live() == 0 && sink.allFinal() })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for id, c := range sink.calls {
		if c.Disposition != call.DispositionBusy {
			t.Errorf("%s: %s %s, want busy: the only agent is paused", id, c.Direction, c.Disposition)
		}
	}
}

func TestRunStopsAndRestarts(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := newPBX(t, Config{Extensions: 100, Rate: 200, Speed: 1})
	sink := newSink()
	stop := run(t, p, sink)
	checkFor(t, 5*time.Second, "calls", func() bool { return sink.started() >= 20 })
	stop()
	goleak.VerifyNone(t)
	sink.mu.Lock()
	if len(sink.connected) != 1 || len(sink.connected[0]) != 0 || sink.disconnects != 1 || len(sink.exts) != 100 {
		t.Errorf("first run: connected %d times (alive %v), disconnected %d times, %d extensions",
			len(sink.connected), sink.connected, sink.disconnects, len(sink.exts))
	}
	sink.mu.Unlock()

	// Calls outlive the link; a second Run reports every call still going.
	if err := p.SetRate(0); err != nil {
		t.Fatal(err)
	}
	stop = run(t, p, sink)
	checkFor(t, 5*time.Second, "the second connect", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.connected) == 2
	})
	stop()
	goleak.VerifyNone(t)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.connected[1]) == 0 || len(sink.lost) != 0 {
		t.Errorf("second run: alive %d, lost %v", len(sink.connected[1]), sink.lost)
	}
	if sink.disconnects != 2 {
		t.Errorf("disconnected %d times", sink.disconnects)
	}
	for i, err := range sink.errs {
		if i < 10 {
			t.Errorf("state machine refused an update: %v", err)
		}
	}
}

func TestScheduledRate(t *testing.T) {
	p := newPBX(t, Config{Extensions: 10000, Rate: 200, Speed: 100})
	sink := newSink()
	run(t, p, sink)
	start := time.Now()
	checkFor(t, 5*time.Second, "200 calls", func() bool { return sink.started() >= 200 })
	if el := time.Since(start); el < 700*time.Millisecond {
		t.Errorf("200 calls at 200/s took only %v", el)
	}
	if err := p.SetRate(0); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, "every call to end", func() bool { return p.Live() == 0 && sink.allFinal() })
	sink.noErrors(t)
	quiet(t, p)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	seen := map[string]int{}
	for _, c := range sink.calls {
		seen[string(c.Disposition)]++
		seen[string(c.Direction)]++
		if (c.Recording != "") != (c.Disposition == call.DispositionAnswered) {
			t.Errorf("%s: %s with recording %q", c.PBXCallID, c.Disposition, c.Recording)
		}
	}
	for _, k := range []string{"answered", "no_answer", "busy", "cancelled", "in", "out"} {
		if seen[k] == 0 {
			t.Errorf("no %s call among %d: %v", k, len(sink.calls), seen)
		}
	}
}

// TestSustainedRate: 2,000 calls/s on 10,000 extensions in real time, without falling behind.
func TestSustainedRate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a second")
	}
	p := newPBX(t, Config{Extensions: 10000, Rate: 2000, Speed: 1})
	sink := newSink()
	run(t, p, sink)
	start := time.Now()
	checkFor(t, 5*time.Second, "2,000 calls", func() bool { return sink.started() >= 2000 })
	if el := time.Since(start); el > 1300*time.Millisecond {
		t.Errorf("2,000 calls at 2,000/s took %v", el)
	}
	sink.noErrors(t)
}

func TestMix(t *testing.T) {
	p := newPBX(t, Config{})
	const n = 100_000
	count := map[string]int{}
	p.mu.Lock()
	for range n {
		f, pl := p.pickFlow()
		k := string(f)
		if pl&planNoAnswer != 0 {
			k += "/unanswered"
		}
		count[k]++
	}
	p.mu.Unlock()
	for k, want := range map[string]float64{
		"inbound_answered": 0.55, "missed": 0.15, "busy": 0.10, "caller_cancels": 0.10,
		"outbound": 0.075, "outbound/unanswered": 0.025,
	} {
		if got := float64(count[k]) / n; got < want-0.01 || got > want+0.01 {
			t.Errorf("%s: %.3f of calls, want %.3f", k, got, want)
		}
	}
}

func TestHeap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h callHeap
	live := map[*simCall]bool{}
	for range 5000 {
		switch op := r.IntN(4); {
		case op < 2 || len(h) == 0:
			c := &simCall{hidx: -1, due: time.Duration(r.IntN(1000))}
			h.push(c)
			live[c] = true
		case op == 2:
			c := h[r.IntN(len(h))]
			c.due = time.Duration(r.IntN(1000))
			h.fix(int(c.hidx))
		default:
			c := h[r.IntN(len(h))]
			h.remove(int(c.hidx))
			delete(live, c)
			if c.hidx != -1 {
				t.Fatal("removed entry keeps its index")
			}
		}
		for i, c := range h {
			if int(c.hidx) != i || (i > 0 && h[(i-1)/2].due > c.due) {
				t.Fatalf("heap broken at %d", i)
			}
		}
	}
	var got []time.Duration
	for len(h) > 0 {
		got = append(got, h.pop().due)
	}
	if len(got) != len(live) || !sort.SliceIsSorted(got, func(i, j int) bool { return got[i] < got[j] }) {
		t.Errorf("popped %d of %d, sorted %v", len(got), len(live), sort.SliceIsSorted(got, func(i, j int) bool { return got[i] < got[j] }))
	}
}

// countSink counts updates and does nothing else, so the benchmark measures the simulator.
type countSink struct{ n atomic.Int64 }

func (s *countSink) Update(call.Update)                          { s.n.Add(1) }
func (s *countSink) Status(hub.Status)                           {}
func (s *countSink) Connected(string, []string, time.Time)       {}
func (s *countSink) Synced(string, time.Time)                    {}
func (s *countSink) Disconnected(string, error, time.Time)       {}
func (s *countSink) Extensions(pbx string, exts []hub.Extension) {}

// BenchmarkSchedule measures how many updates per second the scheduler and sender
// produce when nothing holds them back: 10,000 extensions, calls arriving as fast as
// they can be started, durations compressed 10,000 times.
func BenchmarkSchedule(b *testing.B) {
	p := newPBX(b, Config{Extensions: 10000, Rate: maxRate, Speed: 10000})
	sink := &countSink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx, sink)
	}()
	b.ResetTimer()
	start := time.Now()
	for sink.n.Load() < int64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	el := time.Since(start)
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(sink.n.Load())/el.Seconds(), "updates/s")
}
