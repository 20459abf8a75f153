package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"callbridge/internal/call"
	"callbridge/internal/hub"
	"callbridge/internal/store"
)

type extension struct {
	Number      string `json:"number"`
	PBX         string `json:"pbx"`
	Name        string `json:"name"`
	APIEnabled  bool   `json:"api_enabled"`
	Status      string `json:"status"`
	AgentStatus string `json:"agent_status"`
}

func (e *env) extensions(key string) []extension {
	e.t.Helper()
	r := e.get("/api/v1/extensions", key)
	if r.status != http.StatusOK {
		e.t.Fatalf("list extensions: %d %s", r.status, r.body)
	}
	var l struct {
		Extensions []extension `json:"extensions"`
	}
	r.json(e.t, &l)
	return l.Extensions
}

func numbers(exts []extension) []string {
	out := []string{}
	for _, x := range exts {
		out = append(out, x.Number)
	}
	return out
}

func TestListExtensions(t *testing.T) {
	e := newEnv(t)
	e.pbx.status(hub.Status{PBX: "pbx1", Type: call.EventAgentStatus, Extension: "101", Status: "paused", Time: t0})
	e.pbx.status(hub.Status{PBX: "pbx1", Type: call.EventExtStatus, Extension: "101", Status: "busy", Time: t0})
	checkFor(t, func() error {
		if s, a := e.hub.ExtensionStatus("default", "101"); s != "busy" || a != "paused" {
			return context.DeadlineExceeded
		}
		return nil
	})
	tests := []struct {
		key  string
		want []string
	}{
		{"admin", []string{"101", "102", "103", "104"}},
		{"crm", []string{"101", "102", "103", "104"}},
		{"alice", []string{"101"}},
		{"bob", []string{"102"}},
		{"carol", []string{}},
		{"acme", []string{"101"}},
		{"acme-alice", []string{"101"}},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, numbers(e.extensions(e.keys[tt.key]))); diff != "" {
				t.Fatalf("extensions (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("shape", func(t *testing.T) {
		got := e.extensions(e.keys["admin"])
		want := []extension{
			{Number: "101", PBX: "pbx1", APIEnabled: true, Status: "busy", AgentStatus: "paused"},
			{Number: "102", PBX: "pbx1", APIEnabled: true},
			{Number: "103", PBX: "pbx1"},
			{Number: "104", PBX: "ghost", APIEnabled: true},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("extensions (-want +got):\n%s", diff)
		}
		if got := e.extensions(e.keys["acme"]); got[0].PBX != "pbx2" || got[0].Status != "" {
			t.Fatalf("acme's 101 %+v", got[0])
		}
	})
	t.Run("no key", func(t *testing.T) { problem(t, e.get("/api/v1/extensions", ""), http.StatusUnauthorized) })
}

