package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"callbridge/internal/auth"
	"callbridge/internal/hub"
	"callbridge/internal/store"
)

// controlTimeout bounds how long a command on a call waits for the PBX to accept it;
// what the command did is reported later, through events.
const controlTimeout = 30 * time.Second

type controlInput struct {
	ID string `path:"id" maxLength:"64" doc:"The call's id."`
}

type transferBody struct {
	To       string `json:"to" minLength:"1" maxLength:"128" doc:"The extension or number to transfer to." example:"102"`
	Attended bool   `json:"attended,omitempty" doc:"Consult the target first (attended) instead of a blind transfer."`
}

type transferInput struct {
	ID   string `path:"id" maxLength:"64" doc:"The call's id."`
	Body transferBody
}

type conferenceBody struct {
	With string `json:"with" minLength:"1" maxLength:"128" doc:"The extension or number to bring into the call." example:"103"`
}

type conferenceInput struct {
	ID   string `path:"id" maxLength:"64" doc:"The call's id."`
	Body conferenceBody
}

type dtmfBody struct {
	Digits string `json:"digits" minLength:"1" maxLength:"32" pattern:"^[0-9*#A-D]+$" doc:"1-32 DTMF digits: 0-9, *, #, A-D." example:"123#"`
}

type dtmfInput struct {
	ID   string `path:"id" maxLength:"64" doc:"The call's id."`
	Body dtmfBody
}

type controlResult struct {
	ID     string `json:"id" doc:"The call's id."`
	Action string `json:"action" enum:"answer,hangup,hold,resume,transfer,conference,dtmf"`
	Status string `json:"status" enum:"sent" doc:"The PBX accepted the command; the call's events tell what it did."`
}

type controlOutput struct {
	Body controlResult
}

func (s *server) registerControl() {
	reg := func(action hub.Action, summary, desc string) huma.Operation {
		o := op(string(action)+"Call", http.MethodPost, prefix+"/calls/{id}/"+string(action), summary, http.StatusAccepted,
			http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge,
			http.StatusUnprocessableEntity, http.StatusNotImplemented, http.StatusBadGateway, http.StatusServiceUnavailable)
		o.Description = desc + " Answers 202 once the PBX accepted the command. A user-scope key may act only on calls " +
			"of its CRM user's extensions (403 otherwise); a call that has ended gives 409, as does a command the call's " +
			"state does not allow now; the acting extension must be enabled for API control."
		return o
	}
	simple := func(action hub.Action) func(context.Context, *controlInput) (*controlOutput, error) {
		return func(ctx context.Context, in *controlInput) (*controlOutput, error) {
			return s.control(ctx, in.ID, hub.Command{Action: action})
		}
	}
	huma.Register(s.api, reg(hub.ActionAnswer, "Answer a ringing call", "Answers a ringing call on the extension it rings."), simple(hub.ActionAnswer))
	huma.Register(s.api, reg(hub.ActionHangup, "Hang up a call", "Ends a call that has been answered."), simple(hub.ActionHangup))
	huma.Register(s.api, reg(hub.ActionHold, "Put a call on hold", "Holds an active call."), simple(hub.ActionHold))
	huma.Register(s.api, reg(hub.ActionResume, "Resume a held call", "Takes a held call off hold."), simple(hub.ActionResume))
	huma.Register(s.api, reg(hub.ActionTransfer, "Transfer a call", "Transfers the call to another extension or number, blind or attended."),
		func(ctx context.Context, in *transferInput) (*controlOutput, error) {
			return s.control(ctx, in.ID, hub.Command{Action: hub.ActionTransfer, To: in.Body.To, Attended: in.Body.Attended})
		})
	for _, x := range []struct {
		action        hub.Action
		path, summary string
	}{
		{hub.ActionTransferComplete, "complete", "Complete an attended transfer: the customer is joined to the extension consulted."},
		{hub.ActionTransferCancel, "cancel", "Cancel an attended transfer: the customer returns to the agent."},
	} {
		o := reg(x.action, x.summary, x.summary)
		o.OperationID = "transfer" + strings.ToUpper(x.path[:1]) + x.path[1:] + "Call"
		o.Path = prefix + "/calls/{id}/transfer/" + x.path
		huma.Register(s.api, o, simple(x.action))
	}
	huma.Register(s.api, reg(hub.ActionConference, "Add a party to a call", "Brings another extension or number into the call."),
		func(ctx context.Context, in *conferenceInput) (*controlOutput, error) {
			return s.control(ctx, in.ID, hub.Command{Action: hub.ActionConference, To: in.Body.With})
		})
	huma.Register(s.api, reg(hub.ActionDTMF, "Send DTMF digits", "Plays DTMF digits into an active call."),
		func(ctx context.Context, in *dtmfInput) (*controlOutput, error) {
			return s.control(ctx, in.ID, hub.Command{Action: hub.ActionDTMF, Digits: in.Body.Digits})
		})
}

// control checks the key may act on call id and hands cmd to the hub.
func (s *server) control(ctx context.Context, id string, cmd hub.Command) (*controlOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	what := string(cmd.Action) + " call " + id
	if p.Scope == store.ScopeUser {
		ext, err := s.actingExtension(ctx, p, id, what)
		if err != nil {
			return nil, err
		}
		cmd.Extension = ext
	}
	cmd.CallID = id
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	if err := s.hub.Control(ctx, p.Tenant, cmd); err != nil {
		return nil, s.controlProblem(ctx, what, err)
	}
	return &controlOutput{Body: controlResult{ID: id, Action: string(cmd.Action), Status: "sent"}}, nil
}

// actingExtension is the extension a user-scope key acts as on a call: the one of its
// CRM user's extensions the call concerns, preferring the one the customer is with.
// A call of someone else is 403; a call the tenant does not have is 404.
func (s *server) actingExtension(ctx context.Context, p auth.Principal, id, what string) (string, error) {
	c, err := s.hub.Store().Call(ctx, p.Tenant, id)
	if err != nil {
		return "", s.problem(ctx, what, err)
	}
	own := s.hub.ExtensionsOf(p.Tenant, p.CRMUser)
	for _, e := range append([]string{c.Agent, c.AnsweredBy}, c.Extensions()...) {
		if e != "" && slices.Contains(own, e) {
			return e, nil
		}
	}
	return "", huma.Error403Forbidden(what + ": the call does not concern this key's extensions")
}
