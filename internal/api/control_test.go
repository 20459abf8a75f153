package api_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"callbridge/internal/call"
	"callbridge/internal/hub"
)

func TestCallControl(t *testing.T) {
	e := newEnv(t)
	e.seed()
	// c6: inbound to 103, which is not enabled for API control, ringing.
	e.pbx.update(call.Update{PBXCallID: "p-c6", CallID: "0195f000-0000-7000-8000-000000000006", Time: t0.Add(timeMin(6)), Kind: call.KindRing,
		Direction: call.DirectionIn, Customer: "84950000000", Extensions: []string{"103"}})
	e.calls["c6"] = "0195f000-0000-7000-8000-000000000006"
	e.waitCall("default", "c6", call.StateRinging)

	tests := []struct {
		name   string
		key    string
		call   string
		action string
		body   string
		status int
		want   *hub.Command // what the PBX receives; nil: nothing
		pbx    *fakePBX     // nil: the default tenant's
	}{
		// Scopes.
		{"admin holds", "admin", "c3", "hold", "", 202, &hub.Command{Action: hub.ActionHold, PBXCallID: "p-c3", Extension: "101"}, nil},
		{"integration hangs up", "crm", "c3", "hangup", "", 202, &hub.Command{Action: hub.ActionHangup, PBXCallID: "p-c3", Extension: "101"}, nil},
		{"user on own call", "alice", "c3", "dtmf", `{"digits":"12*#AD"}`, 202, &hub.Command{Action: hub.ActionDTMF, PBXCallID: "p-c3", Extension: "101", Digits: "12*#AD"}, nil},
		{"user answers own ringing call", "bob", "c4", "answer", "", 202, &hub.Command{Action: hub.ActionAnswer, PBXCallID: "p-c4", Extension: "102"}, nil},
		{"user acts as own extension on an internal call", "alice", "c4", "hangup", "", 202, &hub.Command{Action: hub.ActionHangup, PBXCallID: "p-c4", Extension: "101"}, nil},
		{"user on another user's call", "bob", "c3", "hold", "", 403, nil, nil},
		{"complete an attended transfer", "crm", "c3", "transfer/complete", "", 202, &hub.Command{Action: hub.ActionTransferComplete, PBXCallID: "p-c3", Extension: "101"}, nil},
		{"cancel an attended transfer", "alice", "c3", "transfer/cancel", "", 202, &hub.Command{Action: hub.ActionTransferCancel, PBXCallID: "p-c3", Extension: "101"}, nil},
		{"complete a transfer of a ringing call", "crm", "c4", "transfer/complete", "", 409, nil, nil},
		{"user without extensions", "carol", "c3", "hangup", "", 403, nil, nil},
		{"other tenant", "acme", "c3", "hold", "", 404, nil, nil},
		{"other tenant user", "acme-alice", "c3", "hold", "", 404, nil, nil},
		{"other tenant's own call", "acme", "a1", "answer", "", 202, &hub.Command{Action: hub.ActionAnswer, PBXCallID: "p-a1", Extension: "101"}, e.acme},
		{"unknown call", "admin", "no-such-call", "hangup", "", 404, nil, nil},
		// Bodies.
		{"blind transfer", "crm", "c3", "transfer", `{"to":"102"}`, 202, &hub.Command{Action: hub.ActionTransfer, PBXCallID: "p-c3", Extension: "101", To: "102"}, nil},
		{"attended transfer", "alice", "c3", "transfer", `{"to":"+79160000000","attended":true}`, 202, &hub.Command{Action: hub.ActionTransfer, PBXCallID: "p-c3", Extension: "101", To: "+79160000000", Attended: true}, nil},
		{"conference", "admin", "c3", "conference", `{"with":"103"}`, 202, &hub.Command{Action: hub.ActionConference, PBXCallID: "p-c3", Extension: "101", To: "103"}, nil},
		{"transfer without target", "admin", "c3", "transfer", `{}`, 422, nil, nil},
		{"transfer to empty", "admin", "c3", "transfer", `{"to":""}`, 422, nil, nil},
		{"conference without party", "admin", "c3", "conference", `{"to":"103"}`, 422, nil, nil},
		{"dtmf bad digit", "admin", "c3", "dtmf", `{"digits":"12x"}`, 422, nil, nil},
		{"dtmf lower case", "admin", "c3", "dtmf", `{"digits":"a"}`, 422, nil, nil},
		{"dtmf empty", "admin", "c3", "dtmf", `{"digits":""}`, 422, nil, nil},
		{"dtmf too long", "admin", "c3", "dtmf", `{"digits":"` + strings.Repeat("1", 33) + `"}`, 422, nil, nil},
		{"dtmf longest", "admin", "c3", "dtmf", `{"digits":"` + strings.Repeat("1", 32) + `"}`, 202, &hub.Command{Action: hub.ActionDTMF, PBXCallID: "p-c3", Extension: "101", Digits: strings.Repeat("1", 32)}, nil},
		{"unknown field", "admin", "c3", "dtmf", `{"digits":"1","tone":"long"}`, 422, nil, nil},
		{"malformed body", "admin", "c3", "transfer", `{"to":`, 400, nil, nil},
		// States.
		{"ended call", "admin", "c1", "hangup", "", 409, nil, nil},
		{"user's own ended call", "alice", "c1", "hangup", "", 409, nil, nil},
		{"another user's ended call", "bob", "c1", "hangup", "", 403, nil, nil},
		{"answer an active call", "admin", "c3", "answer", "", 409, nil, nil},
		{"resume a call not held", "admin", "c3", "resume", "", 409, nil, nil},
		{"dtmf on a ringing call", "admin", "c4", "dtmf", `{"digits":"1"}`, 409, nil, nil},
		{"extension not enabled", "admin", "c6", "answer", "", 403, nil, nil},
		// Authentication.
		{"no key", "", "c3", "hold", "", 401, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pbx := tt.pbx
			if pbx == nil {
				pbx = e.pbx
			}
			before := len(pbx.commands())
			id := e.calls[tt.call]
			if id == "" {
				id = tt.call
			}
			r := e.post("/api/v1/calls/"+id+"/"+tt.action, e.keys[tt.key], tt.body)
			cmds := pbx.commands()[before:]
			if tt.status != http.StatusAccepted {
				problem(t, r, tt.status)
				if len(cmds) != 0 {
					t.Fatalf("the PBX received %+v", cmds)
				}
				return
			}
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			var got map[string]string
			r.json(t, &got)
			// The answer names the command as the hub does ("transfer/complete" → transfer_complete).
			if diff := cmp.Diff(map[string]string{"id": id, "action": string(tt.want.Action), "status": "sent"}, got); diff != "" {
				t.Fatalf("body (-want +got):\n%s", diff)
			}
			want := *tt.want
			want.CallID = id
			if diff := cmp.Diff([]hub.Command{want}, cmds); diff != "" {
				t.Fatalf("commands (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("PBX refuses", func(t *testing.T) {
		e.pbx.setErr(errors.New("channel is gone"))
		defer e.pbx.setErr(nil)
		p := problem(t, e.post("/api/v1/calls/"+e.calls["c3"]+"/hold", e.keys["admin"], ""), http.StatusBadGateway)
		if !strings.Contains(p["detail"].(string), "channel is gone") {
			t.Fatalf("detail %q", p["detail"])
		}
	})
	t.Run("PBX cannot", func(t *testing.T) {
		e.pbx.setErr(hub.ErrUnsupported)
		defer e.pbx.setErr(nil)
		problem(t, e.post("/api/v1/calls/"+e.calls["c3"]+"/conference", e.keys["admin"], `{"with":"103"}`), http.StatusNotImplemented)
	})
}
