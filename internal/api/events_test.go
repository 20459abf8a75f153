package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"callbridge/internal/api"
	"callbridge/internal/call"
	"callbridge/internal/hub"
)

type wireEvent struct {
	Seq        int64          `json:"seq"`
	ID         string         `json:"id"`
	Type       call.EventType `json:"type"`
	Time       time.Time      `json:"time"`
	PBX        string         `json:"pbx"`
	Call       *call.Call     `json:"call"`
	Extensions []string       `json:"extensions"`
	Users      []string       `json:"users"`
}

type eventPage struct {
	Events []wireEvent `json:"events"`
	Next   *int64      `json:"next"`
}

func (e *env) poll(t *testing.T, key, query string) (eventPage, time.Duration) {
	t.Helper()
	start := time.Now()
	r := e.get("/api/v1/events?"+query, key)
	took := time.Since(start)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var p eventPage
	r.json(t, &p)
	if p.Events == nil || p.Next == nil {
		t.Fatalf("events or next missing: %s", r.body)
	}
	return p, took
}

// summary is "call:type" per event, with seeded calls by name.
func (e *env) summary(p eventPage) []string {
	byID := map[string]string{}
	for name, id := range e.calls {
		byID[id] = name
	}
	out := []string{}
	for _, ev := range p.Events {
		name := "-"
		if ev.Call != nil {
			name = byID[ev.Call.ID]
		}
		out = append(out, name+":"+string(ev.Type))
	}
	return out
}

func TestEvents(t *testing.T) {
	e := newEnv(t)
	e.seed()
	last := e.hub.LastSeq()
	all := []string{"c1:call.ringing", "c1:call.answered", "c1:call.ended", "c2:call.ringing", "c2:call.ended",
		"c3:call.ringing", "c3:call.answered", "c4:call.ringing", "c5:call.ringing", "c5:call.ended"}

	tests := []struct {
		name string
		key  string
		want []string
	}{
		{"integration sees its tenant", "crm", all},
		{"admin sees its tenant", "admin", all},
		{"user sees own extensions", "alice", []string{"c1:call.ringing", "c1:call.answered", "c1:call.ended", "c3:call.ringing", "c3:call.answered", "c4:call.ringing"}},
		{"other user", "bob", []string{"c2:call.ringing", "c2:call.ended", "c4:call.ringing"}},
		{"user without extensions", "carol", []string{}},
		{"other tenant", "acme", []string{"a1:call.ringing"}},
		{"other tenant's user", "acme-alice", []string{"a1:call.ringing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := e.poll(t, e.keys[tt.key], "after=0")
			if diff := cmp.Diff(tt.want, e.summary(p)); diff != "" {
				t.Fatalf("events (-want +got):\n%s", diff)
			}
			// Everything was scanned, seen or not: next is the log's end.
			if *p.Next != last {
				t.Fatalf("next %d, want %d", *p.Next, last)
			}
			for i, ev := range p.Events {
				if ev.Seq <= 0 || (i > 0 && ev.Seq <= p.Events[i-1].Seq) || ev.ID == "" || ev.Time.IsZero() {
					t.Fatalf("event %+v", ev)
				}
			}
		})
	}

	t.Run("user events carry their user", func(t *testing.T) {
		p, _ := e.poll(t, e.keys["alice"], "after=0")
		for _, ev := range p.Events {
			if !slices.Contains(ev.Users, "alice") && !slices.Contains(ev.Extensions, "101") {
				t.Fatalf("event not alice's: %+v", ev)
			}
		}
	})

	t.Run("limit and resume", func(t *testing.T) {
		var got []string
		after := int64(0)
		for range 20 {
			p, _ := e.poll(t, e.keys["crm"], fmt.Sprintf("after=%d&limit=3", after))
			if len(p.Events) > 3 {
				t.Fatalf("%d events with limit 3", len(p.Events))
			}
			if len(p.Events) == 0 {
				break
			}
			// A full page ends at its last event; a short one ran to the log's end,
			// past events of the other tenant.
			lastEv := p.Events[len(p.Events)-1].Seq
			if (len(p.Events) == 3 && *p.Next != lastEv) || (len(p.Events) < 3 && *p.Next != last) {
				t.Fatalf("%d events, next %d, last event %d", len(p.Events), *p.Next, lastEv)
			}
			got = append(got, e.summary(p)...)
			after = *p.Next
		}
		if diff := cmp.Diff(all, got); diff != "" {
			t.Fatalf("resumed events (-want +got):\n%s", diff)
		}
	})

	t.Run("omitted after starts now", func(t *testing.T) {
		p, _ := e.poll(t, e.keys["crm"], "")
		if len(p.Events) != 0 || *p.Next != last {
			t.Fatalf("events %v next %d, want none and %d", e.summary(p), *p.Next, last)
		}
	})

	t.Run("after beyond the log", func(t *testing.T) {
		problem(t, e.get(fmt.Sprintf("/api/v1/events?after=%d", last+100), e.keys["crm"]), http.StatusBadRequest)
	})

	for _, q := range []string{"after=-1", "wait=61", "wait=-1", "limit=0", "limit=1001", "after=x"} {
		t.Run("bad "+q, func(t *testing.T) {
			problem(t, e.get("/api/v1/events?"+q, e.keys["crm"]), http.StatusUnprocessableEntity)
		})
	}

	t.Run("times out empty", func(t *testing.T) {
		cur := e.hub.LastSeq()
		p, took := e.poll(t, e.keys["crm"], fmt.Sprintf("after=%d&wait=1", cur))
		if len(p.Events) != 0 || *p.Next != cur {
			t.Fatalf("events %v next %d", e.summary(p), *p.Next)
		}
		if took < time.Second {
			t.Fatalf("answered after %v, before the wait ended", took)
		}
	})

	t.Run("returns at once when events exist", func(t *testing.T) {
		_, took := e.poll(t, e.keys["crm"], "after=0&wait=30")
		if took > 10*time.Second {
			t.Fatalf("took %v", took)
		}
	})

	t.Run("wakes on a commit during the wait", func(t *testing.T) {
		cur := e.hub.LastSeq()
		type result struct {
			p    eventPage
			took time.Duration
		}
		done := make(chan result, 1)
		go func() {
			// A user key: the first event (102's call) is not alice's and must not end
			// the wait; the second is.
			p, took := e.poll(t, e.keys["alice"], fmt.Sprintf("after=%d&wait=30", cur))
			done <- result{p, took}
		}()
		e.pbx.update(call.Update{PBXCallID: "p-w1", Time: t0.Add(time.Hour), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "84950000001", Extensions: []string{"102"}})
		e.pbx.update(call.Update{PBXCallID: "p-w2", Time: t0.Add(time.Hour), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "84950000002", Extensions: []string{"101"}})
		var res result
		select {
		case res = <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("the poll did not wake")
		}
		if len(res.p.Events) != 1 || res.p.Events[0].Call.PBXCallID != "p-w2" {
			t.Fatalf("events %+v", res.p.Events)
		}
		if *res.p.Next != res.p.Events[0].Seq {
			t.Fatalf("next %d, event %d", *res.p.Next, res.p.Events[0].Seq)
		}
		if res.took >= 30*time.Second {
			t.Fatalf("answered by the timeout (%v), not by the event", res.took)
		}
	})

	t.Run("client gone", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/events?after=%d&wait=60", e.srv.URL, e.hub.LastSeq()), nil)
		req.Header.Set("Authorization", "Bearer "+e.keys["crm"])
		if res, err := e.srv.Client().Do(req); err == nil {
			res.Body.Close()
			t.Fatalf("status %d", res.StatusCode)
		}
	})
}

