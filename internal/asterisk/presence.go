package asterisk

import (
	"strings"
	"time"

	"callbridge/internal/asterisk/ami"
	"callbridge/internal/call"
	"callbridge/internal/hub"
)

// deviceStates maps Asterisk's device states onto extension.status values.
var deviceStates = map[string]string{
	"NOT_INUSE":   "available",
	"INUSE":       "in_call",
	"BUSY":        "busy",
	"RINGING":     "ringing",
	"RINGINUSE":   "ringing",
	"ONHOLD":      "on_hold",
	"UNAVAILABLE": "offline",
	"INVALID":     "offline",
	"UNKNOWN":     "unknown",
}

// presence turns an extension's device state, registration or queue membership
// event into a status for the hub: DeviceStateChange and ContactStatus become
// extension.status, QueueMemberStatus and QueueMemberPause agent.status. Devices that
// are not extensions (queues, Local channels, trunks) are left out.
func presence(pbx string, r *rules, p *ami.Packet, at time.Time) (hub.Status, bool) {
	st := hub.Status{PBX: pbx, Time: at}
	switch p.Event() {
	case "DeviceStateChange":
		ext, ok := deviceExtension(r, p.Get("Device"))
		state, known := deviceStates[p.Get("State")]
		if !ok || !known {
			return st, false
		}
		st.Type, st.Extension, st.Status = call.EventExtStatus, ext, state
	case "ContactStatus":
		ext := p.Get("AOR")
		if !r.isInternalNumber(ext) {
			return st, false
		}
		st.Type, st.Extension = call.EventExtStatus, ext
		switch p.Get("ContactStatus") {
		case "Reachable", "Created", "Updated":
			st.Status = "registered"
		case "Unreachable", "Removed":
			st.Status = "unregistered"
		default:
			return st, false
		}
		st.Reason = p.Get("ContactStatus")
	case "QueueMemberStatus", "QueueMemberPause":
		ext, ok := deviceExtension(r, p.Get("Interface"))
		if !ok {
			ext, ok = deviceExtension(r, p.Get("StateInterface"))
		}
		if !ok {
			return st, false
		}
		st.Type, st.Extension, st.Status = call.EventAgentStatus, ext, "available"
		if p.Get("Paused") == "1" {
			st.Status, st.Reason = "paused", p.Get("PausedReason")
		}
		if q := p.Get("Queue"); q != "" {
			if st.Reason != "" {
				st.Reason = q + ": " + st.Reason
			} else {
				st.Reason = q
			}
		}
	default:
		return st, false
	}
	return st, true
}

// deviceExtension is the extension a device or queue interface stands for:
// PJSIP/101 → 101, Local/201@qmembers/n → 201; trunks, queues and numbers that are
// not extensions give false.
func deviceExtension(r *rules, dev string) (string, bool) {
	tech, res, ok := strings.Cut(dev, "/")
	if !ok || tech == "" || strings.Contains(tech, ":") {
		return "", false
	}
	if tech == "Local" {
		res, _, _ = strings.Cut(res, "@")
	} else if r.isTrunk([]byte(dev)) {
		return "", false
	}
	if !r.isInternalNumber(res) {
		return "", false
	}
	return res, true
}
