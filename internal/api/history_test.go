package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"callbridge/internal/call"
	"callbridge/internal/store"
	"callbridge/internal/store/storetest"
)

func TestCallEvents(t *testing.T) {
	e := newEnv(t)
	e.seed()

	t.Run("timeline in order", func(t *testing.T) {
		r := e.get("/api/v1/calls/"+e.calls["c1"]+"/events", e.keys["crm"])
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var tl struct {
			Events []struct {
				Seq  int64          `json:"seq"`
				Type call.EventType `json:"type"`
				Call *call.Call     `json:"call"`
			} `json:"events"`
			Truncated bool `json:"truncated"`
		}
		r.json(t, &tl)
		if len(tl.Events) < 3 || tl.Truncated {
			t.Fatalf("timeline %s", r.body)
		}
		for i, ev := range tl.Events {
			if ev.Call == nil || ev.Call.ID != e.calls["c1"] {
				t.Fatalf("event %d is not about c1: %s", i, r.body)
			}
			if i > 0 && ev.Seq <= tl.Events[i-1].Seq {
				t.Fatalf("events out of order: %s", r.body)
			}
		}
		if last := tl.Events[len(tl.Events)-1]; last.Call.State != call.StateEnded {
			t.Fatalf("the last event's call is %s, want ended", last.Call.State)
		}
		// Byte for byte what the log holds (Wire), as GET /events sends it.
		evs, err := e.st.CallEvents(context.Background(), "default", e.calls["c1"], 0)
		if err != nil {
			t.Fatal(err)
		}
		var raw struct{ Events []json.RawMessage }
		r.json(t, &raw)
		for i := range evs {
			if !bytes.Equal(raw.Events[i], evs[i].Wire()) {
				t.Fatalf("event %d\n got %s\nwant %s", i, raw.Events[i], evs[i].Wire())
			}
		}

		r = e.get("/api/v1/calls/"+e.calls["c1"]+"/events?limit=1", e.keys["crm"])
		r.json(t, &tl)
		if len(tl.Events) != 1 || !tl.Truncated {
			t.Fatalf("limit=1: %s", r.body)
		}
	})

	tests := []struct {
		name   string
		key    string
		call   string
		status int
	}{
		{"admin", "admin", "c2", http.StatusOK},
		{"integration", "crm", "c5", http.StatusOK},
		{"user own call", "alice", "c1", http.StatusOK},
		{"user own internal call", "bob", "c4", http.StatusOK},
		{"user other's call", "alice", "c2", http.StatusNotFound},
		{"user without extensions", "carol", "c1", http.StatusNotFound},
		{"other tenant's call", "crm", "a1", http.StatusNotFound},
		{"other tenant key", "acme", "c1", http.StatusNotFound},
		{"other tenant own call", "acme-alice", "a1", http.StatusOK},
		{"unknown call", "admin", "nope", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := e.calls[tt.call]
			if !ok {
				id = tt.call
			}
			r := e.get("/api/v1/calls/"+id+"/events", e.keys[tt.key])
			if tt.status != http.StatusOK {
				problem(t, r, tt.status)
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var tl struct{ Events []json.RawMessage }
			r.json(t, &tl)
			if len(tl.Events) == 0 {
				t.Fatalf("no events: %s", r.body)
			}
		})
	}
	problem(t, e.get("/api/v1/calls/"+e.calls["c1"]+"/events", ""), http.StatusUnauthorized)
}

// getCSV fetches an export and parses it back.
func (e *env) getCSV(t *testing.T, query, key string) (response, [][]string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/api/v1/calls.csv?"+query, nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := e.srv.Client().Do(req)
	must(t, err)
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	must(t, err)
	// The truncation flag is a trailer (known after the body): read, it joins the headers.
	h := res.Header.Clone()
	for k, v := range res.Trailer {
		h[k] = v
	}
	r := response{status: res.StatusCode, header: h, body: b}
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cd := r.header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="calls-`) {
		t.Fatalf("Content-Disposition %q", cd)
	}
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatalf("parse CSV: %v\n%s", err, r.body)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != "id,started_at,direction,state,customer,customer_e164,did,answered_by,rung,disposition,cause,ring_s,talk_s,hold_s,connected_s,transfers,recording" {
		t.Fatalf("header row %v", recs)
	}
	return r, recs[1:]
}

