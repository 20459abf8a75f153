package call

import (
	"fmt"
	"slices"
	"time"
)

// Apply applies u to c and returns the events it produces. A call with an empty State
// is new: only KindRing starts it. An update Apply refuses (see the Err* values) leaves
// c exactly as it was, so out-of-order, duplicate or impossible input never corrupts a
// call. An update older than the call's last one counts as happening at LastSeen:
// time never runs backwards inside a call.
func Apply(c *Call, u *Update) ([]Note, error) {
	if u.Time.IsZero() {
		return nil, fmt.Errorf("%w: no time", ErrInvalid)
	}
	if u.Kind < KindRing || u.Kind > KindConnect {
		return nil, fmt.Errorf("%w: kind %d", ErrInvalid, u.Kind)
	}
	if c.State == "" {
		if u.Kind != KindRing {
			return nil, fmt.Errorf("%w: %s before ring", ErrNoCall, u.Kind)
		}
		return start(c, u)
	}
	if c.State == StateEnded {
		if u.Kind == KindFinal {
			return final(c, u)
		}
		if u.Kind == KindRecording && u.Recording != "" && c.Recording == "" {
			c.Recording = u.Recording
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrEnded, u.Kind)
	}
	t := u.Time
	if t.Before(c.LastSeen) {
		t = c.LastSeen
	}
	var notes []Note
	var err error
	switch u.Kind {
	case KindRing:
		notes, err = ring(c, u)
	case KindAnswer:
		notes, err = answer(c, u.Extension, t)
	case KindConnect:
		if u.Extension == "" {
			return nil, fmt.Errorf("%w: connect without an extension", ErrInvalid)
		}
		if c.State != StateRinging {
			return nil, fmt.Errorf("%w: connect while %s", ErrState, c.State)
		}
		if c.AnsweredAt != nil {
			return nil, ErrDuplicate
		}
		c.AnsweredAt = timePtr(t)
		c.AnsweredBy = u.Extension
		addRung(c, []string{u.Extension}, maxRung+maxTransfers+1)
	case KindDetach:
		if c.Acc.TalkSince == nil && c.Agent == "" {
			return nil, ErrDuplicate
		}
		stopTalk(c, t)
		c.Agent = ""
	case KindHold:
		if c.State == StateHeld {
			return nil, ErrDuplicate
		}
		if c.State != StateActive {
			return nil, fmt.Errorf("%w: hold while %s", ErrState, c.State)
		}
		stopTalk(c, t)
		c.State = StateHeld
		c.Acc.HoldSince = timePtr(t)
		notes = []Note{{Type: EventHeld}}
	case KindResume:
		if c.State != StateHeld {
			return nil, fmt.Errorf("%w: resume while %s", ErrState, c.State)
		}
		stopHold(c, t)
		c.State = StateActive
		if c.Agent != "" || c.AnsweredBy == "" {
			startTalk(c, t)
		}
		notes = []Note{{Type: EventResumed}}
	case KindTransfer:
		notes, err = transfer(c, u.Transfer, t)
	case KindDTMF:
		if !validDigits(u.Digits) {
			return nil, fmt.Errorf("%w: dtmf digits %q", ErrInvalid, u.Digits)
		}
		c.DTMF += u.Digits
		if len(c.DTMF) > maxDTMF {
			c.DTMF = c.DTMF[len(c.DTMF)-maxDTMF:]
		}
		notes = []Note{{Type: EventDTMF, Digits: u.Digits}}
	case KindRecording:
		if u.Recording == "" {
			return nil, fmt.Errorf("%w: recording without a link", ErrInvalid)
		}
		if u.Recording == c.Recording {
			return nil, ErrDuplicate
		}
		c.Recording = u.Recording
	case KindEnd:
		end(c, u, t)
		notes = []Note{{Type: EventEnded}}
	case KindFinal:
		return nil, fmt.Errorf("%w: final record of a live call", ErrState)
	default:
		return nil, fmt.Errorf("%w: kind %d", ErrInvalid, u.Kind)
	}
	if err != nil {
		return nil, err
	}
	c.LastSeen = t
	recompute(c, t)
	return notes, nil
}

