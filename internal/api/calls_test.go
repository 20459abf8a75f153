package api_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"callbridge/internal/call"
	"callbridge/internal/hub"
)

type callList struct {
	Calls []call.Call `json:"calls"`
	Next  *string     `json:"next"`
}

// names maps the listed calls back to their seed names.
func (e *env) names(l callList) []string {
	byID := map[string]string{}
	for name, id := range e.calls {
		byID[id] = name
	}
	out := []string{}
	for _, c := range l.Calls {
		n, ok := byID[c.ID]
		if !ok {
			n = c.ID
		}
		out = append(out, n)
	}
	return out
}

func TestListCalls(t *testing.T) {
	e := newEnv(t)
	e.seed()
	ts := func(min int) string { return url.QueryEscape(t0.Add(timeMin(min)).Format("2006-01-02T15:04:05Z07:00")) }

	tests := []struct {
		name  string
		key   string
		query string
		want  []string
	}{
		{"all", "admin", "", []string{"c5", "c4", "c3", "c2", "c1"}},
		{"integration key sees the tenant", "crm", "", []string{"c5", "c4", "c3", "c2", "c1"}},
		{"phone as presented", "crm", "phone=89066800404", []string{"c1"}},
		{"phone in E.164", "crm", "phone=%2B79066800404", []string{"c1"}},
		{"phone formatted", "crm", "phone=" + url.QueryEscape("+7 (906) 680-04-04"), []string{"c1"}},
		{"phone unknown", "crm", "phone=84990000000", []string{}},
		{"extension", "crm", "extension=101", []string{"c4", "c3", "c1"}},
		{"extensions comma separated", "crm", "extension=102,103", []string{"c5", "c4", "c2"}},
		{"extensions repeated", "crm", "extension=102&extension=103", []string{"c5", "c4", "c2"}},
		{"direction", "crm", "direction=out", []string{"c3"}},
		{"internal", "crm", "direction=internal", []string{"c4"}},
		{"disposition", "crm", "disposition=busy", []string{"c5"}},
		{"answered", "crm", "disposition=answered", []string{"c1"}},
		{"state", "crm", "state=ringing", []string{"c4"}},
		{"ended", "crm", "state=ended", []string{"c5", "c2", "c1"}},
		{"from", "crm", "from=" + ts(3), []string{"c5", "c4"}},
		{"from to", "crm", "from=" + ts(1) + "&to=" + ts(3), []string{"c3", "c2"}},
		{"combined", "crm", "direction=in&extension=101,102", []string{"c2", "c1"}},
		{"user sees own extensions", "alice", "", []string{"c4", "c3", "c1"}},
		{"user filter narrows", "alice", "state=ended", []string{"c1"}},
		{"user filter on another's extension", "alice", "extension=102", []string{}},
		{"user filter on own and another's", "bob", "extension=101,102", []string{"c4", "c2"}},
		{"user without extensions", "carol", "", []string{}},
		{"other tenant", "acme", "", []string{"a1"}},
		{"other tenant by phone", "acme", "phone=89066800404", []string{"a1"}},
		{"other tenant user", "acme-alice", "", []string{"a1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get("/api/v1/calls?"+tt.query, e.keys[tt.key])
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var l callList
			r.json(t, &l)
			if diff := cmp.Diff(tt.want, e.names(l)); diff != "" {
				t.Fatalf("calls (-want +got):\n%s", diff)
			}
			if l.Next != nil {
				t.Fatalf("next %q on a single page", *l.Next)
			}
		})
	}

	t.Run("call shape", func(t *testing.T) {
		r := e.get("/api/v1/calls?direction=out", e.keys["crm"])
		var raw struct {
			Calls []map[string]any `json:"calls"`
		}
		r.json(t, &raw)
		c := raw.Calls[0]
		for _, k := range []string{"id", "pbx", "pbx_call_id", "direction", "state", "customer", "customer_e164", "rung", "started_at", "talk_s", "allowed"} {
			if _, ok := c[k]; !ok {
				t.Errorf("call JSON lacks %q: %v", k, c)
			}
		}
		if _, ok := c["Tenant"]; ok {
			t.Error("call JSON exposes the tenant")
		}
		if c["customer_e164"] != "+79161234567" || c["answered_by"] != "101" {
			t.Errorf("call %v", c)
		}
	})

	t.Run("pagination", func(t *testing.T) {
		var got []string
		var pages int
		q := "limit=2"
		for {
			r := e.get("/api/v1/calls?"+q, e.keys["admin"])
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var l callList
			r.json(t, &l)
			pages++
			got = append(got, e.names(l)...)
			if l.Next == nil {
				break
			}
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
			q = "limit=2&cursor=" + url.QueryEscape(*l.Next)
		}
		if pages != 3 {
			t.Errorf("%d pages, want 3", pages)
		}
		if diff := cmp.Diff([]string{"c5", "c4", "c3", "c2", "c1"}, got); diff != "" {
			t.Fatalf("pages (-want +got):\n%s", diff)
		}
	})

	t.Run("pagination with a user filter", func(t *testing.T) {
		r := e.get("/api/v1/calls?limit=2", e.keys["alice"])
		var l callList
		r.json(t, &l)
		if l.Next == nil {
			t.Fatal("no next")
		}
		r = e.get("/api/v1/calls?limit=2&cursor="+url.QueryEscape(*l.Next), e.keys["alice"])
		var l2 callList
		r.json(t, &l2)
		if diff := cmp.Diff([]string{"c4", "c3", "c1"}, append(e.names(l), e.names(l2)...)); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
	})

	bad := []struct {
		name   string
		query  string
		status int
	}{
		{"bad cursor", "cursor=%21%21not-a-cursor", http.StatusBadRequest},
		{"cursor without id", "cursor=MTIz", http.StatusBadRequest},
		{"unknown direction", "direction=sideways", http.StatusUnprocessableEntity},
		{"unknown disposition", "disposition=maybe", http.StatusUnprocessableEntity},
		{"unknown state", "state=gone", http.StatusUnprocessableEntity},
		{"limit zero", "limit=0", http.StatusUnprocessableEntity},
		{"limit too big", "limit=1001", http.StatusUnprocessableEntity},
		{"limit not a number", "limit=ten", http.StatusUnprocessableEntity},
		{"from not a time", "from=yesterday", http.StatusUnprocessableEntity},
		{"to before from", "from=" + ts(3) + "&to=" + ts(1), http.StatusUnprocessableEntity},
		{"too many extensions", "extension=" + manyExtensions(101), http.StatusUnprocessableEntity},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			problem(t, e.get("/api/v1/calls?"+tt.query, e.keys["crm"]), tt.status)
		})
	}
}