func TestExportCalls(t *testing.T) {
	e := newEnv(t)
	e.seed()
	names := func(recs [][]string) []string {
		byID := map[string]string{}
		for n, id := range e.calls {
			byID[id] = n
		}
		out := []string{}
		for _, r := range recs {
			out = append(out, byID[r[0]])
		}
		return out
	}

	tests := []struct {
		name  string
		key   string
		query string
		want  []string
	}{
		{"admin", "admin", "", []string{"c5", "c4", "c3", "c2", "c1"}},
		{"integration", "crm", "", []string{"c5", "c4", "c3", "c2", "c1"}},
		{"integration filtered", "crm", "direction=in&extension=101,102", []string{"c2", "c1"}},
		{"phone", "crm", "phone=%2B79066800404", []string{"c1"}},
		{"user own", "alice", "", []string{"c4", "c3", "c1"}},
		{"user own filtered", "alice", "state=ended", []string{"c1"}},
		{"user other's extension", "alice", "extension=102", []string{}},
		{"user without extensions", "carol", "", []string{}},
		{"other tenant", "acme", "", []string{"a1"}},
		{"other tenant user", "acme-alice", "", []string{"a1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, recs := e.getCSV(t, tt.query, e.keys[tt.key])
			if d := cmp.Diff(tt.want, names(recs)); d != "" {
				t.Fatalf("rows (-want +got):\n%s", d)
			}
			if r.header.Get("X-Truncated") != "" {
				t.Fatal("X-Truncated on a complete export")
			}
		})
	}

	t.Run("row content", func(t *testing.T) {
		_, recs := e.getCSV(t, "disposition=answered", e.keys["crm"])
		want := []string{e.calls["c1"], "2025-03-01T10:00:00Z", "in", "ended", "89066800404", "'+79066800404", "", "101", "101",
			"answered", "normal", "5", "45", "0", "45", "", ""}
		if d := cmp.Diff([][]string{want}, recs); d != "" {
			t.Fatalf("row (-want +got):\n%s", d)
		}
	})

	t.Run("bad filters", func(t *testing.T) {
		problem(t, e.get("/api/v1/calls.csv?direction=sideways", e.keys["crm"]), http.StatusUnprocessableEntity)
		problem(t, e.get("/api/v1/calls.csv", ""), http.StatusUnauthorized)
	})

	t.Run("formula injection", func(t *testing.T) {
		e.calls["evil"] = "evil-call"
		e.pbx.update(call.Update{PBXCallID: "p-evil", CallID: "evil-call", Time: t0.Add(time.Hour), Kind: call.KindRing,
			Direction: call.DirectionIn, Customer: `=HYPERLINK("http://x","a,b")`, Extensions: []string{"101"}})
		e.pbx.update(call.Update{PBXCallID: "p-evil", Time: t0.Add(time.Hour + time.Second), Kind: call.KindEnd, Cause: "@SUM(1+1)"})
		e.waitCall("default", "evil", call.StateEnded)
		_, recs := e.getCSV(t, "extension=101&state=ended", e.keys["crm"])
		if len(recs) == 0 || recs[0][0] != "evil-call" {
			t.Fatalf("rows %v", recs)
		}
		if got := recs[0][4]; got != `'=HYPERLINK("http://x","a,b")` {
			t.Errorf("customer cell %q", got)
		}
		if got := recs[0][10]; got != "'@SUM(1+1)" {
			t.Errorf("cause cell %q", got)
		}
	})
}

