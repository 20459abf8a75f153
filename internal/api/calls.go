package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"callbridge/internal/auth"
	"callbridge/internal/call"
	"callbridge/internal/store"
)

// maxExtensionFilter bounds the extensions one search may name (each is a bound
// parameter of the store's query).
const maxExtensionFilter = 100

// originateTimeout bounds how long a click-to-call waits for the PBX to accept the
// command; the call itself is reported later, through events.
const originateTimeout = 30 * time.Second

// CallFilters are the filters of a call search, shared by GET /calls and its CSV
// export. It is exported only because huma reads the parameters of an embedded
// struct when the embedded field is exported.
type CallFilters struct {
	Phone       string           `query:"phone" maxLength:"64" doc:"The customer's number as presented or in any form that normalises to the same E.164 number."`
	Extension   []string         `query:"extension,explode" doc:"Calls that concern any of these extensions (rung, answered, transferred); repeat the parameter or separate with commas."`
	Direction   call.Direction   `query:"direction" enum:"in,out,internal"`
	Disposition call.Disposition `query:"disposition" enum:"answered,busy,no_answer,cancelled,failed"`
	State       call.State       `query:"state" enum:"ringing,active,held,ended"`
	From        time.Time        `query:"from" doc:"Calls started at or after this time (RFC 3339)."`
	To          time.Time        `query:"to" doc:"Calls started before this time (RFC 3339)."`

	exts []string
}

type listCallsInput struct {
	CallFilters
	Limit  int    `query:"limit" minimum:"1" maximum:"1000" default:"100"`
	Cursor string `query:"cursor" maxLength:"512" doc:"The next value of the previous page."`
}

// Resolve checks what a parameter's schema cannot say on its own.
func (in *CallFilters) Resolve(huma.Context) []error {
	var errs []error
	for _, v := range in.Extension {
		for e := range strings.SplitSeq(v, ",") {
			if e = strings.TrimSpace(e); e != "" && !slices.Contains(in.exts, e) {
				in.exts = append(in.exts, e)
			}
		}
	}
	if len(in.exts) > maxExtensionFilter {
		errs = append(errs, &huma.ErrorDetail{Location: "query.extension", Message: "too many extensions (at most 100)"})
	}
	if !in.From.IsZero() && !in.To.IsZero() && !in.To.After(in.From) {
		errs = append(errs, &huma.ErrorDetail{Location: "query.to", Message: "to must be after from", Value: in.To})
	}
	return errs
}

// filter is the store filter of a search by key p. none is true when the key may
// see no call at all (a user key without extensions, or filtering on none of its
// own): an empty extension list would mean "all calls", so the caller answers empty.
func (s *server) filter(p auth.Principal, in *CallFilters) (f store.CallFilter, none bool) {
	f = store.CallFilter{
		Tenant:      p.Tenant,
		Extensions:  in.exts,
		Direction:   in.Direction,
		Disposition: in.Disposition,
		State:       in.State,
		From:        in.From,
		To:          in.To,
	}
	if in.Phone != "" {
		f.Phone, f.PhoneE164 = in.Phone, s.phone.E164(in.Phone)
	}
	if p.Scope == store.ScopeUser {
		own := s.hub.ExtensionsOf(p.Tenant, p.CRMUser)
		if len(f.Extensions) > 0 {
			own = slices.DeleteFunc(own, func(e string) bool { return !slices.Contains(f.Extensions, e) })
		}
		if len(own) == 0 {
			return f, true
		}
		f.Extensions = own
	}
	return f, false
}

type callPage struct {
	Calls []*call.Call `json:"calls" nullable:"false" doc:"Newest first."`
	Next  string       `json:"next,omitempty" doc:"Pass as cursor to get the following page; absent on the last page."`
}

type listCallsOutput struct {
	Body callPage
}

type getCallInput struct {
	ID string `path:"id" maxLength:"64"`
}

type getCallOutput struct {
	Body *call.Call
}

type originateBody struct {
	From     string `json:"from,omitempty" minLength:"1" maxLength:"64" doc:"The extension that rings first; once it answers, the PBX dials to. Give exactly one of from and from_user." example:"101"`
	FromUser string `json:"from_user,omitempty" minLength:"1" maxLength:"128" doc:"A CRM user instead of from: the call rings the one extension mapped to this user (422 if the user has none or several). A user-scope key may name only its own user." example:"alice"`
	To       string `json:"to" minLength:"1" maxLength:"128" doc:"The number to call." example:"+79066800404"`
}

type originateInput struct {
	Body originateBody
}

