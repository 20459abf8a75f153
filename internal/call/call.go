// Package call is callbridge's model of a call: one customer conversation across its
// legs, transfers and queue attempts, and the pure state machine that turns connector
// updates into call changes and events.
//
// Nothing here reads a clock or does I/O: time comes in the Update, which is what makes
// recorded PBX traffic a test.
package call

import (
	"time"
)

// Direction says who started the conversation, from the PBX's point of view.
type Direction string

// Directions.
const (
	DirectionIn       Direction = "in"
	DirectionOut      Direction = "out"
	DirectionInternal Direction = "internal"
)

// Valid reports whether d is one of the known directions.
func (d Direction) Valid() bool {
	return d == DirectionIn || d == DirectionOut || d == DirectionInternal
}

// State is where a call is in its life.
type State string

// States: ringing → active ⇄ held → ended.
const (
	StateRinging State = "ringing"
	StateActive  State = "active"
	StateHeld    State = "held"
	StateEnded   State = "ended"
)

// Live reports whether the call has not ended.
func (s State) Live() bool { return s != StateEnded && s != "" }

// Disposition is how a call ended; it is set exactly once, when the call ends.
type Disposition string

// Dispositions (ELMA365's Answered/Busy/NoAnswer/Cancel/Unknown map onto these).
const (
	DispositionAnswered  Disposition = "answered"
	DispositionBusy      Disposition = "busy"
	DispositionNoAnswer  Disposition = "no_answer"
	DispositionCancelled Disposition = "cancelled"
	DispositionFailed    Disposition = "failed"
)

// Valid reports whether d is one of the known dispositions.
func (d Disposition) Valid() bool {
	switch d {
	case DispositionAnswered, DispositionBusy, DispositionNoAnswer, DispositionCancelled, DispositionFailed:
		return true
	}
	return false
}

// CauseLost is the hang-up cause of a call the PBX side lost track of (link down,
// node crash, a PBX that no longer knows the call after a reconnect).
const CauseLost = "lost"

// TransferKind says how a call was handed on.
type TransferKind string

// Transfer kinds.
const (
	TransferBlind    TransferKind = "blind"
	TransferAttended TransferKind = "attended"
)

// Transfer is one hand-over of the customer from one extension to another.
type Transfer struct {
	Kind      TransferKind `json:"kind"`
	From      string       `json:"from"`
	To        string       `json:"to"`
	Completed bool         `json:"completed"`
	At        time.Time    `json:"at"`
}

// Call is what a person would call "a call": one customer conversation.
//
// The JSON shape is the API's call shape; durations carry the names of the fixtures'
// expected.json so that a recorded scenario can be compared field by field.
type Call struct {
	ID        string `json:"id"`
	Tenant    string `json:"-"`
	PBX       string `json:"pbx"`
	PBXCallID string `json:"pbx_call_id"`

	Direction    Direction `json:"direction"`
	State        State     `json:"state"`
	Customer     string    `json:"customer"`
	CustomerE164 string    `json:"customer_e164,omitempty"`
	DID          string    `json:"did,omitempty"`
	// Rung lists every extension the call was offered to, in order.
	Rung       []string `json:"rung"`
	AnsweredBy string   `json:"answered_by,omitempty"`
	// Agent is the extension the customer is with now (after a transfer, the target).
	Agent string `json:"agent,omitempty"`

	Disposition Disposition `json:"disposition,omitempty"`
	Cause       string      `json:"cause,omitempty"`

	StartedAt  time.Time  `json:"started_at"`
	AnsweredAt *time.Time `json:"answered_at,omitempty"`
	EndedAt    *time.Time `json:"ended_at,omitempty"`
	// LastSeen is the time of the last update the PBX sent for this call: a call
	// that is lost ends here, the last time callbridge knew it alive.
	LastSeen time.Time `json:"last_seen"`

	RingS      float64 `json:"ring_s"`
	TalkS      float64 `json:"talk_s"`
	HoldS      float64 `json:"hold_s"`
	ConnectedS float64 `json:"connected_s"`

	Transfers []Transfer `json:"transfers"`
	Recording string     `json:"recording,omitempty"`
	DTMF      string     `json:"dtmf,omitempty"`

	// Allowed lists the control actions the call accepts now; filled per reader.
	Allowed []string `json:"allowed,omitempty"`

	// Running counters: not part of the API shape, but persisted (store column) so
	// that a restart resumes the accounting exactly.
	Acc Accounting `json:"-"`
}

