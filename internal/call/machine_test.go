package call

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// t0 is the start of every scenario; at(s) is s seconds later.
var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// unchangedOpts compares a call with the Clone taken before an update. EquateEmpty is
// there because Clone turns an empty, non-nil Rung/Transfers into nil (see
// TestCloneKeepsEmptySlices); the comparison here is about what Apply did, not Clone.
var unchangedOpts = []cmp.Option{cmpopts.EquateEmpty()}

// Update constructors.

func ringU(s float64, exts ...string) Update {
	return Update{
		PBX: "pbx1", PBXCallID: "1700000000.1", Time: at(s), Kind: KindRing,
		Direction: DirectionIn, Customer: "84951234567", CustomerE164: "+74951234567",
		DID: "84950000000", Extensions: exts,
	}
}
func answerU(s float64, ext string) Update {
	return Update{Time: at(s), Kind: KindAnswer, Extension: ext}
}
func holdU(s float64) Update   { return Update{Time: at(s), Kind: KindHold} }
func resumeU(s float64) Update { return Update{Time: at(s), Kind: KindResume} }
func detachU(s float64) Update { return Update{Time: at(s), Kind: KindDetach} }
func endU(s float64, d Disposition, cause string) Update {
	return Update{Time: at(s), Kind: KindEnd, Disposition: d, Cause: cause}
}
func xferU(s float64, kind TransferKind, from, to string, completed bool) Update {
	return Update{Time: at(s), Kind: KindTransfer, Transfer: Transfer{Kind: kind, From: from, To: to, Completed: completed}}
}
func dtmfU(s float64, digits string) Update {
	return Update{Time: at(s), Kind: KindDTMF, Digits: digits}
}
func recU(s float64, link string) Update {
	return Update{Time: at(s), Kind: KindRecording, Recording: link}
}
func finalU(s float64, link string) Update {
	return Update{Time: at(s), Kind: KindFinal, Recording: link}
}

// step is one update and what Apply must answer to it.
type step struct {
	u     Update
	err   error       // nil: must succeed; else errors.Is(err, this) and the call unchanged
	notes []EventType // the note types, in order (nil: none)
}

func ok(u Update, notes ...EventType) step { return step{u: u, notes: notes} }
func fails(u Update, err error) step       { return step{u: u, err: err} }

