package call

import (
	"errors"
	"time"
)

// Kind says what a connector observed about a call.
type Kind uint8

// Update kinds. Each is a fact the PBX reported, not a command.
const (
	// KindRing starts a call (Direction, Customer, DID) or offers it to more
	// extensions (Extensions).
	KindRing Kind = iota + 1
	// KindAnswer connects the customer to Extension; an empty Extension means the
	// call was answered by something that is not an extension (a conference room).
	KindAnswer
	// KindDetach says the customer is no longer talking to anyone but the call goes
	// on (queue, park, transfer ringback): talk time stops.
	KindDetach
	// KindHold puts the customer on hold.
	KindHold
	// KindResume takes the customer off hold.
	KindResume
	// KindTransfer records a hand-over (Transfer); Completed means the customer
	// reached the target.
	KindTransfer
	// KindDTMF carries Digits pressed during the call.
	KindDTMF
	// KindRecording carries the recording's link (Recording) while the call goes on.
	KindRecording
	// KindEnd ends the call with Cause and the connector's Disposition.
	KindEnd
	// KindFinal says the PBX's final record of an ended call is complete
	// (Recording may come with it): it produces call.recorded, once.
	KindFinal
	// KindConnect says Extension is up on a call whose customer is not reached yet:
	// the agent leg of a click-to-call, which rings the agent first. Connected time
	// starts; the call stays ringing until a KindAnswer says the customer answered.
	KindConnect
)

var kindNames = [...]string{"", "ring", "answer", "detach", "hold", "resume", "transfer", "dtmf", "recording", "end", "final", "connect"}

// String names the kind for logs and metrics.
func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return "unknown"
}

// Update is one observation a connector makes about a call. Time is the PBX's time of
// the observation (from the event, never from a clock read here).
type Update struct {
	// PBX is the connector's id; PBXCallID the PBX's id of the conversation
	// (Asterisk Linkedid, FreeSWITCH call UUID). Together they find the call.
	PBX       string
	PBXCallID string
	// CallID, when set on the first update, is the id callbridge already gave the
	// call (an originate answered 202 with it).
	CallID string
	Time   time.Time
	Kind   Kind

	Direction    Direction
	Customer     string
	CustomerE164 string
	DID          string
	Extensions   []string
	Extension    string

	Transfer    Transfer
	Digits      string
	Recording   string
	Cause       string
	Disposition Disposition
}

// EventType names a callbridge event.
type EventType string

// Event types (DESIGN.md, "Events").
const (
	EventRinging     EventType = "call.ringing"
	EventAnswered    EventType = "call.answered"
	EventHeld        EventType = "call.held"
	EventResumed     EventType = "call.resumed"
	EventDTMF        EventType = "call.dtmf"
	EventTransferred EventType = "call.transferred"
	EventEnded       EventType = "call.ended"
	EventRecorded    EventType = "call.recorded"
	EventAgentStatus EventType = "agent.status"
	EventExtStatus   EventType = "extension.status"
	EventSnapshot    EventType = "calls.snapshot"
	EventConnected   EventType = "pbx.connected"
	EventDisconnect  EventType = "pbx.disconnected"
	// EventRaw is a PBX's raw event passed through to integrators; it is never
	// logged and has no seq.
	EventRaw EventType = "pbx.raw"
)

// Note is an event the state machine emits for an applied update, with the detail
// that belongs to the event rather than to the call.
type Note struct {
	Type     EventType
	Digits   string
	Transfer *Transfer
}

// Errors Apply returns for an update it did not apply. The call is unchanged.
var (
	// ErrInvalid: the update is malformed (no time, unknown kind, missing fields).
	ErrInvalid = errors.New("call: invalid update")
	// ErrNoCall: the update is for a call that was never started.
	ErrNoCall = errors.New("call: no such call")
	// ErrEnded: the update came after the call ended (an answer after the hang-up,
	// a second hang-up).
	ErrEnded = errors.New("call: call has ended")
	// ErrState: the update is impossible in the call's state (hold while ringing).
	ErrState = errors.New("call: impossible in this state")
	// ErrDuplicate: the update repeats what the call already is.
	ErrDuplicate = errors.New("call: duplicate update")
)

// maxDTMF bounds the digits kept on a call; a PBX that streams digits forever
// must not grow a call without limit.
const maxDTMF = 64

// maxRung bounds the extensions kept on a call (a ring-all group of thousands).
const maxRung = 64

// maxTransfers bounds the transfers kept on a call.
const maxTransfers = 32