// Accounting holds the open intervals the durations are computed from.
type Accounting struct {
	// TalkNS and HoldNS are closed intervals, in nanoseconds.
	TalkNS int64 `json:"talk_ns,omitempty"`
	HoldNS int64 `json:"hold_ns,omitempty"`
	// Talking is set while the customer is connected to someone and not on hold.
	TalkSince *time.Time `json:"talk_since,omitempty"`
	HoldSince *time.Time `json:"hold_since,omitempty"`
	// Final is set once the final record (call.recorded) has been produced.
	Final bool `json:"final,omitempty"`
	// Reached is set once the customer talked to someone (the call went active): it,
	// not the first answer, makes the disposition "answered", so a click-to-call
	// whose agent answered but whose customer never did is not answered.
	Reached bool `json:"reached,omitempty"`
}

// Extensions returns every extension the call concerns (rung, answered, current agent,
// transfer parties), without duplicates, in first-seen order.
func (c *Call) Extensions() []string {
	out := make([]string, 0, len(c.Rung)+2)
	add := func(e string) {
		if e == "" {
			return
		}
		for _, x := range out {
			if x == e {
				return
			}
		}
		out = append(out, e)
	}
	for _, e := range c.Rung {
		add(e)
	}
	add(c.AnsweredBy)
	add(c.Agent)
	for _, t := range c.Transfers {
		add(t.From)
		add(t.To)
	}
	if c.Direction == DirectionInternal {
		// On an internal call the "customer" is the calling extension.
		add(c.Customer)
	}
	return out
}

// Concerns reports whether the call concerns extension ext.
func (c *Call) Concerns(ext string) bool {
	for _, e := range c.Extensions() {
		if e == ext {
			return true
		}
	}
	return false
}

// Clone returns a deep copy, so a snapshot handed to readers never aliases live state.
func (c *Call) Clone() *Call {
	cp := *c
	// Empty lists stay empty (not nil): the API shows "rung": [], never null.
	if c.Rung != nil {
		cp.Rung = append(make([]string, 0, len(c.Rung)), c.Rung...)
	}
	if c.Transfers != nil {
		cp.Transfers = append(make([]Transfer, 0, len(c.Transfers)), c.Transfers...)
	}
	if c.Allowed != nil {
		cp.Allowed = append(make([]string, 0, len(c.Allowed)), c.Allowed...)
	}
	if c.AnsweredAt != nil {
		t := *c.AnsweredAt
		cp.AnsweredAt = &t
	}
	if c.EndedAt != nil {
		t := *c.EndedAt
		cp.EndedAt = &t
	}
	if c.Acc.TalkSince != nil {
		t := *c.Acc.TalkSince
		cp.Acc.TalkSince = &t
	}
	if c.Acc.HoldSince != nil {
		t := *c.Acc.HoldSince
		cp.Acc.HoldSince = &t
	}
	return &cp
}

// Actions a call may allow.
const (
	ActionAnswer     = "answer"
	ActionHangup     = "hangup"
	ActionHold       = "hold"
	ActionResume     = "resume"
	ActionTransfer   = "transfer"
	ActionConference = "conference"
	ActionDTMF       = "dtmf"
)

// AllowedActions is what the call's state permits now, before any key's scope narrows it.
func (c *Call) AllowedActions() []string {
	switch c.State {
	case StateRinging:
		return []string{ActionAnswer, ActionHangup}
	case StateActive:
		return []string{ActionHangup, ActionHold, ActionTransfer, ActionConference, ActionDTMF}
	case StateHeld:
		return []string{ActionHangup, ActionResume, ActionTransfer, ActionConference}
	}
	return nil
}

func seconds(ns int64) float64 { return float64(tenths(ns)) / 10 }

// tenths rounds to tenths of a second: what the fixtures measure and what a CRM shows.
func tenths(ns int64) int64 {
	// Saturate instead of overflowing on absurd spans (timestamps centuries apart).
	ns = min(ns, maxSpan)
	return (ns + 50_000_000) / 100_000_000
}

// maxSpan caps any duration at ~100 years, far beyond a call, far below overflow.
const maxSpan = int64(100 * 365 * 24 * time.Hour)
