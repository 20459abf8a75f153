package call

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The fuzz input is a sequence of 4-byte chunks, each one update:
//
//	b0: kind = b0 % 13 (0 is an unknown kind, 12 is Lost(c)); b0 >= 240: zero time
//	b1: time step = int8(b1) × 250ms; 127: +100 years, -128: -100 years
//	b2: the extension (b2 % 5), ring extensions (bits 0–4; bits 6+7: 70 more),
//	    transfer target (b2 % 5) and source ((b2>>3) % 5), digits count, recording link
//	b3: direction (bits 0–1), transfer kind (bits 0–1), completed (bit 2),
//	    disposition (bits 3–5), cause lost (bit 6) or "normal" (bit 7),
//	    no customer (bit 5), no DID (bit 4)
var (
	fuzzExts  = [...]string{"", "101", "102", "103", "107"}
	fuzzDirs  = [...]Direction{DirectionIn, DirectionOut, DirectionInternal, ""}
	fuzzXfers = [...]TransferKind{TransferBlind, TransferAttended, "", "warm"}
	fuzzDisps = [...]Disposition{"", DispositionAnswered, DispositionBusy, DispositionNoAnswer,
		DispositionCancelled, DispositionFailed, "bogus", ""}
	fuzzRecs = [...]string{"", "https://pbx/a.wav", "https://pbx/b.wav"}
)

const kindLost Kind = 12

func decodeUpdate(b [4]byte, cur *time.Time, c *Call) Update {
	kind := Kind(b[0] % 13)
	switch d := int8(b[1]); d {
	case 127:
		*cur = cur.Add(100 * 365 * 24 * time.Hour)
	case -128:
		*cur = cur.Add(-100 * 365 * 24 * time.Hour)
	default:
		*cur = cur.Add(time.Duration(d) * 250 * time.Millisecond)
	}
	if kind == kindLost {
		return Lost(c)
	}
	u := Update{PBX: "pbx1", PBXCallID: "1700000000.1", Time: *cur, Kind: kind}
	if b[0] >= 240 {
		u.Time = time.Time{}
	}
	ext := fuzzExts[b[2]%5]
	switch kind {
	case KindRing:
		u.Direction = fuzzDirs[b[3]&3]
		if b[3]&0x20 == 0 {
			u.Customer, u.CustomerE164 = "84951234567", "+74951234567"
		}
		if b[3]&0x10 == 0 {
			u.DID = "84950000000"
		}
		for i := range fuzzExts {
			if b[2]&(1<<i) != 0 {
				u.Extensions = append(u.Extensions, fuzzExts[i])
			}
		}
		if b[2]&0xc0 == 0xc0 {
			for i := range 70 {
				u.Extensions = append(u.Extensions, "9"+strconv.Itoa(i))
			}
		}
	case KindAnswer, KindConnect:
		u.Extension = ext
	case KindTransfer:
		u.Transfer = Transfer{
			Kind:      fuzzXfers[b[3]&3],
			From:      fuzzExts[(b[2]>>3)%5],
			To:        ext,
			Completed: b[3]&4 != 0,
		}
	case KindDTMF:
		n := int(b[2] % 40)
		if b[2] >= 250 {
			n = 100
		}
		u.Digits = strings.Repeat("0123456789*#", 9)[:n]
	case KindRecording, KindFinal:
		u.Recording = fuzzRecs[b[2]%3]
	case KindEnd:
		u.Disposition = fuzzDisps[(b[3]>>3)&7]
		switch {
		case b[3]&0x40 != 0:
			u.Cause = CauseLost
		case b[3]&0x80 != 0:
			u.Cause = "normal"
		}
	}
	return u
}

// firstNote is the event each kind produces first when applied.
var firstNote = map[Kind]EventType{
	KindRing: EventRinging, KindAnswer: EventAnswered, KindHold: EventHeld, KindResume: EventResumed,
	KindTransfer: EventTransferred, KindDTMF: EventDTMF, KindEnd: EventEnded, KindFinal: EventRecorded,
}