func TestSetExtensionAPI(t *testing.T) {
	e := newEnv(t)
	e.seed()
	put := func(number, key, body string) response {
		return e.do(http.MethodPut, "/api/v1/extensions/"+number, key, strings.NewReader(body))
	}
	for _, key := range []string{"crm", "alice", "acme"} {
		t.Run(key+" may not", func(t *testing.T) {
			problem(t, put("103", e.keys[key], `{"api_enabled":true}`), http.StatusForbidden)
		})
	}
	t.Run("unknown extension", func(t *testing.T) {
		problem(t, put("999", e.keys["admin"], `{"api_enabled":true}`), http.StatusNotFound)
	})
	t.Run("invalid body", func(t *testing.T) {
		problem(t, put("103", e.keys["admin"], `{}`), http.StatusUnprocessableEntity)
		problem(t, put("103", e.keys["admin"], `{"api_enabled":"yes"}`), http.StatusUnprocessableEntity)
		problem(t, put("103", e.keys["admin"], `{"api_enabled":true,"x":1}`), http.StatusUnprocessableEntity)
	})

	// 103 is disabled: its calls cannot be driven until an admin enables it.
	e.pbx.update(call.Update{PBXCallID: "p-c6", CallID: "0195f000-0000-7000-8000-000000000006", Time: t0.Add(timeMin(6)), Kind: call.KindRing,
		Direction: call.DirectionIn, Customer: "84950000000", Extensions: []string{"103"}})
	e.calls["c6"] = "0195f000-0000-7000-8000-000000000006"
	e.waitCall("default", "c6", call.StateRinging)
	problem(t, e.post("/api/v1/calls/"+e.calls["c6"]+"/answer", e.keys["crm"], ""), http.StatusForbidden)

	r := put("103", e.keys["admin"], `{"api_enabled":true}`)
	if r.status != http.StatusOK {
		t.Fatalf("enable: %d %s", r.status, r.body)
	}
	var got extension
	r.json(t, &got)
	if diff := cmp.Diff(extension{Number: "103", PBX: "pbx1", APIEnabled: true}, got); diff != "" {
		t.Fatalf("extension (-want +got):\n%s", diff)
	}
	if r := e.post("/api/v1/calls/"+e.calls["c6"]+"/answer", e.keys["crm"], ""); r.status != http.StatusAccepted {
		t.Fatalf("answer on an enabled extension: %d %s", r.status, r.body)
	}

	// Disabling 101 stops its calls and its agent status at once.
	if r := put("101", e.keys["admin"], `{"api_enabled":false}`); r.status != http.StatusOK {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	problem(t, e.post("/api/v1/calls/"+e.calls["c3"]+"/hold", e.keys["alice"], ""), http.StatusForbidden)
	problem(t, e.do(http.MethodPut, "/api/v1/extensions/101/agent-status", e.keys["alice"], strings.NewReader(`{"status":"paused"}`)), http.StatusForbidden)
	// Acme's 101 is another extension.
	if x := e.extensions(e.keys["acme"]); !x[0].APIEnabled {
		t.Fatal("disabling default's 101 disabled acme's")
	}
}

func TestSetAgentStatus(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		key    string
		number string
		body   string
		status int
		pbx    *fakePBX
	}{
		{"admin", "admin", "102", `{"status":"paused"}`, 202, nil},
		{"integration", "crm", "101", `{"status":"available"}`, 202, nil},
		{"user own extension", "alice", "101", `{"status":"lunch"}`, 202, nil},
		{"user another's extension", "alice", "102", `{"status":"paused"}`, 403, nil},
		{"user without extensions", "carol", "101", `{"status":"paused"}`, 403, nil},
		{"other tenant's extension", "acme", "102", `{"status":"paused"}`, 404, nil},
		{"other tenant, own extension", "acme-alice", "101", `{"status":"paused"}`, 202, e.acme},
		{"unknown extension", "admin", "999", `{"status":"paused"}`, 404, nil},
		{"not enabled", "admin", "103", `{"status":"paused"}`, 403, nil},
		{"PBX not connected", "admin", "104", `{"status":"paused"}`, 503, nil},
		{"empty status", "admin", "101", `{"status":""}`, 422, nil},
		{"no status", "admin", "101", `{}`, 422, nil},
		{"odd status", "admin", "101", `{"status":"on break"}`, 422, nil},
		{"unknown field", "admin", "101", `{"status":"paused","reason":"lunch"}`, 422, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pbx := tt.pbx
			if pbx == nil {
				pbx = e.pbx
			}
			before := len(pbx.commands())
			r := e.do(http.MethodPut, "/api/v1/extensions/"+tt.number+"/agent-status", e.keys[tt.key], strings.NewReader(tt.body))
			cmds := pbx.commands()[before:]
			if tt.status != http.StatusAccepted {
				problem(t, r, tt.status)
				if len(cmds) != 0 {
					t.Fatalf("the PBX received %+v", cmds)
				}
				return
			}
			if r.status != tt.status {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var body struct{ Status, AgentStatus string }
			r.json(t, &body)
			var in struct{ Status string }
			must(t, json.Unmarshal([]byte(tt.body), &in))
			want := []hub.Command{{Action: hub.ActionAgent, Extension: tt.number, Status: in.Status}}
			if diff := cmp.Diff(want, cmds); diff != "" {
				t.Fatalf("commands (-want +got):\n%s", diff)
			}
			if body.Status != "sent" {
				t.Fatalf("body %s", r.body)
			}
		})
	}
}

