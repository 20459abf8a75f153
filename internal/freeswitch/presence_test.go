package freeswitch

import (
	"testing"
	"time"

	"callbridge/internal/call"
)

func TestPresence(t *testing.T) {
	corr, err := NewCorrelator(corrLabOptions())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		kv         []string
		typ        call.EventType
		ext, state string
		reason     string
	}{
		{"register", []string{"Event-Name", "CUSTOM", "Event-Subclass", "sofia::register", "from-user", "2001"}, call.EventExtStatus, "2001", "registered", ""},
		{"unregister", []string{"Event-Name", "CUSTOM", "Event-Subclass", "sofia::unregister", "from-user", "2001"}, call.EventExtStatus, "2001", "unregistered", "unregister"},
		{"expire by username", []string{"Event-Name", "CUSTOM", "Event-Subclass", "sofia::expire", "username", "2002"}, call.EventExtStatus, "2002", "unregistered", "expired"},
		{"trunk registration", []string{"Event-Name", "CUSTOM", "Event-Subclass", "sofia::register", "from-user", "+74950000001"}, "", "", "", ""},
		{"phone rings", []string{"Event-Name", "PRESENCE_IN", "proto", "sip", "from", "2001@pbx.local", "answer-state", "early"}, call.EventExtStatus, "2001", "ringing", ""},
		{"phone talks", []string{"Event-Name", "PRESENCE_IN", "proto", "sip", "from", "2001@pbx.local", "answer-state", "confirmed"}, call.EventExtStatus, "2001", "in_call", ""},
		{"conference room", []string{"Event-Name", "PRESENCE_IN", "proto", "conf", "from", "300@127.0.0.1", "answer-state", "confirmed"}, "", "", "", ""},
		{"agent available", []string{"Event-Name", "CUSTOM", "Event-Subclass", "callcenter::info", "CC-Agent", "2213@default", "CC-Action", "agent-status-change", "CC-Agent-Status", "Available"}, call.EventAgentStatus, "2213", "available", ""},
		{"agent on break", []string{"Event-Name", "CUSTOM", "Event-Subclass", "callcenter::info", "CC-Agent", "2213@default", "CC-Action", "agent-status-change", "CC-Agent-Status", "On Break"}, call.EventAgentStatus, "2213", "paused", "On Break"},
		{"agent logged out", []string{"Event-Name", "CUSTOM", "Event-Subclass", "callcenter::info", "CC-Agent", "4014@default", "CC-Action", "agent-status-change", "CC-Agent-Status", "Logged Out"}, call.EventAgentStatus, "4014", "logged_out", ""},
		{"agent state is not a status", []string{"Event-Name", "CUSTOM", "Event-Subclass", "callcenter::info", "CC-Agent", "2213@default", "CC-Action", "agent-state-change", "CC-Agent-State", "Waiting"}, "", "", "", ""},
		{"a channel event", []string{"Event-Name", "CHANNEL_CREATE", "Unique-ID", "x"}, "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agents := map[string]string{}
			st, ok := presence("lab", corr, agents, rawDecode(t, fakeEvent(tt.kv...)), at)
			if tt.typ == "" {
				if ok {
					t.Fatalf("status %+v from a non-status event", st)
				}
				return
			}
			if !ok || st.Type != tt.typ || st.Extension != tt.ext || st.Status != tt.state || st.Reason != tt.reason || st.PBX != "lab" || !st.Time.Equal(at) {
				t.Fatalf("got %+v (%v)", st, ok)
			}
			if tt.typ == call.EventAgentStatus && agents[tt.ext] == "" {
				t.Errorf("agent name of %s not remembered", tt.ext)
			}
		})
	}
}
