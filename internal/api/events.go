package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"callbridge/internal/auth"
	"callbridge/internal/call"
	"callbridge/internal/hub"
	"callbridge/internal/store"
)

// readBatch is how many events are taken from the subscription at once.
const readBatch = 1024

type eventsInput struct {
	After int64 `query:"after" minimum:"0" doc:"Return events after this seq: the next of the previous answer. Omitted: only events from now on."`
	Wait  int   `query:"wait" minimum:"0" maximum:"60" default:"0" doc:"Seconds to wait for an event when there is none yet (0: answer at once)."`
	Limit int   `query:"limit" minimum:"1" maximum:"1000" default:"100"`

	afterSet bool
}

// Resolve tells an omitted after (start from now) from after=0 (the whole log).
func (in *eventsInput) Resolve(ctx huma.Context) []error {
	in.afterSet = ctx.Query("after") != ""
	return nil
}

// wireEvent is an event as encoded once by the hub (call.Event.Wire): it is written
// out as it is, never decoded and encoded again per reader.
type wireEvent []byte

// MarshalJSON returns the event's JSON unchanged.
func (e wireEvent) MarshalJSON() ([]byte, error) { return e, nil }

// Schema describes a wire event as call.Event's JSON shape, which it is.
func (wireEvent) Schema(r huma.Registry) *huma.Schema {
	return r.Schema(reflect.TypeFor[call.Event](), true, "Event")
}

type eventPage struct {
	Events []wireEvent `json:"events" nullable:"false" doc:"Events the key may see, oldest first."`
	Next   int64       `json:"next" doc:"Pass as after in the next request. It can be past the last event returned: events the key may not see are skipped, not re-read."`
}

type eventsOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         eventPage
}

func (s *server) registerEvents() {
	o := op("pollEvents", http.MethodGet, prefix+"/events", "Long-poll call events", http.StatusOK,
		http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusServiceUnavailable)
	o.Description = "Answers at once with the events after `after` that the key may see; when there are none, waits up to `wait` seconds for one. " +
		"Resume with `after` = the `next` of the previous answer: no event is lost or repeated. " +
		"Integration and admin keys see all events of their tenant; a user-scope key sees the events that concern its CRM user or its extensions."
	huma.Register(s.api, o, s.pollEvents)
}

func (s *server) pollEvents(ctx context.Context, in *eventsInput) (*eventsOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	// The store's newest seq, not the hub's: right after a restart the hub may not
	// have loaded its position yet, and a client resuming then must neither be told
	// its cursor is invalid nor be replayed the whole log.
	last, err := s.hub.Store().LastSeq(ctx)
	if err != nil {
		return nil, s.problem(ctx, "events", err)
	}
	after := in.After
	if !in.afterSet {
		after = last
	}
	if after > last {
		// A cursor from another database (restored, reset): waiting would never
		// deliver anything, so say so instead of hanging forever.
		return nil, huma.Error400BadRequest(fmt.Sprintf("after %d is beyond the newest event (%d); resume from %d or less", after, last, last))
	}
	var exts []string
	if p.Scope == store.ScopeUser {
		exts = s.hub.ExtensionsOf(p.Tenant, p.CRMUser)
	}
	waitCtx := ctx
	if in.Wait > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, time.Duration(in.Wait)*time.Second)
		defer cancel()
	}

	sub := s.hub.SubscribeTenant(after, p.Tenant)
	page := eventPage{Events: []wireEvent{}, Next: after}
	scanned := 0
	for scanned < s.maxScan && len(page.Events) < in.Limit {
		if sub.Cursor() >= s.hub.LastSeq() {
			if len(page.Events) > 0 || in.Wait == 0 {
				break
			}
			if err := sub.Wait(waitCtx); err != nil {
				if ctx.Err() != nil {
					return nil, s.problem(ctx, "events", ctx.Err())
				}
				if errors.Is(err, hub.ErrStopped) {
					return nil, s.problem(ctx, "events", err)
				}
				break // waited long enough: answer with nothing and the same next
			}
			continue
		}
		// The cursor is behind the newest event, so Next answers at once.
		evs, err := sub.Next(ctx, min(s.maxScan-scanned, readBatch))
		if err != nil {
			return nil, s.problem(ctx, "events", err)
		}
		full := false
		for _, ev := range evs {
			scanned++
			page.Next = ev.Seq
			if visible(ev, p, exts) {
				page.Events = append(page.Events, ev.Wire())
				if full = len(page.Events) == in.Limit; full {
					break
				}
			}
		}
		if !full {
			// The subscription stepped over other tenants' events too: the next page
			// starts after them.
			page.Next = sub.Cursor()
		}
	}
	return &eventsOutput{CacheControl: "no-store", Body: page}, nil
}

// visible reports whether the key p may see ev. Only the fields the store's log
// returns are read (Tenant, Extensions, Users), so events read back from the store
// and events from the hub's memory are judged alike.
func visible(ev *call.Event, p auth.Principal, exts []string) bool {
	if ev.Tenant != p.Tenant {
		return false
	}
	if p.Scope != store.ScopeUser {
		return true
	}
	if ev.Concerns("", p.CRMUser) {
		return true
	}
	for _, e := range exts {
		if ev.Concerns(e, "") {
			return true
		}
	}
	return false
}
