package call

import (
	"encoding/json"
	"strconv"
	"time"
)

// Event is one entry of callbridge's event log: what happened, to which call, with a
// full snapshot of the call after the change so a consumer never has to merge.
type Event struct {
	// Seq is the log's monotonic cursor; a consumer resumes after the last Seq it saw.
	Seq    int64     `json:"seq"`
	ID     string    `json:"id"`
	Type   EventType `json:"type"`
	Time   time.Time `json:"time"`
	Tenant string    `json:"-"`
	PBX    string    `json:"pbx,omitempty"`
	Call   *Call     `json:"call,omitempty"`
	// CallID is the id of the call the event is about, for the log's index; the hub
	// sets it and leaves Call nil (the call is already encoded in Raw).
	CallID string `json:"-"`
	// Extensions and Users are who the event concerns; they scope what each key sees.
	Extensions []string `json:"extensions,omitempty"`
	Users      []string `json:"users,omitempty"`
	// Data is the detail that belongs to the event: digits, the transfer, a status.
	Data json.RawMessage `json:"data,omitempty"`
	// Raw is the event encoded as JSON without its seq (the seq is known only at
	// commit); Wire splices the seq in, so an event is encoded once, not per reader.
	Raw json.RawMessage `json:"-"`
}

// Encode fills Raw from the event's fields.
func (e *Event) Encode() error {
	seq := e.Seq
	e.Seq = 0
	b, err := json.Marshal(e)
	e.Seq = seq
	if err != nil {
		return err
	}
	// Drop the leading {"seq":0, written by Marshal so Wire can put the real one back.
	e.Raw = append([]byte{'{'}, b[len(`{"seq":0,`):]...)
	return nil
}

// Wire returns the event's JSON with its seq, as sent to consumers.
func (e *Event) Wire() []byte {
	out := make([]byte, 0, len(e.Raw)+24)
	out = append(out, `{"seq":`...)
	out = strconv.AppendInt(out, e.Seq, 10)
	if len(e.Raw) > 2 {
		out = append(out, ',')
		out = append(out, e.Raw[1:]...)
	} else {
		out = append(out, '}')
	}
	return out
}

// Decode fills the event's fields from Raw (an event read back from the log).
func (e *Event) Decode() error {
	seq, tenant, raw := e.Seq, e.Tenant, e.Raw
	if err := json.Unmarshal(raw, e); err != nil {
		return err
	}
	e.Seq, e.Tenant, e.Raw = seq, tenant, raw
	return nil
}

// Concerns reports whether the event concerns extension ext or CRM user user.
func (e *Event) Concerns(ext, user string) bool {
	for _, x := range e.Extensions {
		if ext != "" && x == ext {
			return true
		}
	}
	for _, u := range e.Users {
		if user != "" && u == user {
			return true
		}
	}
	return false
}
