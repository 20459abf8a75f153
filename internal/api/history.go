package api

import (
	"context"
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"callbridge/internal/auth"
	"callbridge/internal/call"
	"callbridge/internal/store"
)

// Bounds of the CSV export: rows read from the store per page, and rows one export
// writes at most.
const (
	csvPage    = 1000
	csvMaxRows = 100000
)

// csvTruncated is the trailer an export sets to "true" when more calls matched than
// it wrote. It is a trailer, not a header, because the export streams: whether the
// cap was reached is known only after the last row.
const csvTruncated = "X-Truncated"

// csvColumns are the export's columns, in order.
var csvColumns = []string{"id", "started_at", "direction", "state", "customer", "customer_e164", "did", "answered_by", "rung",
	"disposition", "cause", "ring_s", "talk_s", "hold_s", "connected_s", "transfers", "recording"}

type callEventsInput struct {
	ID    string `path:"id" maxLength:"64"`
	Limit int    `query:"limit" minimum:"1" maximum:"5000" default:"1000"`
}

type callTimeline struct {
	Events    []wireEvent `json:"events" nullable:"false" doc:"The call's events, oldest first, as GET /api/v1/events returns them."`
	Truncated bool        `json:"truncated" doc:"The call has more events than limit; the oldest are returned."`
}

type callEventsOutput struct {
	Body callTimeline
}

type exportCallsInput struct {
	CallFilters
	Limit int `query:"limit" minimum:"1" maximum:"100000" default:"100000" doc:"Rows at most; when more calls match, the X-Truncated trailer is true."`
}

type exportCallsOutput struct {
	ContentType        string `header:"Content-Type"`
	ContentDisposition string `header:"Content-Disposition"`
	CacheControl       string `header:"Cache-Control"`
	Trailer            string `header:"Trailer"`
	Body               func(huma.Context)
}

func (s *server) registerHistory() {
	o := op("getCallEvents", http.MethodGet, prefix+"/calls/{id}/events", "Get a call's timeline", http.StatusOK,
		http.StatusNotFound, http.StatusUnprocessableEntity)
	o.Description = "The events of one call from the event log, oldest first. " +
		"The same scope as GET /api/v1/calls/{id}: a user-scope key gets 404 for a call that does not concern its extensions."
	huma.Register(s.api, o, s.getCallEvents)

	o = op("exportCalls", http.MethodGet, prefix+"/calls.csv", "Export call history as CSV", http.StatusOK,
		http.StatusBadRequest, http.StatusUnprocessableEntity)
	o.Description = "The calls GET /api/v1/calls would list with the same filters, newest first, all pages in one CSV " +
		"(RFC 4180, UTF-8, a header row) streamed as an attachment. At most `limit` rows (100000): when more calls match, " +
		"the response ends with the HTTP trailer `X-Truncated: true` (a trailer because the export streams). " +
		"Columns: " + strings.Join(csvColumns, ", ") + "; rung is space-separated, transfers are `kind:from>to` separated by spaces, " +
		"durations are seconds. A cell starting with =, +, -, @, tab or carriage return is prefixed with a single quote ' so a " +
		"spreadsheet opening the file never evaluates it as a formula (customer numbers come from callers and are not trusted); " +
		"so E.164 numbers read '+7…."
	o.Responses = map[string]*huma.Response{
		"200": {
			Description: "The calls as CSV.",
			Content:     map[string]*huma.MediaType{"text/csv": {Schema: &huma.Schema{Type: huma.TypeString}}},
			Headers: map[string]*huma.Param{
				"Content-Disposition": {Description: "attachment; filename=calls-<time>.csv", Schema: &huma.Schema{Type: huma.TypeString}},
				"Trailer":             {Description: "X-Truncated: the trailer that tells a truncated export.", Schema: &huma.Schema{Type: huma.TypeString}},
			},
		},
	}
	huma.Register(s.api, o, s.exportCalls)
}

// visibleCall returns call id if key p may see it: a user key gets not found for a
// call that does not concern its extensions.
func (s *server) visibleCall(ctx context.Context, p auth.Principal, id string) (*call.Call, error) {
	c, err := s.hub.Store().Call(ctx, p.Tenant, id)
	if err != nil {
		return nil, s.problem(ctx, "call "+id, err)
	}
	if p.Scope == store.ScopeUser && !slices.ContainsFunc(s.hub.ExtensionsOf(p.Tenant, p.CRMUser), c.Concerns) {
		return nil, huma.Error404NotFound("call " + id + ": not found")
	}
	return c, nil
}

