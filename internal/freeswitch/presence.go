package freeswitch

import (
	"strings"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/freeswitch/esl"
	"callbridge/internal/hub"
)

// maxAgents bounds the callcenter agent names remembered from events: a PBX (or a
// hostile peer) reporting endless agents must not grow the map without limit.
const maxAgents = 10_000

// agentStatuses maps mod_callcenter's agent statuses onto agent.status values.
var agentStatuses = map[string]string{
	"Available":             "available",
	"Available (On Demand)": "available",
	"On Break":              "paused",
	"Logged Out":            "logged_out",
}

// answerStates maps a PRESENCE_IN's answer-state onto extension.status values.
var answerStates = map[string]string{
	"early":      "ringing",
	"ringing":    "ringing",
	"confirmed":  "in_call",
	"terminated": "available",
}

// presence turns a registration, a phone's presence or a callcenter agent's status
// into a status for the hub: sofia::register / unregister / expire and PRESENCE_IN
// become extension.status, callcenter::info agent-status-change agent.status.
// Numbers outside the internal pattern (conference rooms, queues) are left out.
// Agent names the PBX reports are remembered in agents, so that setting an agent's
// status names it as the PBX does.
func presence(pbx string, corr *Correlator, agents map[string]string, e *esl.Event, at time.Time) (hub.Status, bool) {
	st := hub.Status{PBX: pbx, Time: at}
	switch string(e.GetBytes("Event-Name")) {
	case "CUSTOM":
		switch e.Subclass() {
		case "sofia::register":
			st.Type, st.Status = call.EventExtStatus, "registered"
		case "sofia::unregister":
			st.Type, st.Status, st.Reason = call.EventExtStatus, "unregistered", "unregister"
		case "sofia::expire":
			st.Type, st.Status, st.Reason = call.EventExtStatus, "unregistered", "expired"
		case "callcenter::info":
			return agentPresence(corr, agents, e, st)
		default:
			return st, false
		}
		st.Extension = e.Get("from-user")
		if st.Extension == "" {
			st.Extension = e.Get("username")
		}
	case "PRESENCE_IN":
		if e.Get("proto") == "conf" {
			return st, false
		}
		state, ok := answerStates[e.Get("answer-state")]
		if !ok {
			return st, false
		}
		st.Type, st.Status = call.EventExtStatus, state
		st.Extension, _, _ = strings.Cut(e.Get("from"), "@")
	default:
		return st, false
	}
	if !corr.Internal(st.Extension) {
		return st, false
	}
	return st, true
}

// agentPresence handles callcenter::info: an agent-status-change is the agent's
// status.
func agentPresence(corr *Correlator, agents map[string]string, e *esl.Event, st hub.Status) (hub.Status, bool) {
	if e.Get("CC-Action") != "agent-status-change" {
		return st, false
	}
	agent := e.Get("CC-Agent")
	ext, _, _ := strings.Cut(agent, "@")
	if !corr.Internal(ext) {
		return st, false
	}
	if _, known := agents[ext]; known || len(agents) < maxAgents {
		agents[ext] = agent
	}
	raw := e.Get("CC-Agent-Status")
	status, ok := agentStatuses[raw]
	if !ok {
		return st, false
	}
	st.Type, st.Extension, st.Status = call.EventAgentStatus, ext, status
	if status == "paused" {
		st.Reason = raw
	}
	return st, true
}