func FuzzApply(f *testing.F) {
	// More seeds live in testdata/fuzz/FuzzApply.
	f.Add([]byte{1, 0, 0x02, 0x00, 2, 8, 1, 0, 9, 40, 0, 0x80, 10, 4, 1, 0})
	f.Add([]byte{1, 0, 0x02, 0x00, 2, 8, 1, 0, 4, 12, 0, 0, 5, 12, 0, 0, 9, 12, 0, 0})

	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Call{}
		cur := t0
		started := false
		var (
			ended     *Call // the call as it was when it ended
			lastSeen  time.Time
			sentinels = []error{ErrInvalid, ErrNoCall, ErrEnded, ErrState, ErrDuplicate}
		)
		for i := 0; i+4 <= len(data); i += 4 {
			u := decodeUpdate([4]byte(data[i:i+4]), &cur, c)
			before := c.Clone()
			notes, err := Apply(c, &u)
			step := func() string {
				return "step " + strconv.Itoa(i/4) + " (" + u.Kind.String() + " " + strconv.Itoa(int(u.Kind)) + ")"
			}

			if err != nil {
				known := false
				for _, s := range sentinels {
					known = known || errors.Is(err, s)
				}
				if !known {
					t.Fatalf("%s: error %v is none of the Err* values", step(), err)
				}
				if len(notes) != 0 {
					t.Fatalf("%s: refused update produced notes %v", step(), notes)
				}
				if !sameCall(before, c.Clone()) {
					t.Fatalf("%s: refused update (%v) changed the call (-before +after):\n%s",
						step(), err, cmp.Diff(before, c, unchangedOpts...))
				}
			} else {
				if !started && u.Kind != KindRing {
					t.Fatalf("%s: applied to a call that never started", step())
				}
				started = true
				// A ring that only fills in late caller details on a call already up
				// changes the record without an event.
				lateDetails := u.Kind == KindRing && before.State.Live() && before.State != StateRinging
				if want, ok := firstNote[u.Kind]; ok && !lateDetails {
					if len(notes) == 0 || notes[0].Type != want {
						t.Fatalf("%s: notes %v, want first %s", step(), notes, want)
					}
				}
				if u.Kind == KindDTMF && !strings.HasSuffix(before.DTMF+u.Digits, c.DTMF) {
					t.Fatalf("%s: dtmf %q is not the newest of %q", step(), c.DTMF, before.DTMF+u.Digits)
				}
			}
			if !started {
				if d := cmp.Diff(&Call{}, c); d != "" {
					t.Fatalf("%s: a call that never started changed:\n%s", step(), d)
				}
				continue
			}
			checkInvariants(t, step(), c)

			if c.LastSeen.Before(lastSeen) {
				t.Fatalf("%s: last_seen went back from %v to %v", step(), lastSeen, c.LastSeen)
			}
			lastSeen = c.LastSeen
			if ended != nil {
				// Once ended, only the recording and the final flag may change.
				now := c.Clone()
				now.Recording, now.Acc.Final = ended.Recording, ended.Acc.Final
				if !sameCall(ended, now) {
					t.Fatalf("%s: an ended call changed (-ended +now):\n%s", step(), cmp.Diff(ended, now, unchangedOpts...))
				}
			} else if c.State == StateEnded {
				ended = c.Clone()
			}
		}
	})
}

// sameCall is cmp.Equal(a, b, unchangedOpts...), with a fast path that keeps the fuzzer
// quick: a and b are Clones (no shared pointers) or the call itself.
func sameCall(a, b *Call) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	return cmp.Equal(a, b, unchangedOpts...)
}