// Resolve requires exactly one of from and from_user.
func (in *originateInput) Resolve(huma.Context) []error {
	switch {
	case in.Body.From == "" && in.Body.FromUser == "":
		return []error{&huma.ErrorDetail{Location: "body.from", Message: "one of from and from_user is required"}}
	case in.Body.From != "" && in.Body.FromUser != "":
		return []error{&huma.ErrorDetail{Location: "body.from_user", Message: "give from or from_user, not both"}}
	}
	return nil
}

type originated struct {
	ID     string `json:"id" doc:"The call's id: events and GET /api/v1/calls/{id} use it once the PBX reports the call."`
	Status string `json:"status" enum:"originating"`
}

type originateOutput struct {
	Location string `header:"Location"`
	Body     originated
}

func (s *server) registerCalls() {
	o := op("listCalls", http.MethodGet, prefix+"/calls", "Search call history", http.StatusOK, http.StatusBadRequest, http.StatusUnprocessableEntity)
	o.Description = "Calls of the key's tenant, newest first, with cursor pagination. A user-scope key sees only the calls of its CRM user's extensions."
	huma.Register(s.api, o, s.listCalls)

	o = op("getCall", http.MethodGet, prefix+"/calls/{id}", "Get a call", http.StatusOK, http.StatusNotFound)
	o.Description = "A user-scope key gets 404, not 403, for a call of someone else, so a key cannot learn which call ids exist."
	huma.Register(s.api, o, s.getCall)

	o = op("originate", http.MethodPost, prefix+"/calls", "Click-to-call", http.StatusAccepted,
		http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity,
		http.StatusNotImplemented, http.StatusBadGateway, http.StatusServiceUnavailable)
	o.Description = "Rings extension from (or the one extension mapped to CRM user from_user) and, once it answers, dials to. " +
		"Answers 202 as soon as the PBX accepted the command; " +
		"the call appears (with the returned id) when the PBX reports it. A user-scope key may originate only from its own extensions; " +
		"the extension must be enabled for API control."
	huma.Register(s.api, o, s.originate)
}

func (s *server) listCalls(ctx context.Context, in *listCallsInput) (*listCallsOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	out := &listCallsOutput{Body: callPage{Calls: []*call.Call{}}}
	f, none := s.filter(p, &in.CallFilters)
	if none {
		return out, nil
	}
	f.Limit, f.Cursor = in.Limit, in.Cursor
	page, err := s.hub.Store().Calls(ctx, f)
	if err != nil {
		return nil, s.problem(ctx, "list calls", err)
	}
	if page.Calls != nil {
		out.Body.Calls = page.Calls
	}
	out.Body.Next = page.Next
	return out, nil
}

func (s *server) getCall(ctx context.Context, in *getCallInput) (*getCallOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.visibleCall(ctx, p, in.ID)
	if err != nil {
		return nil, err
	}
	return &getCallOutput{Body: c}, nil
}

func (s *server) originate(ctx context.Context, in *originateInput) (*originateOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	from := in.Body.From
	if u := in.Body.FromUser; u != "" {
		if p.Scope == store.ScopeUser && u != p.CRMUser {
			return nil, huma.Error403Forbidden("originate: a user key may call only as its own CRM user")
		}
		exts := s.hub.ExtensionsOf(p.Tenant, u)
		switch len(exts) {
		case 0:
			return nil, huma.Error422UnprocessableEntity(fmt.Sprintf("originate: CRM user %q has no extension mapped; map one at /api/v1/mappings or call with from", u))
		case 1:
			from = exts[0]
		default:
			return nil, huma.Error422UnprocessableEntity(fmt.Sprintf("originate: CRM user %q has %d extensions mapped (%s); name one with from", u, len(exts), strings.Join(exts, ", ")))
		}
	}
	if p.Scope == store.ScopeUser && !slices.Contains(s.hub.ExtensionsOf(p.Tenant, p.CRMUser), from) {
		return nil, huma.Error403Forbidden("originate: a user key may call only from its own extensions")
	}
	ctx, cancel := context.WithTimeout(ctx, originateTimeout)
	defer cancel()
	id, err := s.hub.Originate(ctx, p.Tenant, from, in.Body.To)
	if err != nil {
		return nil, s.controlProblem(ctx, "originate", err)
	}
	return &originateOutput{Location: prefix + "/calls/" + id, Body: originated{ID: id, Status: "originating"}}, nil
}

// principal is who the request acts as; the auth middleware put it there.
func principal(ctx context.Context) (auth.Principal, error) {
	p, ok := auth.FromContext(ctx)
	if !ok || p.Tenant == "" {
		// An operation registered without the bearer requirement: a programming
		// error, and never a reason to serve data without a tenant.
		return auth.Principal{}, huma.Error500InternalServerError("request without a principal")
	}
	return p, nil
}