// apply runs steps on c, checking each step's error, notes, and that a refused update
// left c exactly as it was.
func apply(t *testing.T, c *Call, steps []step) [][]Note {
	t.Helper()
	all := make([][]Note, 0, len(steps))
	for i, st := range steps {
		u := st.u
		before := c.Clone()
		notes, err := Apply(c, &u)
		all = append(all, notes)
		if st.err != nil {
			if !errors.Is(err, st.err) {
				t.Fatalf("step %d (%s at %v): err = %v, want %v", i, u.Kind, u.Time.Sub(t0), err, st.err)
			}
			if len(notes) != 0 {
				t.Errorf("step %d (%s): refused update produced notes %v", i, u.Kind, notes)
			}
			if d := cmp.Diff(before, c, unchangedOpts...); d != "" {
				t.Errorf("step %d (%s): refused update changed the call (-before +after):\n%s", i, u.Kind, d)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d (%s at %v): unexpected err %v", i, u.Kind, u.Time.Sub(t0), err)
		}
		if d := cmp.Diff(st.notes, noteTypes(notes), cmpopts.EquateEmpty()); d != "" {
			t.Errorf("step %d (%s): notes (-want +got):\n%s", i, u.Kind, d)
		}
	}
	return all
}

func noteTypes(notes []Note) []EventType {
	var out []EventType
	for _, n := range notes {
		out = append(out, n.Type)
	}
	return out
}

func tp(s float64) *time.Time { t := at(s); return &t }

// durations checks the four duration fields.
func durations(t *testing.T, c *Call, ring, talk, hold, connected float64) {
	t.Helper()
	got := [4]float64{c.RingS, c.TalkS, c.HoldS, c.ConnectedS}
	want := [4]float64{ring, talk, hold, connected}
	if got != want {
		t.Errorf("ring/talk/hold/connected = %v, want %v", got, want)
	}
}

func TestApplyTransitions(t *testing.T) {
	const (
		ringing     = EventRinging
		answered    = EventAnswered
		held        = EventHeld
		resumed     = EventResumed
		transferred = EventTransferred
		ended       = EventEnded
		dtmf        = EventDTMF
		recorded    = EventRecorded
	)
	tests := []struct {
		name  string
		steps []step
		check func(t *testing.T, c *Call, notes [][]Note)
	}{
		{
			name:  "ring starts a ringing call",
			steps: []step{ok(ringU(0, "101"), ringing)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				want := &Call{
					Direction: DirectionIn, State: StateRinging, Customer: "84951234567",
					CustomerE164: "+74951234567", DID: "84950000000", Rung: []string{"101"},
					StartedAt: at(0), LastSeen: at(0), Transfers: []Transfer{},
				}
				if d := cmp.Diff(want, c); d != "" {
					t.Errorf("call (-want +got):\n%s", d)
				}
			},
		},
		{
			name:  "ring without extensions has empty, non-nil rung and transfers",
			steps: []step{ok(ringU(0), ringing)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.Rung == nil || len(c.Rung) != 0 || c.Transfers == nil || len(c.Transfers) != 0 {
					t.Errorf("rung = %#v, transfers = %#v; want empty non-nil (JSON [])", c.Rung, c.Transfers)
				}
			},
		},
		{
			name: "ring with an invalid direction",
			steps: []step{fails(func() Update { u := ringU(0, "101"); u.Direction = "sideways"; return u }(), ErrInvalid),
				fails(func() Update { u := ringU(0, "101"); u.Direction = ""; return u }(), ErrInvalid)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.State != "" {
					t.Errorf("state = %q, want the call not started", c.State)
				}
			},
		},
		{
			name:  "answer: ringing to active",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(4, "101"), answered)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.State != StateActive || c.AnsweredBy != "101" || c.Agent != "101" {
					t.Errorf("state %q answered_by %q agent %q, want active/101/101", c.State, c.AnsweredBy, c.Agent)
				}
				if d := cmp.Diff(tp(4), c.AnsweredAt); d != "" {
					t.Errorf("answered_at (-want +got):\n%s", d)
				}
				if c.Disposition != "" {
					t.Errorf("disposition %q on a live call", c.Disposition)
				}
				durations(t, c, 4, 0, 0, 0)
			},
		},
		{
			name: "active to held to active",
			steps: []step{
				ok(ringU(0, "101"), ringing), ok(answerU(2, "101"), answered),
				ok(holdU(5), held), ok(resumeU(9), resumed), ok(endU(12, "", "normal"), ended),
			},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.State != StateEnded || c.Disposition != DispositionAnswered || c.Cause != "normal" {
					t.Errorf("state %q disposition %q cause %q", c.State, c.Disposition, c.Cause)
				}
				// talk 2→5 and 9→12, hold 5→9, connected 2→12.
				durations(t, c, 2, 6, 4, 10)
			},
		},
		{
			name: "held state and running durations while held",
			steps: []step{
				ok(ringU(0, "101"), ringing), ok(answerU(2, "101"), answered), ok(holdU(5), held),
				ok(dtmfU(8, "1"), dtmf), // any update refreshes the running durations
			},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.State != StateHeld || c.Acc.HoldSince == nil || c.Acc.TalkSince != nil {
					t.Errorf("state %q hold_since %v talk_since %v", c.State, c.Acc.HoldSince, c.Acc.TalkSince)
				}
				durations(t, c, 2, 3, 3, 6)
			},
		},
		{
			name:  "hold while ringing",
			steps: []step{ok(ringU(0, "101"), ringing), fails(holdU(1), ErrState)},
		},
		{
			name: "resume while active",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered),
				fails(resumeU(2), ErrState)},
		},
		{
			name:  "resume while ringing",
			steps: []step{ok(ringU(0, "101"), ringing), fails(resumeU(1), ErrState)},
		},
		{
			name: "duplicate hold",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered),
				ok(holdU(2), held), fails(holdU(3), ErrDuplicate)},
		},
		{
			name: "duplicate answer by the same extension",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered),
				fails(answerU(2, "101"), ErrDuplicate)},
		},
		{
			name: "answer while held resumes the call",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered),
				ok(holdU(2), held), ok(answerU(4, "101"), answered), ok(endU(6, "", ""), ended)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				durations(t, c, 1, 3, 2, 5)
			},
		},
		{
			name: "answer after end",
			steps: []step{ok(ringU(0, "101"), ringing), ok(endU(3, DispositionCancelled, "caller hung up"), ended),
				fails(answerU(4, "101"), ErrEnded)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.AnsweredAt != nil || c.AnsweredBy != "" || c.Disposition != DispositionCancelled {
					t.Errorf("late answer leaked into the call: %+v", c)
				}
			},
		},
		{
			name: "every live update after end",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered), ok(endU(3, "", ""), ended),
				fails(ringU(4, "102"), ErrEnded), fails(answerU(4, "102"), ErrEnded), fails(holdU(4), ErrEnded),
				fails(resumeU(4), ErrEnded), fails(detachU(4), ErrEnded),
				fails(xferU(4, TransferBlind, "101", "107", false), ErrEnded), fails(dtmfU(4, "5"), ErrEnded)},
		},
		{
			name: "second end",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered), ok(endU(3, "", "normal"), ended),
				fails(endU(5, DispositionBusy, "again"), ErrEnded)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.Disposition != DispositionAnswered || c.Cause != "normal" || !c.EndedAt.Equal(at(3)) {
					t.Errorf("second end changed the call: disposition %q cause %q ended %v", c.Disposition, c.Cause, c.EndedAt)
				}
			},
		},
		{
			name: "update before ring",
			steps: []step{
				fails(answerU(1, "101"), ErrNoCall), fails(holdU(1), ErrNoCall), fails(resumeU(1), ErrNoCall),
				fails(detachU(1), ErrNoCall), fails(xferU(1, TransferBlind, "101", "107", false), ErrNoCall),
				fails(dtmfU(1, "1"), ErrNoCall), fails(recU(1, "r"), ErrNoCall), fails(endU(1, "", ""), ErrNoCall),
				fails(finalU(1, ""), ErrNoCall),
			},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if d := cmp.Diff(&Call{}, c); d != "" {
					t.Errorf("call changed (-want +got):\n%s", d)
				}
			},
		},
		{
			name: "zero time",
			steps: []step{
				fails(Update{Kind: KindRing, Direction: DirectionIn, Extensions: []string{"101"}}, ErrInvalid),
				ok(ringU(0, "101"), ringing),
				fails(Update{Kind: KindAnswer, Extension: "101"}, ErrInvalid),
				fails(Update{Kind: KindEnd}, ErrInvalid),
				ok(endU(1, "", ""), ended),
				fails(Update{Kind: KindFinal}, ErrInvalid),
			},
		},
		{
			name: "unknown kind on a live call",
			steps: []step{ok(ringU(0, "101"), ringing),
				fails(Update{Time: at(1), Kind: 0}, ErrInvalid),
				fails(Update{Time: at(1), Kind: KindFinal + 1}, ErrInvalid),
				fails(Update{Time: at(1), Kind: 255}, ErrInvalid),
				ok(answerU(2, "101"), answered),
				fails(Update{Time: at(3), Kind: 42}, ErrInvalid)},
		},
		{
			name: "ring group answered by 102",
			steps: []step{ok(ringU(0, "101", "102", "103"), ringing), ok(answerU(3, "102"), answered),
				ok(endU(10, "", ""), ended)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.AnsweredBy != "102" {
					t.Errorf("answered_by %q, want 102", c.AnsweredBy)
				}
				if d := cmp.Diff([]string{"101", "102", "103"}, c.Rung); d != "" {
					t.Errorf("rung (-want +got):\n%s", d)
				}
				if c.Disposition != DispositionAnswered {
					t.Errorf("disposition %q", c.Disposition)
				}
				durations(t, c, 3, 7, 0, 7)
			},
		},
		{
			name: "ring offers to more extensions; no new extension is a duplicate",
			steps: []step{ok(ringU(0, "101"), ringing), ok(ringU(1, "101", "102", ""), ringing),
				fails(ringU(2, "102", "101"), ErrDuplicate), fails(ringU(2), ErrDuplicate)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if d := cmp.Diff([]string{"101", "102"}, c.Rung); d != "" {
					t.Errorf("rung (-want +got):\n%s", d)
				}
				if !c.LastSeen.Equal(at(1)) {
					t.Errorf("last_seen %v, want +1s", c.LastSeen.Sub(t0))
				}
			},
		},
		{
			name: "ring never overwrites what was presented first",
			steps: []step{ok(ringU(0, "101"), ringing),
				ok(func() Update {
					u := ringU(1, "102")
					u.Customer, u.CustomerE164, u.DID, u.Direction = "999", "+999", "111", DirectionOut
					return u
				}(), ringing)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.Customer != "84951234567" || c.CustomerE164 != "+74951234567" || c.DID != "84950000000" || c.Direction != DirectionIn {
					t.Errorf("presented data overwritten: customer %q/%q did %q direction %q", c.Customer, c.CustomerE164, c.DID, c.Direction)
				}
			},
		},
		{
			name: "rung is bounded",
			steps: []step{ok(ringU(0, manyExts("a", 50)...), ringing), ok(ringU(1, manyExts("b", 50)...), ringing),
				fails(ringU(2, "c"), ErrDuplicate)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if len(c.Rung) != maxRung {
					t.Errorf("len(rung) = %d, want %d", len(c.Rung), maxRung)
				}
			},
		},
		{
			name: "blind transfer completed by the target's answer",
			steps: []step{
				ok(ringU(0, "101"), ringing),
				ok(answerU(2, "101"), answered),
				ok(xferU(5, TransferBlind, "101", "107", false), transferred),
				ok(ringU(6, "107"), ringing),
				ok(answerU(7, "107"), answered, transferred),
				ok(endU(15, "", "normal"), ended),
			},
			check: func(t *testing.T, c *Call, notes [][]Note) {
				// Ringback 5→7 is not talk: 2→5 + 7→15.
				durations(t, c, 2, 11, 0, 13)
				if c.AnsweredBy != "101" || c.Agent != "" || c.Disposition != DispositionAnswered {
					t.Errorf("answered_by %q agent %q disposition %q", c.AnsweredBy, c.Agent, c.Disposition)
				}
				want := []Transfer{{Kind: TransferBlind, From: "101", To: "107", Completed: true, At: at(5)}}
				if d := cmp.Diff(want, c.Transfers); d != "" {
					t.Errorf("transfers (-want +got):\n%s", d)
				}
				if d := cmp.Diff([]string{"101", "107"}, c.Rung); d != "" {
					t.Errorf("rung (-want +got):\n%s", d)
				}
				if n := notes[2][0].Transfer; n == nil || n.Completed || n.To != "107" || n.From != "101" {
					t.Errorf("transfer note at t=5: %+v, want pending 101→107", n)
				}
				if n := notes[4][1].Transfer; n == nil || !n.Completed || n.To != "107" {
					t.Errorf("transfer note at t=7: %+v, want completed →107", n)
				}
			},
		},
		{
			name: "blind transfer: talk stops during ringback",
			steps: []step{
				ok(ringU(0, "101"), ringing), ok(answerU(2, "101"), answered),
				ok(xferU(5, TransferBlind, "", "107", false), transferred),
				ok(dtmfU(6, "1"), dtmf),
			},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.Acc.TalkSince != nil || c.Agent != "" || c.State != StateActive {
					t.Errorf("talk_since %v agent %q state %q", c.Acc.TalkSince, c.Agent, c.State)
				}
				durations(t, c, 2, 3, 0, 4)
				if c.Transfers[0].From != "101" {
					t.Errorf("transfer from %q, want the agent 101", c.Transfers[0].From)
				}
			},
		},
		{
			name: "attended transfer from hold",
			steps: []step{
				ok(ringU(0, "101"), ringing),
				ok(answerU(2, "101"), answered),
				ok(holdU(5), held),
				ok(ringU(6, "107"), ringing), // consultation
				ok(xferU(10, TransferAttended, "101", "107", true), transferred),
				ok(endU(20, "", "normal"), ended),
			},
			check: func(t *testing.T, c *Call, notes [][]Note) {
				// talk 2→5 + 10→20, hold 5→10, connected 2→20.
				durations(t, c, 2, 13, 5, 18)
				if c.AnsweredBy != "101" || c.Agent != "" {
					t.Errorf("answered_by %q agent %q", c.AnsweredBy, c.Agent)
				}
				want := []Transfer{{Kind: TransferAttended, From: "101", To: "107", Completed: true, At: at(10)}}
				if d := cmp.Diff(want, c.Transfers); d != "" {
					t.Errorf("transfers (-want +got):\n%s", d)
				}
				if d := cmp.Diff([]string{"101", "107"}, c.Rung); d != "" {
					t.Errorf("rung (-want +got):\n%s", d)
				}
				if n := notes[4][0].Transfer; n == nil || !n.Completed || n.Kind != TransferAttended {
					t.Errorf("transfer note: %+v", n)
				}
			},
		},
		{
			name: "attended transfer: hold closed and talk resumes with the target",
			steps: []step{
				ok(ringU(0, "101"), ringing), ok(answerU(2, "101"), answered), ok(holdU(5), held),
				ok(xferU(10, TransferAttended, "101", "107", true), transferred),
			},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.State != StateActive || c.Agent != "107" || c.Acc.HoldSince != nil || c.Acc.TalkSince == nil {
					t.Errorf("state %q agent %q hold_since %v talk_since %v", c.State, c.Agent, c.Acc.HoldSince, c.Acc.TalkSince)
				}
				durations(t, c, 2, 3, 5, 8)
			},
		},
		{
			name: "pending transfer completed by a transfer update",
			steps: []step{
				ok(ringU(0, "101"), ringing), ok(answerU(2, "101"), answered),
				ok(xferU(5, TransferBlind, "101", "107", false), transferred),
				fails(xferU(6, TransferBlind, "101", "107", false), ErrDuplicate),
				ok(xferU(8, TransferBlind, "101", "107", true), transferred),
				ok(endU(10, "", ""), ended),
			},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if len(c.Transfers) != 1 || !c.Transfers[0].Completed {
					t.Errorf("transfers %+v, want one completed", c.Transfers)
				}
				durations(t, c, 2, 5, 0, 8)
			},
		},
		{
			name: "impossible transfers",
			steps: []step{
				ok(ringU(0, "101"), ringing),
				fails(xferU(1, TransferBlind, "101", "107", false), ErrState),
				ok(answerU(2, "101"), answered),
				fails(xferU(3, "", "101", "107", false), ErrInvalid),
				fails(xferU(3, "warm", "101", "107", false), ErrInvalid),
				fails(xferU(3, TransferBlind, "101", "", false), ErrInvalid),
			},
		},
		{
			name: "transfers are bounded",
			steps: func() []step {
				s := []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered)}
				for i := range maxTransfers {
					s = append(s, ok(xferU(2, TransferAttended, "", "x"+strings.Repeat("1", i+1), true), transferred))
				}
				return append(s, fails(xferU(3, TransferAttended, "", "y", true), ErrState))
			}(),
		},
		{
			name: "conference: answered by the room",
			steps: []step{ok(ringU(0), ringing), ok(answerU(1, ""), answered),
				fails(answerU(2, ""), ErrDuplicate), ok(endU(9, "", ""), ended)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.AnsweredAt == nil || c.AnsweredBy != "" || c.Disposition != DispositionAnswered {
					t.Errorf("answered_at %v answered_by %q disposition %q", c.AnsweredAt, c.AnsweredBy, c.Disposition)
				}
				if len(c.Rung) != 0 {
					t.Errorf("rung %v, want []", c.Rung)
				}
				durations(t, c, 1, 8, 0, 8)
			},
		},
		{
			name: "conference: hold and resume resume talk without an agent",
			steps: []step{ok(ringU(0), ringing), ok(answerU(1, ""), answered), ok(holdU(2), held),
				ok(resumeU(4), resumed), ok(endU(9, "", ""), ended)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				durations(t, c, 1, 6, 2, 8)
			},
		},
		{
			name: "detach stops talk; resume does not restart it without an agent",
			steps: []step{
				ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered),
				ok(detachU(3)), // no event: the customer waits (queue, park)
				fails(detachU(4), ErrDuplicate),
				ok(holdU(5), held), ok(resumeU(6), resumed),
				ok(answerU(8, "102"), answered),
				ok(endU(10, "", ""), ended),
			},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				// talk 1→3 and 8→10; hold 5→6.
				durations(t, c, 1, 4, 1, 9)
				if c.AnsweredBy != "101" {
					t.Errorf("answered_by %q, want the first agent 101", c.AnsweredBy)
				}
				if d := cmp.Diff([]string{"101", "102"}, c.Rung); d != "" {
					t.Errorf("rung (-want +got):\n%s", d)
				}
			},
		},
		{
			name:  "detach while ringing",
			steps: []step{ok(ringU(0, "101"), ringing), fails(detachU(1), ErrDuplicate)},
		},
		{
			name:  "busy",
			steps: []step{ok(ringU(0, "101"), ringing), ok(endU(1, DispositionBusy, "17"), ended)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				wantEnded(t, c, DispositionBusy, "17", 1)
				durations(t, c, 1, 0, 0, 0)
			},
		},
		{
			name:  "missed",
			steps: []step{ok(ringU(0, "101"), ringing), ok(endU(30, DispositionNoAnswer, "19"), ended)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				wantEnded(t, c, DispositionNoAnswer, "19", 30)
				durations(t, c, 30, 0, 0, 0)
			},
		},
		{
			name:  "cancelled",
			steps: []step{ok(ringU(0, "101"), ringing), ok(endU(4, DispositionCancelled, "16"), ended)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				wantEnded(t, c, DispositionCancelled, "16", 4)
				durations(t, c, 4, 0, 0, 0)
			},
		},
		{
			name: "answered call ended with a busy hint is answered",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(2, "101"), answered),
				ok(endU(5, DispositionBusy, "17"), ended)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				wantEnded(t, c, DispositionAnswered, "17", 5)
				durations(t, c, 2, 3, 0, 3)
			},
		},
		{
			name:  "answered disposition on a never-answered call is failed",
			steps: []step{ok(ringU(0, "101"), ringing), ok(endU(2, DispositionAnswered, ""), ended)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				wantEnded(t, c, DispositionFailed, "", 2)
				if c.AnsweredAt != nil {
					t.Errorf("answered_at %v", c.AnsweredAt)
				}
			},
		},
		{
			name:  "no or unknown disposition on a never-answered call is failed",
			steps: []step{ok(ringU(0, "101"), ringing), ok(endU(2, "weird", "x"), ended)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				wantEnded(t, c, DispositionFailed, "x", 2)
			},
		},
		{
			name: "end while held closes hold, clears the agent",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered), ok(holdU(3), held),
				ok(endU(7, "", ""), ended)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				wantEnded(t, c, DispositionAnswered, "", 7)
				if c.Acc.HoldSince != nil || c.Acc.TalkSince != nil || c.Agent != "" {
					t.Errorf("open intervals after end: hold %v talk %v agent %q", c.Acc.HoldSince, c.Acc.TalkSince, c.Agent)
				}
				durations(t, c, 1, 2, 4, 6)
			},
		},
		{
			name: "dtmf accumulates",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered),
				ok(dtmfU(2, "12"), dtmf), ok(dtmfU(3, "3#"), dtmf), fails(dtmfU(4, ""), ErrInvalid)},
			check: func(t *testing.T, c *Call, notes [][]Note) {
				if c.DTMF != "123#" {
					t.Errorf("dtmf %q, want 123#", c.DTMF)
				}
				if notes[3][0].Digits != "3#" {
					t.Errorf("note digits %q, want 3#", notes[3][0].Digits)
				}
			},
		},
		{
			name: "dtmf is bounded to the last 64 digits",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered),
				ok(dtmfU(2, strings.Repeat("1", 60)), dtmf), ok(dtmfU(3, "23456789"), dtmf),
				ok(dtmfU(4, strings.Repeat("0", 100)+"*"), dtmf)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				want := strings.Repeat("0", 63) + "*"
				if c.DTMF != want {
					t.Errorf("dtmf %q (len %d), want %q", c.DTMF, len(c.DTMF), want)
				}
			},
		},
		{
			name: "dtmf bound keeps the newest digits",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered),
				ok(dtmfU(2, strings.Repeat("1", 60)), dtmf), ok(dtmfU(3, "23456789"), dtmf)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				want := strings.Repeat("1", 56) + "23456789"
				if c.DTMF != want {
					t.Errorf("dtmf %q, want %q", c.DTMF, want)
				}
			},
		},
		{
			name: "final only after end, once",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered),
				fails(finalU(2, "rec"), ErrState),
				ok(endU(3, "", ""), ended),
				ok(finalU(4, "https://pbx/rec.wav"), recorded),
				fails(finalU(5, "other"), ErrDuplicate)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if !c.Acc.Final || c.Recording != "https://pbx/rec.wav" {
					t.Errorf("final %v recording %q", c.Acc.Final, c.Recording)
				}
			},
		},
		{
			name: "final without a link keeps the recording",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered),
				ok(recU(2, "https://pbx/a.wav")), ok(endU(3, "", ""), ended), ok(finalU(4, ""), recorded)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.Recording != "https://pbx/a.wav" {
					t.Errorf("recording %q", c.Recording)
				}
			},
		},
		{
			name: "recording on a live call sets the link without notes",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered),
				ok(recU(2, "https://pbx/a.wav")), fails(recU(3, "https://pbx/a.wav"), ErrDuplicate),
				ok(recU(4, "https://pbx/b.wav"))},
			check: func(t *testing.T, c *Call, notes [][]Note) {
				if c.Recording != "https://pbx/b.wav" || c.State != StateActive {
					t.Errorf("recording %q state %q", c.Recording, c.State)
				}
				if notes[2] != nil {
					t.Errorf("notes %v, want none", notes[2])
				}
			},
		},
		{
			name: "recording after end fills a missing link once",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(1, "101"), answered), ok(endU(3, "", ""), ended),
				ok(recU(4, "https://pbx/a.wav")), fails(recU(5, "https://pbx/b.wav"), ErrEnded)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if c.Recording != "https://pbx/a.wav" {
					t.Errorf("recording %q", c.Recording)
				}
			},
		},
		{
			name:  "ring_s runs until now while ringing",
			steps: []step{ok(ringU(0, "101"), ringing), ok(ringU(7.5, "102"), ringing)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				durations(t, c, 7.5, 0, 0, 0)
			},
		},
		{
			name: "ring_s stops at the first answer",
			steps: []step{ok(ringU(0, "101"), ringing), ok(answerU(3.2, "101"), answered),
				ok(xferU(5, TransferBlind, "101", "102", false), transferred), ok(answerU(9, "102"), answered, transferred),
				ok(endU(20, "", ""), ended)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				durations(t, c, 3.2, 12.8, 0, 16.8)
			},
		},
		{
			name:  "ring_s stops at the end when never answered",
			steps: []step{ok(ringU(0, "101"), ringing), ok(endU(12.34, DispositionNoAnswer, ""), ended)},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				durations(t, c, 12.3, 0, 0, 0)
			},
		},
		{
			name: "out of order: an earlier update counts at last seen",
			steps: []step{
				ok(ringU(10, "101"), ringing),
				ok(ringU(12, "102"), ringing),
				ok(answerU(11, "101"), answered), // before last seen (12): counts at 12
				ok(holdU(5), held),               // counts at 12
				ok(resumeU(20), resumed),
				ok(endU(15, "", ""), ended), // counts at 20
			},
			check: func(t *testing.T, c *Call, _ [][]Note) {
				if !c.AnsweredAt.Equal(at(12)) || !c.EndedAt.Equal(at(20)) || !c.LastSeen.Equal(at(20)) {
					t.Errorf("answered %v ended %v last seen %v, want +12s/+20s/+20s",
						c.AnsweredAt.Sub(t0), c.EndedAt.Sub(t0), c.LastSeen.Sub(t0))
				}
				durations(t, c, 2, 0, 8, 8)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Call{}
			notes := apply(t, c, tt.steps)
			if tt.check != nil {
				tt.check(t, c, notes)
			}
		})
	}
}