func checkInvariants(t *testing.T, step string, c *Call) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(step+": "+format+"\ncall: %+v", append(args, c)...)
	}
	switch c.State {
	case StateRinging, StateActive, StateHeld, StateEnded:
	default:
		fail("state %q", c.State)
	}
	if c.StartedAt.IsZero() || c.LastSeen.Before(c.StartedAt) {
		fail("started %v, last seen %v", c.StartedAt, c.LastSeen)
	}
	if c.AnsweredAt != nil && c.AnsweredAt.Before(c.StartedAt) {
		fail("answered %v before started %v", c.AnsweredAt, c.StartedAt)
	}
	if c.EndedAt != nil {
		if c.EndedAt.Before(c.StartedAt) || (c.AnsweredAt != nil && c.EndedAt.Before(*c.AnsweredAt)) {
			fail("ended %v before started %v / answered %v", c.EndedAt, c.StartedAt, c.AnsweredAt)
		}
		if !c.EndedAt.Equal(c.LastSeen) {
			fail("ended %v, last seen %v", c.EndedAt, c.LastSeen)
		}
	}
	if (c.State == StateEnded) != (c.EndedAt != nil) {
		fail("state %q with ended_at %v", c.State, c.EndedAt)
	}
	if c.AnsweredAt == nil && (c.State == StateActive || c.State == StateHeld) {
		fail("state %q without answered_at", c.State)
	}
	for name, d := range map[string]float64{"ring": c.RingS, "talk": c.TalkS, "hold": c.HoldS, "connected": c.ConnectedS} {
		if d < 0 {
			fail("%s_s = %v < 0", name, d)
		}
	}
	if c.TalkS > c.ConnectedS || c.HoldS > c.ConnectedS {
		fail("talk %v / hold %v exceed connected %v", c.TalkS, c.HoldS, c.ConnectedS)
	}
	// Talk and hold are disjoint parts of connected; each is rounded to 0.1 s.
	if c.TalkS+c.HoldS > c.ConnectedS+0.1+1e-6 {
		fail("talk %v + hold %v exceed connected %v", c.TalkS, c.HoldS, c.ConnectedS)
	}
	if c.AnsweredAt == nil && (c.TalkS != 0 || c.HoldS != 0 || c.ConnectedS != 0) {
		fail("unanswered call with talk %v hold %v connected %v", c.TalkS, c.HoldS, c.ConnectedS)
	}
	if c.State.Live() {
		if c.Disposition != "" {
			fail("disposition %q on a live call", c.Disposition)
		}
	} else {
		if !c.Disposition.Valid() {
			fail("ended with disposition %q", c.Disposition)
		}
		// Answered means the customer was reached; an agent leg that answered alone
		// (connect) sets answered_at without making the call answered.
		if (c.Disposition == DispositionAnswered) != c.Acc.Reached {
			fail("disposition %q, reached %v", c.Disposition, c.Acc.Reached)
		}
		if c.Disposition == DispositionAnswered && c.AnsweredAt == nil {
			fail("answered without answered_at")
		}
		if c.Agent != "" || c.Acc.TalkSince != nil || c.Acc.HoldSince != nil {
			fail("ended with agent %q talk_since %v hold_since %v", c.Agent, c.Acc.TalkSince, c.Acc.HoldSince)
		}
	}
	if c.Acc.Final && c.State != StateEnded {
		fail("final record of a live call")
	}
	if c.AnsweredBy != "" && c.AnsweredAt == nil {
		fail("answered_by %q without answered_at", c.AnsweredBy)
	}
	if c.Acc.TalkSince != nil && c.State != StateActive {
		fail("talking while %q", c.State)
	}
	if (c.Acc.HoldSince != nil) != (c.State == StateHeld) {
		fail("hold_since %v while %q", c.Acc.HoldSince, c.State)
	}
	if len(c.DTMF) > maxDTMF || len(c.Rung) > maxRung+maxTransfers+1 || len(c.Transfers) > maxTransfers {
		fail("dtmf %d, rung %d, transfers %d", len(c.DTMF), len(c.Rung), len(c.Transfers))
	}
	if c.Rung == nil || c.Transfers == nil {
		fail("nil rung %v or transfers %v (JSON null)", c.Rung == nil, c.Transfers == nil)
	}
	seen := map[string]bool{}
	for _, e := range c.Rung {
		if e == "" || seen[e] {
			fail("rung %q has an empty or repeated extension", c.Rung)
		}
		seen[e] = true
	}
	for _, tr := range c.Transfers {
		if tr.To == "" || (tr.Kind != TransferBlind && tr.Kind != TransferAttended) {
			fail("transfer %+v", tr)
		}
	}
}