func TestGetCall(t *testing.T) {
	e := newEnv(t)
	e.seed()
	tests := []struct {
		name   string
		key    string
		call   string
		status int
	}{
		{"admin", "admin", "c1", http.StatusOK},
		{"integration", "crm", "c2", http.StatusOK},
		{"user's own call", "alice", "c3", http.StatusOK},
		{"user's internal call", "alice", "c4", http.StatusOK},
		// Another user's call answers as if it did not exist: no id probing.
		{"another user's call", "alice", "c2", http.StatusNotFound},
		{"user without extensions", "carol", "c1", http.StatusNotFound},
		{"unknown id", "admin", "nope", http.StatusNotFound},
		{"another tenant's call", "acme", "c1", http.StatusNotFound},
		{"from the other tenant", "admin", "a1", http.StatusNotFound},
		{"other tenant's own", "acme", "a1", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := e.calls[tt.call]
			if !ok {
				id = tt.call
			}
			r := e.get("/api/v1/calls/"+id, e.keys[tt.key])
			if tt.status != http.StatusOK {
				problem(t, r, tt.status)
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var c call.Call
			r.json(t, &c)
			if c.ID != id {
				t.Fatalf("got call %s, want %s", c.ID, id)
			}
		})
	}
	t.Run("too long id", func(t *testing.T) {
		problem(t, e.get("/api/v1/calls/"+strings.Repeat("x", 65), e.keys["admin"]), http.StatusUnprocessableEntity)
	})
}

