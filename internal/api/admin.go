package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"callbridge/internal/auth"
	"callbridge/internal/store"
)

// registerAdmin registers the management resources: extensions, mappings and
// integrations.
func (s *server) registerAdmin() {
	s.registerExtensions()
	s.registerMappings()
	s.registerIntegrations()
}

type integrationView struct {
	ClientID  string      `json:"client_id"`
	Scope     store.Scope `json:"scope" enum:"admin,integration,user"`
	CRMUser   string      `json:"crm_user,omitempty" doc:"The CRM user a user-scope key is bound to."`
	KeyPrefix string      `json:"key_prefix" doc:"The key's first characters, to recognise it; the key itself is never shown again."`
	CreatedAt time.Time   `json:"created_at"`
	RotatedAt *time.Time  `json:"rotated_at,omitempty" doc:"When the key was last replaced."`
}

type integrationList struct {
	Body struct {
		Integrations []integrationView `json:"integrations" nullable:"false"`
	}
}

type addIntegrationInput struct {
	Body struct {
		ClientID string      `json:"client_id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9._-]+$" example:"amocrm"`
		Scope    store.Scope `json:"scope" enum:"admin,integration,user"`
		CRMUser  string      `json:"crm_user,omitempty" maxLength:"128" doc:"Required for a user-scope key, refused for others."`
	}
}

type clientRef struct {
	ClientID string `path:"client_id" maxLength:"64"`
}

type issuedKey struct {
	ClientID string      `json:"client_id"`
	Scope    store.Scope `json:"scope" enum:"admin,integration,user"`
	CRMUser  string      `json:"crm_user,omitempty"`
	Key      string      `json:"key" doc:"The API key. It is shown once: only its hash is stored."`
}

type issuedKeyOutput struct {
	CacheControl string `header:"Cache-Control"`
	Location     string `header:"Location"`
	Body         issuedKey
}

func (s *server) registerIntegrations() {
	o := op("listIntegrations", http.MethodGet, prefix+"/integrations", "List integrations", http.StatusOK, http.StatusForbidden)
	o.Description = "The tenant's (client id, key) pairs with their scope; never the keys. Needs an admin key."
	huma.Register(s.api, o, s.listIntegrations)

	o = op("addIntegration", http.MethodPost, prefix+"/integrations", "Add an integration", http.StatusCreated,
		http.StatusForbidden, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
	o.Description = "Creates a client id with a new key, returned once. A user-scope key needs crm_user. Needs an admin key."
	huma.Register(s.api, o, s.addIntegration)

	o = op("replaceIntegrationKey", http.MethodPost, prefix+"/integrations/{client_id}/replace", "Replace an integration's key", http.StatusOK,
		http.StatusForbidden, http.StatusNotFound)
	o.Description = "Issues a new key, returned once; the old key stops working at once. Needs an admin key."
	huma.Register(s.api, o, s.replaceIntegration)

	o = op("removeIntegration", http.MethodDelete, prefix+"/integrations/{client_id}", "Remove an integration", http.StatusNoContent,
		http.StatusForbidden, http.StatusNotFound, http.StatusConflict)
	o.Description = "Deletes the client and its key; the key stops working at once. A key cannot remove itself (409). Needs an admin key."
	huma.Register(s.api, o, s.removeIntegration)
}

// admin returns the principal of an admin key, or 403.
func admin(ctx context.Context, what string) (auth.Principal, error) {
	p, err := principal(ctx)
	if err != nil {
		return p, err
	}
	if p.Scope != store.ScopeAdmin {
		return p, huma.Error403Forbidden(what + " needs an admin key")
	}
	return p, nil
}

func (s *server) keys() auth.Manager { return auth.Manager{Store: s.hub.Store(), Auth: s.auth} }

func (s *server) listIntegrations(ctx context.Context, _ *struct{}) (*integrationList, error) {
	p, err := admin(ctx, "listing integrations")
	if err != nil {
		return nil, err
	}
	ins, err := s.keys().List(ctx, p.Tenant)
	if err != nil {
		return nil, s.problem(ctx, "list integrations", err)
	}
	out := &integrationList{}
	out.Body.Integrations = make([]integrationView, 0, len(ins))
	for _, in := range ins {
		v := integrationView{ClientID: in.ClientID, Scope: in.Scope, CRMUser: in.CRMUser, KeyPrefix: in.KeyPrefix, CreatedAt: in.CreatedAt}
		if !in.RotatedAt.IsZero() {
			t := in.RotatedAt
			v.RotatedAt = &t
		}
		out.Body.Integrations = append(out.Body.Integrations, v)
	}
	return out, nil
}

func (s *server) addIntegration(ctx context.Context, in *addIntegrationInput) (*issuedKeyOutput, error) {
	p, err := admin(ctx, "adding an integration")
	if err != nil {
		return nil, err
	}
	b := in.Body
	key, err := s.keys().Add(ctx, p.Tenant, b.ClientID, b.Scope, b.CRMUser)
	switch {
	case errors.Is(err, store.ErrExists):
		return nil, huma.Error409Conflict("integration " + b.ClientID + " exists already")
	case errors.Is(err, store.ErrInvalid):
		return nil, huma.Error422UnprocessableEntity("add integration: " + err.Error())
	case err != nil:
		return nil, s.problem(ctx, "add integration", err)
	}
	return &issuedKeyOutput{CacheControl: "no-store", Location: prefix + "/integrations/" + b.ClientID,
		Body: issuedKey{ClientID: b.ClientID, Scope: b.Scope, CRMUser: b.CRMUser, Key: key}}, nil
}

func (s *server) replaceIntegration(ctx context.Context, in *clientRef) (*issuedKeyOutput, error) {
	p, err := admin(ctx, "replacing a key")
	if err != nil {
		return nil, err
	}
	what := "integration " + in.ClientID
	ins, err := s.keys().List(ctx, p.Tenant)
	if err != nil {
		return nil, s.problem(ctx, what, err)
	}
	var cur *store.Integration
	for i := range ins {
		if ins[i].ClientID == in.ClientID {
			cur = &ins[i]
		}
	}
	if cur == nil {
		return nil, huma.Error404NotFound(what + ": not found")
	}
	key, err := s.keys().Replace(ctx, p.Tenant, in.ClientID)
	if err != nil {
		return nil, s.problem(ctx, what, err)
	}
	return &issuedKeyOutput{CacheControl: "no-store", Location: prefix + "/integrations/" + in.ClientID,
		Body: issuedKey{ClientID: cur.ClientID, Scope: cur.Scope, CRMUser: cur.CRMUser, Key: key}}, nil
}

func (s *server) removeIntegration(ctx context.Context, in *clientRef) (*struct{}, error) {
	p, err := admin(ctx, "removing an integration")
	if err != nil {
		return nil, err
	}
	if in.ClientID == p.ClientID {
		// Removing the key that makes the request could leave the tenant with no admin.
		return nil, huma.Error409Conflict("integration " + in.ClientID + ": a key cannot remove itself; use another admin key")
	}
	if err := s.keys().Remove(ctx, p.Tenant, in.ClientID); err != nil {
		return nil, s.problem(ctx, "integration "+in.ClientID, err)
	}
	return nil, nil
}
