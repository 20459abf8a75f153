package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"callbridge/internal/hub"
	"callbridge/internal/store"
)

// testTimeout bounds a connection test: a PBX that does not answer within it is the
// answer.
const testTimeout = 15 * time.Second

type pbxList struct {
	Body struct {
		PBX []hub.PBXStatus `json:"pbx" nullable:"false"`
	}
}

type pbxTestInput struct {
	ID string `path:"id" maxLength:"64"`
}

type pbxTestOutput struct {
	Body struct {
		ID string `json:"id"`
		OK bool   `json:"ok"`
		// Reason is why the test failed, in the PBX's words where it gave any.
		Reason string `json:"reason,omitempty"`
	}
}

func (s *server) registerPBX() {
	huma.Register(s.api, op("listPBX", http.MethodGet, prefix+"/pbx", "List PBX connections with their status", http.StatusOK),
		func(ctx context.Context, _ *struct{}) (*pbxList, error) {
			p, err := principal(ctx)
			if err != nil {
				return nil, err
			}
			out := &pbxList{}
			out.Body.PBX = s.hub.PBXs(p.Tenant)
			if out.Body.PBX == nil {
				out.Body.PBX = []hub.PBXStatus{}
			}
			return out, nil
		})
	o := op("testPBX", http.MethodPost, prefix+"/pbx/{id}/test", "Test a PBX connection", http.StatusOK,
		http.StatusForbidden, http.StatusNotFound, http.StatusNotImplemented)
	o.Description = "Checks that callbridge can reach and log in to the PBX (ELMA365's VoipTestConnection). " +
		"Answers 200 with ok=false and the reason when the PBX cannot be reached; needs an admin or integration key."
	huma.Register(s.api, o, func(ctx context.Context, in *pbxTestInput) (*pbxTestOutput, error) {
		p, err := principal(ctx)
		if err != nil {
			return nil, err
		}
		if p.Scope == store.ScopeUser {
			return nil, huma.Error403Forbidden("testing a PBX needs an admin or integration key")
		}
		known := false
		for _, st := range s.hub.PBXs(p.Tenant) {
			known = known || st.ID == in.ID
		}
		if !known {
			return nil, huma.Error404NotFound("pbx " + in.ID + ": not found")
		}
		tctx, cancel := context.WithTimeout(ctx, testTimeout)
		defer cancel()
		out := &pbxTestOutput{}
		out.Body.ID = in.ID
		err = s.hub.TestPBX(tctx, p.Tenant, in.ID)
		switch {
		case err == nil:
			out.Body.OK = true
		case isKnown(err, hub.ErrUnsupported, hub.ErrNotFound):
			return nil, s.problem(ctx, "test pbx", err)
		default:
			out.Body.Reason = err.Error()
		}
		return out, nil
	})
}
