package api

import (
	"context"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"callbridge/internal/store"
)

type extensionView struct {
	Number     string `json:"number"`
	PBX        string `json:"pbx"`
	Name       string `json:"name,omitempty"`
	APIEnabled bool   `json:"api_enabled" doc:"Whether API keys may drive this extension's calls."`
	Status     string `json:"status,omitempty" doc:"The device status the PBX last reported (available, busy, ringing, offline...)."`
	Agent      string `json:"agent_status,omitempty" doc:"The queue agent status the PBX last reported (available, paused...)."`
}

type extensionList struct {
	Body struct {
		Extensions []extensionView `json:"extensions" nullable:"false"`
	}
}

type setExtensionInput struct {
	Number string `path:"number" maxLength:"64" doc:"The extension's number."`
	Body   struct {
		APIEnabled bool `json:"api_enabled" doc:"Enable or disable API control of the extension."`
	}
}

type extensionOutput struct {
	Body extensionView
}

type agentStatusInput struct {
	Number string `path:"number" maxLength:"64" doc:"The extension's number."`
	Body   struct {
		Status string `json:"status" minLength:"1" maxLength:"32" pattern:"^[A-Za-z0-9_-]+$" doc:"The agent status: available, or paused (or a PBX-specific pause reason such as lunch)." example:"paused"`
	}
}

type agentStatusOutput struct {
	Body struct {
		Extension   string `json:"extension"`
		AgentStatus string `json:"agent_status"`
		Status      string `json:"status" enum:"sent" doc:"The PBX accepted the command; agent.status events report the change."`
	}
}

func (s *server) registerExtensions() {
	o := op("listExtensions", http.MethodGet, prefix+"/extensions", "List extensions with their status", http.StatusOK)
	o.Description = "The tenant's extensions, whether each may be driven through the API, and the status the PBX last reported. " +
		"A user-scope key sees only its CRM user's extensions."
	huma.Register(s.api, o, s.listExtensions)

	o = op("setExtension", http.MethodPut, prefix+"/extensions/{number}", "Enable or disable API control of an extension", http.StatusOK,
		http.StatusForbidden, http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
	o.Description = "An extension not enabled cannot be driven through the API by any key. Needs an admin key."
	huma.Register(s.api, o, s.setExtension)

	o = op("setAgentStatus", http.MethodPut, prefix+"/extensions/{number}/agent-status", "Set an extension's agent status", http.StatusAccepted,
		http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity,
		http.StatusNotImplemented, http.StatusBadGateway, http.StatusServiceUnavailable)
	o.Description = "Asks the extension's PBX to set its agent status (queue pause where the PBX has queues); agent.status events report " +
		"the change. A user-scope key may set only its own extensions; the extension must be enabled for API control."
	huma.Register(s.api, o, s.setAgentStatus)
}

func (s *server) listExtensions(ctx context.Context, _ *struct{}) (*extensionList, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	exts, err := s.hub.Store().Extensions(ctx, p.Tenant)
	if err != nil {
		return nil, s.problem(ctx, "list extensions", err)
	}
	var own []string
	if p.Scope == store.ScopeUser {
		own = s.hub.ExtensionsOf(p.Tenant, p.CRMUser)
	}
	out := &extensionList{}
	out.Body.Extensions = []extensionView{}
	for _, e := range exts {
		if p.Scope == store.ScopeUser && !slices.Contains(own, e.Number) {
			continue
		}
		out.Body.Extensions = append(out.Body.Extensions, s.extensionView(e))
	}
	return out, nil
}

func (s *server) extensionView(e store.Extension) extensionView {
	v := extensionView{Number: e.Number, PBX: e.PBX, Name: e.Name, APIEnabled: e.APIEnabled, Status: e.Status}
	status, agent := s.hub.ExtensionStatus(e.Tenant, e.Number)
	if status != "" {
		v.Status = status
	}
	v.Agent = agent
	return v
}

func (s *server) setExtension(ctx context.Context, in *setExtensionInput) (*extensionOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if p.Scope != store.ScopeAdmin {
		return nil, huma.Error403Forbidden("changing an extension needs an admin key")
	}
	what := "extension " + in.Number
	if err := s.hub.SetExtensionAPI(ctx, p.Tenant, in.Number, in.Body.APIEnabled); err != nil {
		return nil, s.problem(ctx, what, err)
	}
	exts, err := s.hub.Store().Extensions(ctx, p.Tenant)
	if err != nil {
		return nil, s.problem(ctx, what, err)
	}
	for _, e := range exts {
		if e.Number == in.Number {
			return &extensionOutput{Body: s.extensionView(e)}, nil
		}
	}
	// Removed between the change and the read.
	return nil, huma.Error404NotFound(what + ": not found")
}

func (s *server) setAgentStatus(ctx context.Context, in *agentStatusInput) (*agentStatusOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	what := "agent status of extension " + in.Number
	if p.Scope == store.ScopeUser && !slices.Contains(s.hub.ExtensionsOf(p.Tenant, p.CRMUser), in.Number) {
		return nil, huma.Error403Forbidden(what + ": a user key may set only its own extensions")
	}
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	if err := s.hub.SetAgentStatus(ctx, p.Tenant, in.Number, in.Body.Status); err != nil {
		return nil, s.controlProblem(ctx, what, err)
	}
	out := &agentStatusOutput{}
	out.Body.Extension, out.Body.AgentStatus, out.Body.Status = in.Number, in.Body.Status, "sent"
	return out, nil
}