func manyExts(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strings.Repeat("0", i)
	}
	return out
}

func wantEnded(t *testing.T, c *Call, d Disposition, cause string, s float64) {
	t.Helper()
	if c.State != StateEnded || c.Disposition != d || c.Cause != cause {
		t.Errorf("state %q disposition %q cause %q, want ended/%q/%q", c.State, c.Disposition, c.Cause, d, cause)
	}
	if c.EndedAt == nil || !c.EndedAt.Equal(at(s)) || !c.LastSeen.Equal(at(s)) {
		t.Errorf("ended_at %v last_seen %v, want +%vs", c.EndedAt, c.LastSeen, s)
	}
	if c.Agent != "" {
		t.Errorf("agent %q after end", c.Agent)
	}
}

func TestLost(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		want  Disposition
		check func(t *testing.T, c *Call)
	}{
		{
			name:  "ringing call is a missed call",
			steps: []step{ok(ringU(0, "101"), EventRinging), ok(ringU(6, "102"), EventRinging)},
			want:  DispositionNoAnswer,
			check: func(t *testing.T, c *Call) { durations(t, c, 6, 0, 0, 0) },
		},
		{
			name:  "answered call stays answered",
			steps: []step{ok(ringU(0, "101"), EventRinging), ok(answerU(2, "101"), EventAnswered), ok(dtmfU(9, "1"), EventDTMF)},
			want:  DispositionAnswered,
			check: func(t *testing.T, c *Call) { durations(t, c, 2, 7, 0, 7) },
		},
		{
			name: "held call closes the hold at last seen",
			steps: []step{ok(ringU(0, "101"), EventRinging), ok(answerU(2, "101"), EventAnswered),
				ok(holdU(4), EventHeld), ok(dtmfU(10, "1"), EventDTMF)},
			want:  DispositionAnswered,
			check: func(t *testing.T, c *Call) { durations(t, c, 2, 2, 6, 8) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Call{PBX: "pbx1", PBXCallID: "1700000000.1"}
			apply(t, c, tt.steps)
			last := c.LastSeen
			u := Lost(c)
			if u.Kind != KindEnd || u.Cause != CauseLost || !u.Time.Equal(last) || u.PBX != "pbx1" || u.PBXCallID != "1700000000.1" {
				t.Fatalf("Lost = %+v", u)
			}
			notes, err := Apply(c, &u)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff([]EventType{EventEnded}, noteTypes(notes)); d != "" {
				t.Errorf("notes (-want +got):\n%s", d)
			}
			if c.State != StateEnded || c.Disposition != tt.want || c.Cause != CauseLost {
				t.Errorf("state %q disposition %q cause %q, want ended/%q/lost", c.State, c.Disposition, c.Cause, tt.want)
			}
			if c.EndedAt == nil || !c.EndedAt.Equal(last) || !c.LastSeen.Equal(last) {
				t.Errorf("ended_at %v, want last seen %v", c.EndedAt, last)
			}
			tt.check(t, c)
			// A lost call that is already ended stays as it is.
			before := c.Clone()
			u = Lost(c)
			if _, err := Apply(c, &u); !errors.Is(err, ErrEnded) {
				t.Errorf("second Lost: err %v, want ErrEnded", err)
			}
			if d := cmp.Diff(before, c, unchangedOpts...); d != "" {
				t.Errorf("second Lost changed the call:\n%s", d)
			}
		})
	}
}