type mapping struct {
	CRMUser   string `json:"crm_user"`
	Extension string `json:"extension"`
}

func (e *env) mappings(key string) []mapping {
	e.t.Helper()
	r := e.get("/api/v1/mappings", key)
	if r.status != http.StatusOK {
		e.t.Fatalf("list mappings: %d %s", r.status, r.body)
	}
	var l struct {
		Mappings []mapping `json:"mappings"`
	}
	r.json(e.t, &l)
	return l.Mappings
}

func TestMappings(t *testing.T) {
	e := newEnv(t)
	e.seed()
	del := func(key, user, ext string) response {
		q := url.Values{"crm_user": {user}, "extension": {ext}}
		return e.do(http.MethodDelete, "/api/v1/mappings?"+q.Encode(), key, nil)
	}

	t.Run("list", func(t *testing.T) {
		want := []mapping{{"alice", "101"}, {"bob", "102"}}
		for _, key := range []string{"admin", "crm"} {
			if diff := cmp.Diff(want, e.mappings(e.keys[key])); diff != "" {
				t.Fatalf("%s: mappings (-want +got):\n%s", key, diff)
			}
		}
		if diff := cmp.Diff([]mapping{{"alice", "101"}}, e.mappings(e.keys["acme"])); diff != "" {
			t.Fatalf("acme: mappings (-want +got):\n%s", diff)
		}
		problem(t, e.get("/api/v1/mappings", e.keys["alice"]), http.StatusForbidden)
	})
	t.Run("writes need admin", func(t *testing.T) {
		for _, key := range []string{"crm", "alice", "acme", "acme-alice"} {
			problem(t, e.post("/api/v1/mappings", e.keys[key], `{"crm_user":"carol","extension":"103"}`), http.StatusForbidden)
			problem(t, del(e.keys[key], "alice", "101"), http.StatusForbidden)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		for _, body := range []string{`{"crm_user":"carol"}`, `{"crm_user":"","extension":"103"}`, `{"crm_user":"carol","extension":"103","x":1}`,
			`{"crm_user":"carol","extension":"999"}`} {
			problem(t, e.post("/api/v1/mappings", e.keys["admin"], body), http.StatusUnprocessableEntity)
		}
		problem(t, e.do(http.MethodDelete, "/api/v1/mappings?crm_user=alice", e.keys["admin"], nil), http.StatusUnprocessableEntity)
	})
	t.Run("duplicate", func(t *testing.T) {
		problem(t, e.post("/api/v1/mappings", e.keys["admin"], `{"crm_user":"alice","extension":"101"}`), http.StatusConflict)
	})
	t.Run("remove unknown", func(t *testing.T) {
		problem(t, del(e.keys["admin"], "carol", "101"), http.StatusNotFound)
		problem(t, del(e.keys["acme"], "bob", "102"), http.StatusForbidden)
	})

	t.Run("add takes effect at once", func(t *testing.T) {
		problem(t, e.post("/api/v1/calls/"+e.calls["c3"]+"/hold", e.keys["carol"], ""), http.StatusForbidden)
		r := e.post("/api/v1/mappings", e.keys["admin"], `{"crm_user":"carol","extension":"101"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("add: %d %s", r.status, r.body)
		}
		var m mapping
		r.json(t, &m)
		if m != (mapping{"carol", "101"}) {
			t.Fatalf("added %+v", m)
		}
		if r := e.post("/api/v1/calls/"+e.calls["c3"]+"/hold", e.keys["carol"], ""); r.status != http.StatusAccepted {
			t.Fatalf("carol holds c3: %d %s", r.status, r.body)
		}
		if got := numbers(e.extensions(e.keys["carol"])); !slices.Equal(got, []string{"101"}) {
			t.Fatalf("carol's extensions %v", got)
		}
		// Events name the new user.
		e.pbx.update(call.Update{PBXCallID: "p-c3", Time: t0.Add(time.Hour), Kind: call.KindHold})
		checkFor(t, func() error {
			c, err := e.st.Call(context.Background(), "default", e.calls["c3"])
			if err != nil {
				return err
			}
			if c.State != call.StateHeld {
				return context.DeadlineExceeded
			}
			return nil
		})
		evs, err := e.st.Events(context.Background(), store.EventFilter{Tenant: "default"})
		must(t, err)
		last := evs[len(evs)-1]
		if !slices.Contains(last.Users, "carol") {
			t.Fatalf("the hold event concerns %v, not carol", last.Users)
		}
	})
	t.Run("remove takes effect at once", func(t *testing.T) {
		r := del(e.keys["admin"], "carol", "101")
		if r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Fatalf("remove: %d %s", r.status, r.body)
		}
		problem(t, e.post("/api/v1/calls/"+e.calls["c3"]+"/resume", e.keys["carol"], ""), http.StatusForbidden)
		if diff := cmp.Diff([]mapping{{"alice", "101"}, {"bob", "102"}}, e.mappings(e.keys["admin"])); diff != "" {
			t.Fatalf("mappings (-want +got):\n%s", diff)
		}
	})
	t.Run("tenant", func(t *testing.T) {
		// Acme has no 102: a mapping to it is refused, not created in another tenant.
		problem(t, e.post("/api/v1/mappings", e.keys["admin"], `{"crm_user":"x","extension":"999"}`), http.StatusUnprocessableEntity)
		if diff := cmp.Diff([]mapping{{"alice", "101"}}, e.mappings(e.keys["acme"])); diff != "" {
			t.Fatalf("acme: mappings (-want +got):\n%s", diff)
		}
	})
}

type issued struct {
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	CRMUser  string `json:"crm_user"`
	Key      string `json:"key"`
}

type integration struct {
	ClientID  string     `json:"client_id"`
	Scope     string     `json:"scope"`
	CRMUser   string     `json:"crm_user"`
	KeyPrefix string     `json:"key_prefix"`
	CreatedAt time.Time  `json:"created_at"`
	RotatedAt *time.Time `json:"rotated_at"`
}

func TestIntegrations(t *testing.T) {
	e := newEnv(t)
	list := func(key string) []integration {
		t.Helper()
		r := e.get("/api/v1/integrations", key)
		if r.status != http.StatusOK {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		for _, k := range e.keys {
			if strings.Contains(string(r.body), k) {
				t.Fatal("the list shows a key")
			}
		}
		if strings.Contains(string(r.body), "hash") {
			t.Fatalf("the list shows a hash: %s", r.body)
		}
		var l struct {
			Integrations []integration `json:"integrations"`
		}
		r.json(t, &l)
		return l.Integrations
	}
	ids := func(ins []integration) []string {
		out := []string{}
		for _, in := range ins {
			out = append(out, in.ClientID)
		}
		return out
	}

	t.Run("admin only", func(t *testing.T) {
		for _, key := range []string{"crm", "alice", "acme", "acme-alice"} {
			problem(t, e.get("/api/v1/integrations", e.keys[key]), http.StatusForbidden)
			problem(t, e.post("/api/v1/integrations", e.keys[key], `{"client_id":"x","scope":"integration"}`), http.StatusForbidden)
			problem(t, e.post("/api/v1/integrations/crm/replace", e.keys[key], ""), http.StatusForbidden)
			problem(t, e.do(http.MethodDelete, "/api/v1/integrations/bob", e.keys[key], nil), http.StatusForbidden)
		}
		problem(t, e.get("/api/v1/integrations", ""), http.StatusUnauthorized)
	})
	t.Run("list", func(t *testing.T) {
		got := list(e.keys["admin"])
		if diff := cmp.Diff([]string{"admin", "alice", "bob", "carol", "crm"}, ids(got)); diff != "" {
			t.Fatalf("clients (-want +got):\n%s", diff)
		}
		for _, in := range got {
			if in.KeyPrefix == "" || !strings.HasPrefix(e.keys[in.ClientID], in.KeyPrefix) || in.CreatedAt.IsZero() || in.RotatedAt != nil {
				t.Errorf("integration %+v", in)
			}
			if (in.ClientID == "alice") != (in.CRMUser == "alice") {
				t.Errorf("integration %+v", in)
			}
		}
	})

	var key string
	t.Run("add", func(t *testing.T) {
		r := e.post("/api/v1/integrations", e.keys["admin"], `{"client_id":"amocrm","scope":"user","crm_user":"dave"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("add: %d %s", r.status, r.body)
		}
		if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Location") != "/api/v1/integrations/amocrm" {
			t.Fatalf("headers %v", r.header)
		}
		var got issued
		r.json(t, &got)
		key = got.Key
		e.keys["amocrm"] = key
		if !strings.HasPrefix(key, "cb_") || got != (issued{"amocrm", "user", "dave", key}) {
			t.Fatalf("added %s", r.body)
		}
		if r := e.get("/api/v1/calls", key); r.status != http.StatusOK {
			t.Fatalf("the new key: %d %s", r.status, r.body)
		}
		problem(t, e.post("/api/v1/integrations", e.keys["admin"], `{"client_id":"amocrm","scope":"integration"}`), http.StatusConflict)
		// Each tenant has its own client ids.
		if ins := list(e.keys["admin"]); !slices.Contains(ids(ins), "amocrm") {
			t.Fatalf("clients %v", ids(ins))
		}
	})
	t.Run("add invalid", func(t *testing.T) {
		for _, body := range []string{
			`{"client_id":"x","scope":"root"}`,
			`{"client_id":"x y","scope":"integration"}`,
			`{"client_id":"","scope":"integration"}`,
			`{"client_id":"x","scope":"user"}`,
			`{"client_id":"x","scope":"integration","crm_user":"dave"}`,
			`{"client_id":"x","scope":"integration","key":"cb_mine"}`,
		} {
			problem(t, e.post("/api/v1/integrations", e.keys["admin"], body), http.StatusUnprocessableEntity)
		}
	})
	t.Run("replace", func(t *testing.T) {
		r := e.post("/api/v1/integrations/amocrm/replace", e.keys["admin"], "")
		if r.status != http.StatusOK || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("replace: %d %s", r.status, r.body)
		}
		var got issued
		r.json(t, &got)
		if got.Key == "" || got.Key == key || got.Scope != "user" || got.CRMUser != "dave" {
			t.Fatalf("replaced %s", r.body)
		}
		problem(t, e.get("/api/v1/calls", key), http.StatusUnauthorized)
		if r := e.get("/api/v1/calls", got.Key); r.status != http.StatusOK {
			t.Fatalf("the new key: %d %s", r.status, r.body)
		}
		e.keys["amocrm"] = got.Key
		for _, in := range list(e.keys["admin"]) {
			if in.ClientID == "amocrm" && (in.RotatedAt == nil || !strings.HasPrefix(got.Key, in.KeyPrefix)) {
				t.Fatalf("after replace %+v", in)
			}
		}
		problem(t, e.post("/api/v1/integrations/nobody/replace", e.keys["admin"], ""), http.StatusNotFound)
	})
	t.Run("remove", func(t *testing.T) {
		r := e.do(http.MethodDelete, "/api/v1/integrations/amocrm", e.keys["admin"], nil)
		if r.status != http.StatusNoContent {
			t.Fatalf("remove: %d %s", r.status, r.body)
		}
		problem(t, e.get("/api/v1/calls", e.keys["amocrm"]), http.StatusUnauthorized)
		problem(t, e.do(http.MethodDelete, "/api/v1/integrations/amocrm", e.keys["admin"], nil), http.StatusNotFound)
		problem(t, e.do(http.MethodDelete, "/api/v1/integrations/admin", e.keys["admin"], nil), http.StatusConflict)
		if ins := list(e.keys["admin"]); slices.Contains(ids(ins), "amocrm") {
			t.Fatalf("clients %v", ids(ins))
		}
	})
	t.Run("tenant", func(t *testing.T) {
		// The default tenant's admin cannot see or touch acme's clients.
		problem(t, e.do(http.MethodDelete, "/api/v1/integrations/acme", e.keys["admin"], nil), http.StatusNotFound)
		problem(t, e.post("/api/v1/integrations/acme-alice/replace", e.keys["admin"], ""), http.StatusNotFound)
		if r := e.get("/api/v1/calls", e.keys["acme"]); r.status != http.StatusOK {
			t.Fatalf("acme's key: %d", r.status)
		}
	})
}