// TestEventsScanBounded checks a key that sees none of many events gets an answer
// with a next past what was scanned, instead of one request reading the whole log.
func TestEventsScanBounded(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.MaxScan = 100 })
	const n = 250
	for i := range n {
		e.pbx.update(call.Update{PBXCallID: fmt.Sprintf("bulk-%d", i), Time: t0.Add(time.Duration(i) * time.Second), Kind: call.KindRing,
			Direction: call.DirectionIn, Customer: "84950000000", Extensions: []string{"102"}})
	}
	checkFor(t, func() error {
		if s := e.hub.LastSeq(); s < n {
			return fmt.Errorf("seq %d", s)
		}
		return nil
	})
	p, _ := e.poll(t, e.keys["alice"], "after=0&wait=5")
	if len(p.Events) != 0 {
		t.Fatalf("alice sees %d events of 102", len(p.Events))
	}
	if *p.Next != 100 {
		t.Fatalf("next %d: want the end of a bounded scan, 100", *p.Next)
	}
	p2, _ := e.poll(t, e.keys["alice"], "after=200")
	if *p2.Next != n {
		t.Fatalf("scan from 200: next %d, want %d", *p2.Next, n)
	}
	// The integration key sees them, a bounded scan at a time.
	p3, _ := e.poll(t, e.keys["crm"], "after=0&limit=1000")
	if len(p3.Events) != 100 || *p3.Next != p3.Events[99].Seq {
		t.Fatalf("%d events, next %d", len(p3.Events), *p3.Next)
	}
}

// TestEventsBeforeHubLoaded checks a client resuming right after a restart, before
// the hub has loaded its position, keeps its cursor: no 400, no replay.
func TestEventsBeforeHubLoaded(t *testing.T) {
	e := newEnv(t)
	e.seed()
	last := e.hub.LastSeq()
	idle, err := hub.New(hub.Config{Store: e.st}) // never run: its position is 0
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Hub: idle, Auth: e.auth})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{fmt.Sprintf("after=%d", last-1), ""} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/api/v1/events?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+e.keys["crm"])
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%q: status %d: %s", q, rec.Code, rec.Body)
		}
		var p eventPage
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		want := last - 1
		if q == "" {
			want = last
		}
		if len(p.Events) != 0 || *p.Next != want {
			t.Fatalf("%q: %d events, next %d, want none and %d", q, len(p.Events), *p.Next, want)
		}
	}
}