func start(c *Call, u *Update) ([]Note, error) {
	if !u.Direction.Valid() {
		return nil, fmt.Errorf("%w: direction %q", ErrInvalid, u.Direction)
	}
	c.Direction = u.Direction
	c.Customer = u.Customer
	c.CustomerE164 = u.CustomerE164
	c.DID = u.DID
	c.State = StateRinging
	c.StartedAt = u.Time
	c.LastSeen = u.Time
	c.Rung = c.Rung[:0]
	addRung(c, u.Extensions, maxRung)
	if c.Transfers == nil {
		c.Transfers = []Transfer{}
	}
	if c.Rung == nil {
		c.Rung = []string{}
	}
	recompute(c, u.Time)
	return []Note{{Type: EventRinging}}, nil
}

func ring(c *Call, u *Update) ([]Note, error) {
	// A DID or customer learnt late (a PBX that names the caller after the first
	// event) fills in; it never overwrites what was presented first.
	learnt := false
	if c.DID == "" && u.DID != "" {
		c.DID, learnt = u.DID, true
	}
	if c.Customer == "" && u.Customer != "" {
		c.Customer, c.CustomerE164, learnt = u.Customer, u.CustomerE164, true
	}
	if !addRung(c, u.Extensions, maxRung) {
		if !learnt {
			return nil, ErrDuplicate
		}
		if c.State != StateRinging {
			// Details learnt once the call is up change the record, not what is
			// happening: no event.
			return nil, nil
		}
	}
	return []Note{{Type: EventRinging}}, nil
}

// addRung appends new extensions up to limit. Ringing is bounded by maxRung; an
// extension that answers or receives a transfer may go past it, so whoever talked to
// the customer is always in the list.
func addRung(c *Call, exts []string, limit int) bool {
	added := false
	for _, e := range exts {
		if e == "" || slices.Contains(c.Rung, e) || len(c.Rung) >= limit {
			continue
		}
		c.Rung = append(c.Rung, e)
		added = true
	}
	return added
}

func answer(c *Call, ext string, t time.Time) ([]Note, error) {
	if ext != "" && c.Agent == ext && c.Acc.TalkSince != nil {
		return nil, ErrDuplicate
	}
	if c.State == StateActive && ext == "" && c.Acc.TalkSince != nil {
		return nil, ErrDuplicate
	}
	notes := []Note{{Type: EventAnswered}}
	if c.AnsweredAt == nil {
		c.AnsweredAt = timePtr(t)
		c.AnsweredBy = ext
	}
	if ext != "" {
		addRung(c, []string{ext}, maxRung+maxTransfers+1)
		// An answer by the target of a pending transfer completes it.
		for i := range c.Transfers {
			tr := &c.Transfers[i]
			if !tr.Completed && tr.To == ext {
				tr.Completed = true
				cp := *tr
				notes = append(notes, Note{Type: EventTransferred, Transfer: &cp})
				break
			}
		}
	}
	if c.State == StateHeld {
		stopHold(c, t)
	}
	c.State = StateActive
	c.Acc.Reached = true
	c.Agent = ext
	startTalk(c, t)
	return notes, nil
}

func transfer(c *Call, tr Transfer, t time.Time) ([]Note, error) {
	if tr.Kind != TransferBlind && tr.Kind != TransferAttended {
		return nil, fmt.Errorf("%w: transfer kind %q", ErrInvalid, tr.Kind)
	}
	if tr.To == "" {
		return nil, fmt.Errorf("%w: transfer without target", ErrInvalid)
	}
	if c.State == StateRinging {
		return nil, fmt.Errorf("%w: transfer while ringing", ErrState)
	}
	if tr.From == "" {
		tr.From = c.Agent
	}
	tr.At = t
	idx := -1
	for i := range c.Transfers {
		if !c.Transfers[i].Completed && c.Transfers[i].To == tr.To {
			idx = i
			break
		}
	}
	if idx >= 0 {
		if !tr.Completed {
			return nil, ErrDuplicate
		}
		c.Transfers[idx].Completed = true
		if c.Transfers[idx].Kind != tr.Kind {
			c.Transfers[idx].Kind = tr.Kind
		}
		tr = c.Transfers[idx]
	} else {
		if len(c.Transfers) >= maxTransfers {
			return nil, fmt.Errorf("%w: too many transfers", ErrState)
		}
		c.Transfers = append(c.Transfers, tr)
	}
	if tr.Completed {
		if c.State == StateHeld {
			stopHold(c, t)
			c.State = StateActive
		}
		addRung(c, []string{tr.To}, maxRung+maxTransfers+1)
		c.Agent = tr.To
		startTalk(c, t)
	} else if tr.Kind == TransferBlind {
		// The customer hears ringback until the target answers: not talk time.
		stopTalk(c, t)
		c.Agent = ""
	}
	cp := tr
	return []Note{{Type: EventTransferred, Transfer: &cp}}, nil
}

