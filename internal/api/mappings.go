package api

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"callbridge/internal/store"
)

type mappingView struct {
	CRMUser   string `json:"crm_user" minLength:"1" maxLength:"128" doc:"The CRM user's id." example:"42"`
	Extension string `json:"extension" minLength:"1" maxLength:"64" doc:"An extension of the tenant." example:"101"`
}

type mappingList struct {
	Body struct {
		Mappings []mappingView `json:"mappings" nullable:"false"`
	}
}

type addMappingInput struct {
	Body mappingView
}

type addMappingOutput struct {
	Body mappingView
}

type removeMappingInput struct {
	CRMUser   string `query:"crm_user" required:"true" minLength:"1" maxLength:"128"`
	Extension string `query:"extension" required:"true" minLength:"1" maxLength:"64"`
}

func (s *server) registerMappings() {
	o := op("listMappings", http.MethodGet, prefix+"/mappings", "List CRM user ↔ extension mappings", http.StatusOK, http.StatusForbidden)
	o.Description = "Needs an admin or integration key."
	huma.Register(s.api, o, s.listMappings)

	o = op("addMapping", http.MethodPost, prefix+"/mappings", "Map a CRM user to an extension", http.StatusCreated,
		http.StatusForbidden, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
	o.Description = "Events of the extension's calls name the CRM user from now on, and the user's keys see those calls. " +
		"The extension must exist; an existing mapping gives 409. Needs an admin key."
	huma.Register(s.api, o, s.addMapping)

	o = op("removeMapping", http.MethodDelete, prefix+"/mappings", "Remove a CRM user ↔ extension mapping", http.StatusNoContent,
		http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity)
	o.Description = "Needs an admin key."
	huma.Register(s.api, o, s.removeMapping)
}

func (s *server) listMappings(ctx context.Context, _ *struct{}) (*mappingList, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if p.Scope == store.ScopeUser {
		return nil, huma.Error403Forbidden("listing mappings needs an admin or integration key")
	}
	ms, err := s.hub.Store().Mappings(ctx, p.Tenant)
	if err != nil {
		return nil, s.problem(ctx, "list mappings", err)
	}
	out := &mappingList{}
	out.Body.Mappings = make([]mappingView, 0, len(ms))
	for _, m := range ms {
		out.Body.Mappings = append(out.Body.Mappings, mappingView{CRMUser: m.CRMUser, Extension: m.Extension})
	}
	return out, nil
}

func (s *server) addMapping(ctx context.Context, in *addMappingInput) (*addMappingOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if p.Scope != store.ScopeAdmin {
		return nil, huma.Error403Forbidden("changing mappings needs an admin key")
	}
	exts, err := s.hub.Store().Extensions(ctx, p.Tenant)
	if err != nil {
		return nil, s.problem(ctx, "add mapping", err)
	}
	if !slices.ContainsFunc(exts, func(e store.Extension) bool { return e.Number == in.Body.Extension }) {
		return nil, huma.Error422UnprocessableEntity("add mapping: no such extension",
			&huma.ErrorDetail{Location: "body.extension", Message: "no such extension", Value: in.Body.Extension})
	}
	err = s.hub.Store().AddMapping(ctx, store.Mapping{Tenant: p.Tenant, CRMUser: in.Body.CRMUser, Extension: in.Body.Extension})
	if errors.Is(err, store.ErrExists) {
		return nil, huma.Error409Conflict("add mapping: " + in.Body.CRMUser + " is mapped to " + in.Body.Extension + " already")
	}
	if err != nil {
		return nil, s.problem(ctx, "add mapping", err)
	}
	if err := s.hub.Reload(ctx); err != nil {
		return nil, s.problem(ctx, "add mapping", err)
	}
	return &addMappingOutput{Body: in.Body}, nil
}

func (s *server) removeMapping(ctx context.Context, in *removeMappingInput) (*struct{}, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if p.Scope != store.ScopeAdmin {
		return nil, huma.Error403Forbidden("changing mappings needs an admin key")
	}
	what := "mapping " + in.CRMUser + " → " + in.Extension
	if err := s.hub.Store().RemoveMapping(ctx, store.Mapping{Tenant: p.Tenant, CRMUser: in.CRMUser, Extension: in.Extension}); err != nil {
		return nil, s.problem(ctx, what, err)
	}
	if err := s.hub.Reload(ctx); err != nil {
		return nil, s.problem(ctx, what, err)
	}
	return nil, nil
}