// TestExportCallsPaging exports more calls than one store page and caps the rows.
func TestExportCallsPaging(t *testing.T) {
	e := newEnv(t)
	const n = 2100
	var rows []store.CallRow
	for i := range n {
		c := storetest.NewCall("default", fmt.Sprintf("bulk-%04d", i), t0.Add(time.Duration(i)*time.Second), "101")
		rows = append(rows, storetest.Row(t, c))
	}
	must(t, e.st.Commit(context.Background(), &store.Batch{Calls: rows}))

	r, recs := e.getCSV(t, "", e.keys["crm"])
	if len(recs) != n || r.header.Get("X-Truncated") != "" {
		t.Fatalf("%d rows (truncated %q), want %d", len(recs), r.header.Get("X-Truncated"), n)
	}
	seen := map[string]bool{}
	for i, rec := range recs {
		if want := fmt.Sprintf("bulk-%04d", n-1-i); rec[0] != want || seen[rec[0]] {
			t.Fatalf("row %d is %s, want %s (newest first, no repeats)", i, rec[0], want)
		}
		seen[rec[0]] = true
	}

	for _, limit := range []int{1, 1000, 1500, n - 1} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			r, recs := e.getCSV(t, fmt.Sprint("limit=", limit), e.keys["alice"])
			if len(recs) != limit || r.header.Get("X-Truncated") != "true" {
				t.Fatalf("%d rows (truncated %q), want %d and truncated", len(recs), r.header.Get("X-Truncated"), limit)
			}
		})
	}
	t.Run("limit exactly all", func(t *testing.T) {
		r, recs := e.getCSV(t, fmt.Sprint("limit=", n), e.keys["crm"])
		if len(recs) != n || r.header.Get("X-Truncated") != "" {
			t.Fatalf("%d rows (truncated %q), want %d, not truncated", len(recs), r.header.Get("X-Truncated"), n)
		}
	})
	problem(t, e.get("/api/v1/calls.csv?limit=100001", e.keys["crm"]), http.StatusUnprocessableEntity)
}

func TestOriginateFromUser(t *testing.T) {
	e := newEnv(t)
	// dave has two extensions.
	must(t, e.st.AddMapping(context.Background(), store.Mapping{Tenant: "default", CRMUser: "dave", Extension: "101"}))
	must(t, e.st.AddMapping(context.Background(), store.Mapping{Tenant: "default", CRMUser: "dave", Extension: "102"}))
	must(t, e.hub.Reload(context.Background()))

	tests := []struct {
		name   string
		key    string
		body   string
		status int
		ext    string // the extension the PBX is asked to ring
		detail string
	}{
		{"admin for a user", "admin", `{"from_user":"bob","to":"+79066800404"}`, http.StatusAccepted, "102", ""},
		{"integration for a user", "crm", `{"from_user":"alice","to":"+79066800404"}`, http.StatusAccepted, "101", ""},
		{"user own", "alice", `{"from_user":"alice","to":"+79066800404"}`, http.StatusAccepted, "101", ""},
		{"user other", "alice", `{"from_user":"bob","to":"+79066800404"}`, http.StatusForbidden, "", "own CRM user"},
		{"user without extension", "carol", `{"from_user":"carol","to":"+79066800404"}`, http.StatusUnprocessableEntity, "", `"carol" has no extension`},
		{"unknown user", "crm", `{"from_user":"zed","to":"+79066800404"}`, http.StatusUnprocessableEntity, "", `"zed" has no extension`},
		{"several extensions", "crm", `{"from_user":"dave","to":"+79066800404"}`, http.StatusUnprocessableEntity, "", "2 extensions mapped (101, 102)"},
		{"other tenant", "acme", `{"from_user":"bob","to":"+79066800404"}`, http.StatusUnprocessableEntity, "", `"bob" has no extension`},
		{"other tenant own", "acme-alice", `{"from_user":"alice","to":"+79066800404"}`, http.StatusAccepted, "101", ""},
		{"both from and from_user", "crm", `{"from":"101","from_user":"alice","to":"+79066800404"}`, http.StatusUnprocessableEntity, "", "not both"},
		{"neither", "crm", `{"to":"+79066800404"}`, http.StatusUnprocessableEntity, "", "one of from and from_user"},
		{"empty from_user", "crm", `{"from_user":"","to":"+79066800404"}`, http.StatusUnprocessableEntity, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pbx := e.pbx
			if strings.HasPrefix(tt.key, "acme") {
				pbx = e.acme
			}
			n := len(pbx.commands())
			r := e.post("/api/v1/calls", e.keys[tt.key], tt.body)
			if tt.status != http.StatusAccepted {
				p := problem(t, r, tt.status)
				if d, _ := json.Marshal(p); !strings.Contains(string(d), strings.ReplaceAll(tt.detail, `"`, `\"`)) {
					t.Fatalf("problem %s lacks %q", d, tt.detail)
				}
				if len(pbx.commands()) != n {
					t.Fatal("a refused originate reached the PBX")
				}
				return
			}
			if r.status != http.StatusAccepted {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			cmds := pbx.commands()
			if len(cmds) != n+1 || cmds[n].Extension != tt.ext || cmds[n].To != "+79066800404" {
				t.Fatalf("commands %+v, want one from %s", cmds[n:], tt.ext)
			}
		})
	}
}
