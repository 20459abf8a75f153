package hub

import (
	"context"
	"errors"
	"time"

	"callbridge/internal/call"
)

// Connector is one PBX connection: it reduces its PBX's signalling to call.Updates and
// carries control commands back.
type Connector interface {
	// ID is the PBX id from configuration; every Update it sends carries it.
	ID() string
	// Run holds the connection until ctx ends, feeding the sink. It returns only when
	// ctx is done or the connector cannot go on at all.
	Run(ctx context.Context, sink Sink) error
	// Control asks the PBX to do something to a call or an extension. A connector
	// that cannot do cmd.Action returns an error wrapping ErrUnsupported.
	Control(ctx context.Context, cmd Command) error
}

// Sink is what a connector reports to. The hub implements it.
type Sink interface {
	// Update hands one observation to the hub. It returns once the update is queued;
	// the hub applies updates of one PBX in the order they were handed over.
	Update(u call.Update)
	// Status reports a non-call event: extension.status, agent.status.
	Status(s Status)
	// Connected says the PBX link is up and which of the PBX's calls are alive now
	// (by PBX call id): every live call of this PBX not in the list is ended as lost.
	// The connector sends the updates that create the calls it found after this.
	Connected(pbx string, alive []string, at time.Time)
	// Synced says the connector has sent everything its (re)connect snapshot found:
	// the hub publishes calls.snapshot with the PBX's live calls.
	Synced(pbx string, at time.Time)
	// Disconnected says the PBX link went down; calls stay as they are until the
	// next Connected reconciles them.
	Disconnected(pbx string, reason error, at time.Time)
	// Extensions declares the extensions the PBX has (its members), so they can be
	// mapped to CRM users and enabled for API control.
	Extensions(pbx string, exts []Extension)
}

// Extension is a PBX member as the connector knows it.
type Extension struct {
	Number string
	Name   string
	// APIEnabled is the default permission for API control when the extension is
	// first seen; an administrator's later choice is never overwritten.
	APIEnabled bool
}

// Status is a non-call event: an extension's registration or device state, an agent's
// queue status.
type Status struct {
	PBX       string
	Type      call.EventType // call.EventExtStatus or call.EventAgentStatus
	Extension string
	Status    string // e.g. "available", "busy", "ringing", "offline", "paused"
	Reason    string
	Time      time.Time
}

// Action is a control command's verb.
type Action string

// Control actions.
const (
	ActionOriginate  Action = "originate"
	ActionAnswer     Action = "answer"
	ActionHangup     Action = "hangup"
	ActionHold       Action = "hold"
	ActionResume     Action = "resume"
	ActionTransfer   Action = "transfer"
	ActionConference Action = "conference"
	ActionDTMF       Action = "dtmf"
	// ActionTransferComplete joins the customer to the target of an attended transfer
	// in progress; ActionTransferCancel returns the customer to the agent.
	ActionTransferComplete Action = "transfer_complete"
	ActionTransferCancel   Action = "transfer_cancel"
	ActionAgent            Action = "agent_status"
)

// Command is a control request routed to the connector that owns the call or extension.
type Command struct {
	Action Action
	// CallID is callbridge's id; PBXCallID the PBX's id of the same call.
	CallID    string
	PBXCallID string
	// Extension is the extension acting (originate from, the agent of the call).
	Extension string
	// To is the number dialled (originate), the transfer target or the conference party.
	To       string
	Attended bool
	Digits   string
	// Status is the agent status to set (ActionAgent).
	Status string
}

// ErrUnsupported is wrapped by a connector that cannot perform a command.
var ErrUnsupported = errors.New("hub: not supported by this PBX")
