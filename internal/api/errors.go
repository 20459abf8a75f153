package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"callbridge/internal/call"
	"callbridge/internal/hub"
	"callbridge/internal/store"
)

// problem maps an error of the hub or the store to a problem response. Details are
// written for the caller: internal failures are logged, never described.
func (s *server) problem(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(err, hub.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return huma.Error404NotFound(what + ": not found")
	case errors.Is(err, hub.ErrEnded):
		return huma.Error409Conflict(what + ": the call has ended")
	case errors.Is(err, hub.ErrNotAllowed):
		return huma.Error409Conflict(what + ": " + err.Error())
	case errors.Is(err, hub.ErrNotEnabled):
		return huma.Error403Forbidden(what + ": the extension is not enabled for API control")
	case errors.Is(err, hub.ErrNoConnector):
		return huma.Error503ServiceUnavailable(what + ": the PBX is not connected to this node")
	case errors.Is(err, hub.ErrStopped):
		return huma.Error503ServiceUnavailable(what + ": shutting down")
	case errors.Is(err, hub.ErrUnsupported):
		return huma.NewError(http.StatusNotImplemented, what+": "+err.Error())
	case errors.Is(err, call.ErrInvalid), errors.Is(err, store.ErrInvalid):
		return huma.Error400BadRequest(what + ": " + err.Error())
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The client went away; nobody reads this answer.
		return huma.NewError(499, "client closed request")
	case errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("api: timeout", "op", what, "err", err)
		return huma.Error504GatewayTimeout(what + ": timed out")
	}
	s.log.Error("api: internal error", "op", what, "err", err)
	return huma.Error500InternalServerError(what + ": internal error")
}

// controlProblem is problem for errors of commands sent to a PBX: an error the hub
// does not know is the PBX's (or its connector's) refusal, passed on as 502 with
// its message so the caller can see what the PBX said.
func (s *server) controlProblem(ctx context.Context, what string, err error) error {
	if isKnown(err, hub.ErrNotFound, hub.ErrEnded, hub.ErrNotAllowed, hub.ErrNotEnabled, hub.ErrNoConnector,
		hub.ErrStopped, hub.ErrUnsupported, call.ErrInvalid, context.Canceled, context.DeadlineExceeded) {
		return s.problem(ctx, what, err)
	}
	s.log.Warn("api: PBX refused a command", "op", what, "err", err)
	return huma.NewError(http.StatusBadGateway, err.Error())
}

// writeProblem writes a problem document outside huma (health and fallback routes),
// in the same shape huma writes.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(&huma.ErrorModel{Title: http.StatusText(status), Status: status, Detail: detail})
}

// isKnown reports whether err is one of targets.
func isKnown(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