func (s *server) getCallEvents(ctx context.Context, in *callEventsInput) (*callEventsOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.visibleCall(ctx, p, in.ID); err != nil {
		return nil, err
	}
	evs, err := s.hub.Store().CallEvents(ctx, p.Tenant, in.ID, in.Limit+1)
	if err != nil {
		return nil, s.problem(ctx, "call "+in.ID+" events", err)
	}
	out := &callEventsOutput{Body: callTimeline{Events: make([]wireEvent, 0, min(len(evs), in.Limit))}}
	if len(evs) > in.Limit {
		evs, out.Body.Truncated = evs[:in.Limit], true
	}
	for _, ev := range evs {
		out.Body.Events = append(out.Body.Events, ev.Wire())
	}
	return out, nil
}

func (s *server) exportCalls(ctx context.Context, in *exportCallsInput) (*exportCallsOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	f, none := s.filter(p, &in.CallFilters)
	var first store.CallPage
	if !none {
		// The first page is read before anything is written, so a bad request or a
		// failing store still gets a problem response; a failure later can only cut
		// the stream short (and is logged).
		f.Limit = min(csvPage, in.Limit)
		if first, err = s.hub.Store().Calls(ctx, f); err != nil {
			return nil, s.problem(ctx, "export calls", err)
		}
	}
	name := "calls-" + time.Now().UTC().Format("20060102T150405Z") + ".csv"
	return &exportCallsOutput{
		ContentType:        "text/csv; charset=utf-8",
		ContentDisposition: `attachment; filename="` + name + `"`,
		CacheControl:       "no-store",
		Trailer:            csvTruncated,
		Body: func(hc huma.Context) {
			hc.SetStatus(http.StatusOK)
			_, w := humago.Unwrap(hc)
			truncated := s.writeCSV(hc.Context(), w, f, first, in.Limit)
			if truncated {
				w.Header().Set(csvTruncated, "true")
			}
		},
	}, nil
}

// writeCSV writes the header row and the calls of page and of the pages after it,
// at most limit rows, and reports whether more calls matched than were written.
func (s *server) writeCSV(ctx context.Context, w http.ResponseWriter, f store.CallFilter, page store.CallPage, limit int) bool {
	cw := csv.NewWriter(w)
	rec := make([]string, len(csvColumns))
	if err := cw.Write(csvColumns); err != nil {
		return false
	}
	written := 0
	for {
		for _, c := range page.Calls {
			csvRecord(rec, c)
			if err := cw.Write(rec); err != nil {
				return false // the client went away
			}
			written++
		}
		cw.Flush()
		if cw.Error() != nil || page.Next == "" {
			return false
		}
		if written >= limit {
			return true
		}
		f.Cursor, f.Limit = page.Next, min(csvPage, limit-written)
		var err error
		if page, err = s.hub.Store().Calls(ctx, f); err != nil {
			if ctx.Err() == nil {
				s.log.Error("api: export calls: the export is cut short", "rows", written, "err", err)
			}
			return false
		}
	}
}

// csvRecord fills rec with c's columns (csvColumns).
func csvRecord(rec []string, c *call.Call) {
	transfers := make([]string, 0, len(c.Transfers))
	for _, t := range c.Transfers {
		transfers = append(transfers, string(t.Kind)+":"+t.From+">"+t.To)
	}
	secs := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	rec[0] = c.ID
	rec[1] = c.StartedAt.UTC().Format(time.RFC3339)
	rec[2] = string(c.Direction)
	rec[3] = string(c.State)
	rec[4] = c.Customer
	rec[5] = c.CustomerE164
	rec[6] = c.DID
	rec[7] = c.AnsweredBy
	rec[8] = strings.Join(c.Rung, " ")
	rec[9] = string(c.Disposition)
	rec[10] = c.Cause
	rec[11] = secs(c.RingS)
	rec[12] = secs(c.TalkS)
	rec[13] = secs(c.HoldS)
	rec[14] = secs(c.ConnectedS)
	rec[15] = strings.Join(transfers, " ")
	rec[16] = c.Recording
	for i, v := range rec {
		rec[i] = csvSafe(v)
	}
}

// csvSafe defuses a cell a spreadsheet would read as a formula (CSV injection): a
// value starting with =, +, -, @, tab or carriage return gets a leading single quote,
// which spreadsheets take as "this is text". encoding/csv quotes what CSV needs
// quoted, but quoting does not stop a spreadsheet from evaluating the cell, and
// customer numbers, causes and names come from callers and PBXs.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