func end(c *Call, u *Update, t time.Time) {
	wasUp := c.State == StateActive || c.State == StateHeld
	stopTalk(c, t)
	stopHold(c, t)
	c.State = StateEnded
	c.EndedAt = timePtr(t)
	c.Cause = u.Cause
	c.Agent = ""
	switch {
	case c.Acc.Reached || wasUp:
		c.Disposition = DispositionAnswered
	case u.Disposition.Valid() && u.Disposition != DispositionAnswered:
		c.Disposition = u.Disposition
	case u.Cause == CauseLost:
		// Rang but never answered as far as we know: a missed call someone should return.
		c.Disposition = DispositionNoAnswer
	default:
		c.Disposition = DispositionFailed
	}
}

func final(c *Call, u *Update) ([]Note, error) {
	if c.Acc.Final {
		return nil, ErrDuplicate
	}
	c.Acc.Final = true
	if u.Recording != "" {
		c.Recording = u.Recording
	}
	return []Note{{Type: EventRecorded}}, nil
}

// Lost builds the update that ends a call the PBX side lost track of: at the last time
// it was known alive, with cause lost.
func Lost(c *Call) Update {
	return Update{PBX: c.PBX, PBXCallID: c.PBXCallID, Time: c.LastSeen, Kind: KindEnd, Cause: CauseLost}
}

func startTalk(c *Call, t time.Time) {
	if c.Acc.TalkSince == nil && c.State == StateActive {
		c.Acc.TalkSince = timePtr(t)
	}
}

func stopTalk(c *Call, t time.Time) {
	if c.Acc.TalkSince != nil {
		c.Acc.TalkNS = min(c.Acc.TalkNS+nonNeg(t.Sub(*c.Acc.TalkSince)), maxSpan)
		c.Acc.TalkSince = nil
	}
}

func stopHold(c *Call, t time.Time) {
	if c.Acc.HoldSince != nil {
		c.Acc.HoldNS = min(c.Acc.HoldNS+nonNeg(t.Sub(*c.Acc.HoldSince)), maxSpan)
		c.Acc.HoldSince = nil
	}
}

// recompute refreshes the duration fields as of now (the update's time).
func recompute(c *Call, now time.Time) {
	ringEnd := now
	if c.AnsweredAt != nil {
		ringEnd = *c.AnsweredAt
	} else if c.EndedAt != nil {
		ringEnd = *c.EndedAt
	}
	c.RingS = seconds(nonNeg(ringEnd.Sub(c.StartedAt)))
	talk := c.Acc.TalkNS
	if c.Acc.TalkSince != nil {
		talk = min(talk+nonNeg(now.Sub(*c.Acc.TalkSince)), maxSpan)
	}
	hold := c.Acc.HoldNS
	if c.Acc.HoldSince != nil {
		hold = min(hold+nonNeg(now.Sub(*c.Acc.HoldSince)), maxSpan)
	}
	var connected int64
	if c.AnsweredAt != nil {
		connected = nonNeg(now.Sub(*c.AnsweredAt))
	}
	// Talk and hold are parts of the connected time; rounding must not make a part
	// exceed the whole.
	conn10, hold10 := tenths(connected), tenths(hold)
	hold10 = min(hold10, conn10)
	talk10 := min(tenths(talk), conn10-hold10)
	c.ConnectedS = float64(conn10) / 10
	c.HoldS = float64(hold10) / 10
	c.TalkS = float64(talk10) / 10
}

func nonNeg(d time.Duration) int64 {
	if d < 0 {
		return 0
	}
	return min(int64(d), maxSpan)
}

func validDigits(s string) bool {
	if s == "" || len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == '*', c == '#', c >= 'A' && c <= 'D', c >= 'a' && c <= 'd':
		default:
			return false
		}
	}
	return true
}

func timePtr(t time.Time) *time.Time { return &t }
