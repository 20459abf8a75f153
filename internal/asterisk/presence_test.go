package asterisk

import (
	"testing"
	"time"

	"callbridge/internal/asterisk/ami"
	"callbridge/internal/call"
)

func TestPresence(t *testing.T) {
	c, err := NewCorrelator(labOptions())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 5, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		kv           []string
		typ          call.EventType
		ext, status  string
		reason       string
		notForStatus bool
	}{
		{"device in use", []string{"Event", "DeviceStateChange", "Device", "PJSIP/101", "State", "INUSE"}, call.EventExtStatus, "101", "in_call", "", false},
		{"device ringing", []string{"Event", "DeviceStateChange", "Device", "PJSIP/102", "State", "RINGING"}, call.EventExtStatus, "102", "ringing", "", false},
		{"device gone", []string{"Event", "DeviceStateChange", "Device", "PJSIP/103", "State", "UNAVAILABLE"}, call.EventExtStatus, "103", "offline", "", false},
		{"queue device", []string{"Event", "DeviceStateChange", "Device", "Queue:support-sip_avail", "State", "NOT_INUSE"}, "", "", "", "", true},
		{"queue pause device", []string{"Event", "DeviceStateChange", "Device", "Queue:support-sip_pause_PJSIP/201", "State", "INUSE"}, "", "", "", "", true},
		{"trunk", []string{"Event", "DeviceStateChange", "Device", "PJSIP/trunk", "State", "INUSE"}, "", "", "", "", true},
		{"unknown state", []string{"Event", "DeviceStateChange", "Device", "PJSIP/101", "State", "WEIRD"}, "", "", "", "", true},
		{"registered", []string{"Event", "ContactStatus", "AOR", "101", "ContactStatus", "Reachable"}, call.EventExtStatus, "101", "registered", "Reachable", false},
		{"unregistered", []string{"Event", "ContactStatus", "AOR", "101", "ContactStatus", "Removed"}, call.EventExtStatus, "101", "unregistered", "Removed", false},
		{"paused", []string{"Event", "QueueMemberPause", "Queue", "support-sip", "Interface", "PJSIP/201", "Paused", "1", "PausedReason", "coffee"}, call.EventAgentStatus, "201", "paused", "support-sip: coffee", false},
		{"unpaused", []string{"Event", "QueueMemberPause", "Queue", "support-sip", "Interface", "PJSIP/201", "Paused", "0", "PausedReason", ""}, call.EventAgentStatus, "201", "available", "support-sip", false},
		{"local member", []string{"Event", "QueueMemberStatus", "Queue", "support", "Interface", "Local/202@qmembers/n", "Paused", "0"}, call.EventAgentStatus, "202", "available", "support", false},
		{"not presence", []string{"Event", "Newchannel", "Channel", "PJSIP/101-1"}, "", "", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, ok := presence("lab", c.r, ami.NewPacket(tt.kv...), at)
			if ok == tt.notForStatus {
				t.Fatalf("ok %v: %+v", ok, st)
			}
			if !ok {
				return
			}
			if st.Type != tt.typ || st.Extension != tt.ext || st.Status != tt.status || st.Reason != tt.reason || st.PBX != "lab" || !st.Time.Equal(at) {
				t.Fatalf("%+v", st)
			}
		})
	}
}