func TestOriginate(t *testing.T) {
	e := newEnv(t)
	body := func(from, to string) *strings.Reader {
		return strings.NewReader(fmt.Sprintf(`{"from":%q,"to":%q}`, from, to))
	}

	t.Run("accepted, then reported by the PBX", func(t *testing.T) {
		r := e.do(http.MethodPost, "/api/v1/calls", e.keys["crm"], body("101", "+79066800404"))
		if r.status != http.StatusAccepted {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var o struct{ ID, Status string }
		r.json(t, &o)
		if o.ID == "" || o.Status != "originating" {
			t.Fatalf("answer %s", r.body)
		}
		if loc := r.header.Get("Location"); loc != "/api/v1/calls/"+o.ID {
			t.Fatalf("Location %q", loc)
		}
		cmds := e.pbx.commands()
		want := hub.Command{Action: hub.ActionOriginate, CallID: o.ID, Extension: "101", To: "+79066800404"}
		if len(cmds) != 1 || cmds[0] != want {
			t.Fatalf("commands %+v, want %+v", cmds, want)
		}
		// Until the PBX reports it, the call does not exist.
		problem(t, e.get("/api/v1/calls/"+o.ID, e.keys["crm"]), http.StatusNotFound)
		e.pbx.update(call.Update{PBXCallID: "orig-1", CallID: o.ID, Time: t0, Kind: call.KindRing,
			Direction: call.DirectionOut, Customer: "+79066800404", Extensions: []string{"101"}})
		checkFor(t, func() error {
			r := e.get("/api/v1/calls/"+o.ID, e.keys["crm"])
			if r.status != http.StatusOK {
				return fmt.Errorf("status %d", r.status)
			}
			var c call.Call
			r.json(t, &c)
			if c.ID != o.ID || c.PBXCallID != "orig-1" || c.State != call.StateRinging {
				return fmt.Errorf("call %+v", c)
			}
			return nil
		})
	})

	tests := []struct {
		name   string
		key    string
		from   string
		pbxErr error
		status int
		detail string
	}{
		{"user from own extension", "alice", "101", nil, http.StatusAccepted, ""},
		{"user from another's extension", "alice", "102", nil, http.StatusForbidden, "own extensions"},
		{"user without extensions", "carol", "101", nil, http.StatusForbidden, ""},
		{"admin from any extension", "admin", "102", nil, http.StatusAccepted, ""},
		{"extension not enabled", "crm", "103", nil, http.StatusForbidden, "not enabled"},
		{"unknown extension", "crm", "999", nil, http.StatusNotFound, ""},
		{"other tenant's extension", "acme", "102", nil, http.StatusNotFound, ""},
		{"PBX not connected", "crm", "104", nil, http.StatusServiceUnavailable, ""},
		{"PBX cannot", "crm", "101", fmt.Errorf("fake: %w", hub.ErrUnsupported), http.StatusNotImplemented, ""},
		{"PBX refuses", "crm", "101", errors.New("fake: extension 101 is busy"), http.StatusBadGateway, "extension 101 is busy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.pbx.setErr(tt.pbxErr)
			defer e.pbx.setErr(nil)
			r := e.do(http.MethodPost, "/api/v1/calls", e.keys[tt.key], body(tt.from, "+79066800404"))
			if tt.status == http.StatusAccepted {
				if r.status != tt.status {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				return
			}
			p := problem(t, r, tt.status)
			if d, _ := p["detail"].(string); !strings.Contains(d, tt.detail) {
				t.Fatalf("detail %q lacks %q", d, tt.detail)
			}
		})
	}

	t.Run("acme from its 101 reaches acme's PBX", func(t *testing.T) {
		n := len(e.acme.commands())
		r := e.do(http.MethodPost, "/api/v1/calls", e.keys["acme-alice"], body("101", "+79066800404"))
		if r.status != http.StatusAccepted {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if len(e.acme.commands()) != n+1 {
			t.Fatal("acme's PBX got no command")
		}
	})

	big := bytes.Repeat([]byte("x"), 2<<20)
	bad := []struct {
		name        string
		body        string
		contentType string
		status      int
	}{
		{"invalid JSON", `{"from": "101", "to": `, "", http.StatusBadRequest},
		{"not an object", `"call me"`, "", http.StatusUnprocessableEntity},
		{"unknown field", `{"from":"101","to":"+79066800404","priority":"high"}`, "", http.StatusUnprocessableEntity},
		{"missing to", `{"from":"101"}`, "", http.StatusUnprocessableEntity},
		{"empty from", `{"from":"","to":"+79066800404"}`, "", http.StatusUnprocessableEntity},
		{"empty body", ``, "", http.StatusBadRequest},
		{"too large", `{"from":"101","to":"` + string(big) + `"}`, "", http.StatusRequestEntityTooLarge},
		{"not JSON", `from=101&to=102`, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			n := len(e.pbx.commands())
			var hdr []string
			if tt.contentType != "" {
				hdr = []string{"Content-Type", tt.contentType}
			}
			problem(t, e.do(http.MethodPost, "/api/v1/calls", e.keys["crm"], strings.NewReader(tt.body), hdr...), tt.status)
			if len(e.pbx.commands()) != n {
				t.Fatal("a bad request reached the PBX")
			}
		})
	}
}

func manyExtensions(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d", 1000+i)
	}
	return b.String()
}