// A connector that learns the caller's number or the DID after the first event fills
// them in (machine.go, ring: "A DID or customer learnt late … fills in").
func TestRingLearnsLateCallerAndDID(t *testing.T) {
	first := func() Update {
		u := ringU(0, "101")
		u.Customer, u.CustomerE164, u.DID = "", "", ""
		return u
	}
	t.Run("customer with a new extension", func(t *testing.T) {
		c := &Call{}
		u := ringU(1, "102")
		apply(t, c, []step{ok(first(), EventRinging), ok(u, EventRinging)})
		if c.Customer != u.Customer || c.CustomerE164 != u.CustomerE164 || c.DID != u.DID {
			t.Errorf("customer %q e164 %q did %q, want %q %q %q (learnt late)",
				c.Customer, c.CustomerE164, c.DID, u.Customer, u.CustomerE164, u.DID)
		}
	})
	t.Run("customer and DID without new extensions", func(t *testing.T) {
		c := &Call{}
		u := ringU(1, "101")
		if _, err := Apply(c, ptr(first())); err != nil {
			t.Fatal(err)
		}
		if _, err := Apply(c, &u); err != nil {
			t.Errorf("ring bringing a caller and DID the call lacked: err %v, want it applied (not a duplicate)", err)
		}
		if c.Customer != u.Customer || c.DID != u.DID {
			t.Errorf("customer %q did %q, want %q %q (learnt late)", c.Customer, c.DID, u.Customer, u.DID)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// Durations are never negative, whatever the PBX's timestamps.
func TestDurationsFarApartTimestamps(t *testing.T) {
	c := &Call{}
	steps := []Update{
		ringU(0, "101"),
		{Time: t0.AddDate(300, 0, 0), Kind: KindAnswer, Extension: "101"},
		{Time: t0.AddDate(600, 0, 0), Kind: KindEnd},
	}
	for i := range steps {
		if _, err := Apply(c, &steps[i]); err != nil {
			t.Fatal(err)
		}
		if c.RingS < 0 || c.TalkS < 0 || c.HoldS < 0 || c.ConnectedS < 0 {
			t.Errorf("after %s: ring %v talk %v hold %v connected %v; want all >= 0",
				steps[i].Kind, c.RingS, c.TalkS, c.HoldS, c.ConnectedS)
		}
	}
}

func TestCloneIsDeep(t *testing.T) {
	c := &Call{}
	apply(t, c, []step{
		ok(ringU(0, "101", "102"), EventRinging), ok(answerU(1, "101"), EventAnswered), ok(holdU(2), EventHeld),
		ok(xferU(3, TransferAttended, "101", "107", false), EventTransferred),
	})
	c.Allowed = c.AllowedActions()
	cp := c.Clone()
	if d := cmp.Diff(c, cp); d != "" {
		t.Fatalf("clone differs (-orig +clone):\n%s", d)
	}
	snap := cp.Clone()
	c.Rung[0] = "x"
	c.Transfers[0].To = "x"
	c.Allowed[0] = "x"
	*c.AnsweredAt = at(100)
	*c.Acc.HoldSince = at(100)
	apply(t, c, []step{ok(resumeU(4), EventResumed), ok(endU(5, "", ""), EventEnded)})
	if d := cmp.Diff(snap, cp); d != "" {
		t.Errorf("clone aliases the original (-before +after):\n%s", d)
	}
}

// A snapshot handed to readers must serialise like the call: "rung": [] and
// "transfers": [] (a conference call has rung: []), not null.
func TestCloneKeepsEmptySlices(t *testing.T) {
	c := &Call{}
	apply(t, c, []step{ok(ringU(0), EventRinging)})
	orig, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	clone, err := json.Marshal(c.Clone())
	if err != nil {
		t.Fatal(err)
	}
	if string(orig) != string(clone) {
		t.Errorf("Clone changes the JSON:\n call: %s\nclone: %s", orig, clone)
	}
	if d := cmp.Diff(c, c.Clone()); d != "" {
		t.Errorf("Clone is not equal to the call (-call +clone):\n%s", d)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		0: "unknown", KindRing: "ring", KindAnswer: "answer", KindDetach: "detach", KindHold: "hold",
		KindResume: "resume", KindTransfer: "transfer", KindDTMF: "dtmf", KindRecording: "recording",
		KindEnd: "end", KindFinal: "final", KindConnect: "connect", KindConnect + 1: "unknown", 255: "unknown",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func TestAllowedActions(t *testing.T) {
	c := &Call{}
	if got := c.AllowedActions(); got != nil {
		t.Errorf("new call: %v", got)
	}
	steps := []struct {
		u    Update
		want []string
	}{
		{ringU(0, "101"), []string{ActionAnswer, ActionHangup}},
		{answerU(1, "101"), []string{ActionHangup, ActionHold, ActionTransfer, ActionConference, ActionDTMF}},
		{holdU(2), []string{ActionHangup, ActionResume, ActionTransfer, ActionConference}},
		{endU(3, "", ""), nil},
	}
	for _, st := range steps {
		if _, err := Apply(c, &st.u); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(st.want, c.AllowedActions()); d != "" {
			t.Errorf("%s: allowed (-want +got):\n%s", c.State, d)
		}
	}
}

// TestClickToCall: the agent's phone rings first and answers (connect), then the
// customer is dialled. Connected time runs from the agent's answer; the call is
// answered only if the customer answers.
func TestClickToCall(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ring := func() *Call {
		c := &Call{}
		if _, err := Apply(c, &Update{Time: at(0), Kind: KindRing, Direction: DirectionOut, Customer: "0612345678", Extensions: []string{"101"}}); err != nil {
			t.Fatal(err)
		}
		if notes, err := Apply(c, &Update{Time: at(2), Kind: KindConnect, Extension: "101"}); err != nil || len(notes) != 0 {
			t.Fatalf("connect: %v %v", notes, err)
		}
		if c.State != StateRinging || c.AnsweredBy != "101" || c.AnsweredAt == nil {
			t.Fatalf("after connect: %+v", c)
		}
		return c
	}
	t.Run("customer answers", func(t *testing.T) {
		c := ring()
		if _, err := Apply(c, &Update{Time: at(5), Kind: KindAnswer, Extension: "101"}); err != nil {
			t.Fatal(err)
		}
		if _, err := Apply(c, &Update{Time: at(11.5), Kind: KindEnd}); err != nil {
			t.Fatal(err)
		}
		if c.Disposition != DispositionAnswered || c.TalkS != 6.5 || c.ConnectedS != 9.5 || c.RingS != 2 || c.AnsweredBy != "101" {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("customer never answers", func(t *testing.T) {
		c := ring()
		if _, err := Apply(c, &Update{Time: at(32), Kind: KindEnd, Disposition: DispositionNoAnswer, Cause: "NO ANSWER"}); err != nil {
			t.Fatal(err)
		}
		if c.Disposition != DispositionNoAnswer || c.TalkS != 0 || c.ConnectedS != 30 {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("customer busy", func(t *testing.T) {
		c := ring()
		Apply(c, &Update{Time: at(3), Kind: KindEnd, Disposition: DispositionBusy})
		if c.Disposition != DispositionBusy {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("lost before the customer answered", func(t *testing.T) {
		c := ring()
		u := Lost(c)
		Apply(c, &u)
		if c.Disposition != DispositionNoAnswer || c.Cause != CauseLost {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("refused", func(t *testing.T) {
		c := ring()
		if _, err := Apply(c, &Update{Time: at(3), Kind: KindConnect, Extension: "101"}); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("second connect: %v", err)
		}
		if _, err := Apply(c, &Update{Time: at(3), Kind: KindConnect}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("connect without extension: %v", err)
		}
		Apply(c, &Update{Time: at(4), Kind: KindAnswer, Extension: "101"})
		if _, err := Apply(c, &Update{Time: at(5), Kind: KindConnect, Extension: "102"}); !errors.Is(err, ErrState) {
			t.Fatalf("connect on an active call: %v", err)
		}
	})
}
