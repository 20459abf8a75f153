package freeswitch

import (
	"time"

	"callbridge/internal/freeswitch/esl"
	"callbridge/internal/wire"
)

// evKind is an ESL event the correlator acts on.
type evKind uint8

const (
	evIgnore evKind = iota
	evCreate
	evAnswer
	evBridge
	evUnbridge
	evHold
	evUnhold
	evCallstate
	evHangup
	evHangupComplete
	evDestroy
	evExecute
	evDTMF
	evRecord
	evCustom // refined by Event-Subclass into the two below
	evConference
	evCallcenter
	evAPI
	evJob
	// evLive marks the events that only prove a channel alive: they matter while a
	// snapshot is being taken, when a channel seen live must not be taken for gone.
	evLive
)

// eventKindOf maps an Event-Name (upper-cased by the caller) to what the correlator
// does with it.
func eventKindOf(upper []byte) evKind {
	switch string(upper) {
	case "CHANNEL_CREATE":
		return evCreate
	case "CHANNEL_ANSWER":
		return evAnswer
	case "CHANNEL_BRIDGE":
		return evBridge
	case "CHANNEL_UNBRIDGE":
		return evUnbridge
	case "CHANNEL_HOLD":
		return evHold
	case "CHANNEL_UNHOLD":
		return evUnhold
	case "CHANNEL_CALLSTATE":
		return evCallstate
	case "CHANNEL_HANGUP":
		return evHangup
	case "CHANNEL_HANGUP_COMPLETE":
		return evHangupComplete
	case "CHANNEL_DESTROY":
		return evDestroy
	case "CHANNEL_EXECUTE":
		return evExecute
	case "DTMF":
		return evDTMF
	case "RECORD_START", "RECORD_STOP":
		return evRecord
	case "CUSTOM":
		return evCustom
	case "API":
		return evAPI
	case "BACKGROUND_JOB":
		return evJob
	case "CHANNEL_STATE", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_PARK", "CHANNEL_UNPARK",
		"CHANNEL_OUTGOING", "CHANNEL_ORIGINATE", "CHANNEL_EXECUTE_COMPLETE", "CALL_UPDATE", "CODEC",
		"PLAYBACK_START", "PLAYBACK_STOP":
		return evLive
	}
	return evIgnore
}

// Field keys the correlator reads. An event's ~150 headers are indexed in one pass
// instead of one linear, case-insensitive lookup per key.
const (
	fldTimestamp = iota
	fldSubclass
	fldUniqueID
	fldChannelName
	fldCallDirection
	fldCallUUID
	fldOtherLeg
	fldAnswerState
	fldCallState
	fldContext
	fldDestination
	fldCallerNumber
	fldHangupCause
	fldBridgeA
	fldBridgeB
	fldDigit
	fldApplication
	fldApplicationData
	fldRecordPath
	fldAction
	fldCCAction
	fldCCMemberSession
	fldCCAgentUUID
	fldCCCause
	fldCCMemberVar
	fldGatewayVar
	fldAPICommand
	fldAPIArgument
	fldJobCommand
	fldJobArgument
	nFields
)

// fieldNames are the header names, as FreeSWITCH spells them (a JSON event is looked
// up by them).
var fieldNames = [nFields]string{
	fldTimestamp:       "Event-Date-Timestamp",
	fldSubclass:        "Event-Subclass",
	fldUniqueID:        "Unique-ID",
	fldChannelName:     "Channel-Name",
	fldCallDirection:   "Call-Direction",
	fldCallUUID:        "Channel-Call-UUID",
	fldOtherLeg:        "Other-Leg-Unique-ID",
	fldAnswerState:     "Answer-State",
	fldCallState:       "Channel-Call-State",
	fldContext:         "Caller-Context",
	fldDestination:     "Caller-Destination-Number",
	fldCallerNumber:    "Caller-Caller-ID-Number",
	fldHangupCause:     "Hangup-Cause",
	fldBridgeA:         "Bridge-A-Unique-ID",
	fldBridgeB:         "Bridge-B-Unique-ID",
	fldDigit:           "DTMF-Digit",
	fldApplication:     "Application",
	fldApplicationData: "Application-Data",
	fldRecordPath:      "Record-File-Path",
	fldAction:          "Action",
	fldCCAction:        "CC-Action",
	fldCCMemberSession: "CC-Member-Session-UUID",
	fldCCAgentUUID:     "CC-Agent-UUID",
	fldCCCause:         "CC-Cause",
	fldCCMemberVar:     "variable_cc_member_session_uuid",
	fldGatewayVar:      "variable_sip_gateway_name",
	fldAPICommand:      "API-Command",
	fldAPIArgument:     "API-Command-Argument",
	fldJobCommand:      "Job-Command",
	fldJobArgument:     "Job-Command-Arg",
}

// fieldKey maps a lower-cased header name to its index, -1 for the ones ignored.
func fieldKey(lower []byte) int {
	switch string(lower) {
	case "event-date-timestamp":
		return fldTimestamp
	case "event-subclass":
		return fldSubclass
	case "unique-id":
		return fldUniqueID
	case "channel-name":
		return fldChannelName
	case "call-direction":
		return fldCallDirection
	case "channel-call-uuid":
		return fldCallUUID
	case "other-leg-unique-id":
		return fldOtherLeg
	case "answer-state":
		return fldAnswerState
	case "channel-call-state":
		return fldCallState
	case "caller-context":
		return fldContext
	case "caller-destination-number":
		return fldDestination
	case "caller-caller-id-number":
		return fldCallerNumber
	case "hangup-cause":
		return fldHangupCause
	case "bridge-a-unique-id":
		return fldBridgeA
	case "bridge-b-unique-id":
		return fldBridgeB
	case "dtmf-digit":
		return fldDigit
	case "application":
		return fldApplication
	case "application-data":
		return fldApplicationData
	case "record-file-path":
		return fldRecordPath
	case "action":
		return fldAction
	case "cc-action":
		return fldCCAction
	case "cc-member-session-uuid":
		return fldCCMemberSession
	case "cc-agent-uuid":
		return fldCCAgentUUID
	case "cc-cause":
		return fldCCCause
	case "variable_cc_member_session_uuid":
		return fldCCMemberVar
	case "variable_sip_gateway_name":
		return fldGatewayVar
	case "api-command":
		return fldAPICommand
	case "api-command-argument":
		return fldAPIArgument
	case "job-command":
		return fldJobCommand
	case "job-command-arg":
		return fldJobArgument
	}
	return -1
}

// keyFirst and keyLast hold, by name length, the (lower-cased) first and last letters
// of the names fieldKey knows: most headers (variable_sip_…, Caller-Channel-…) fail
// this test and are passed over without being lower-cased and looked up.
var keyFirst, keyLast = func() (first, last [maxKey + 1]uint32) {
	for _, n := range fieldNames {
		first[len(n)] |= 1 << (n[0] | 0x20 - 'a')
		last[len(n)] |= 1 << (n[len(n)-1] | 0x20 - 'a')
	}
	return first, last
}()

// mayBeKey reports whether k can be one of the names fieldKey knows.
func mayBeKey(k []byte) bool {
	n := len(k)
	if n == 0 || n > maxKey {
		return false
	}
	f, l := k[0]|0x20-'a', k[n-1]|0x20-'a'
	return f < 26 && l < 26 && keyFirst[n]>>f&1 != 0 && keyLast[n]>>l&1 != 0
}

// maxKey is the longest name fieldKey knows.
const maxKey = len("variable_cc_member_session_uuid")

// fieldIndex holds, for each known key, 1 + the position of its first header in the
// event (0: absent). It aliases the event being fed. Headers are indexed lazily, in
// order, as far as the keys asked for require: the ones most events need (timestamp,
// Unique-ID, Hangup-Cause, Bridge-…) come in the first 25 of ~200, and each header is
// looked at once at most. A JSON event has no header list: its values are asked for
// one by one and kept for the rest of the event.
type fieldIndex struct {
	pos    [nFields]uint16
	fields []esl.Field
	next   int // fields[:next] are indexed
	ev     *esl.Event
	json   [nFields][]byte
	asked  [nFields]bool
}

func (x *fieldIndex) load(e *esl.Event) {
	x.pos = [nFields]uint16{}
	x.next = 0
	x.ev = nil
	x.fields = e.Fields()
	if len(x.fields) > 1<<16-1 {
		x.fields = x.fields[:1<<16-1]
	}
	if e.IsJSON() {
		x.ev = e
		x.asked = [nFields]bool{}
	}
}

// get returns the value of field f, nil when absent. It aliases the event.
func (x *fieldIndex) get(f int) []byte {
	if x.ev != nil {
		if !x.asked[f] {
			x.asked[f] = true
			x.json[f] = x.ev.GetBytes(fieldNames[f])
		}
		return x.json[f]
	}
	if p := x.pos[f]; p != 0 {
		return x.fields[p-1].Value
	}
	var buf [maxKey]byte
	for x.next < len(x.fields) {
		i := x.next
		x.next++
		k := x.fields[i].Key
		if !mayBeKey(k) {
			continue
		}
		id := fieldKey(lowerASCII(buf[:len(k)], k))
		if id < 0 || x.pos[id] != 0 {
			continue
		}
		x.pos[id] = uint16(i + 1)
		if id == f {
			return x.fields[i].Value
		}
	}
	return nil
}

// release drops the references to the event: it is the caller's again.
func (x *fieldIndex) release() {
	if x.ev != nil {
		x.json = [nFields][]byte{}
	}
	x.fields, x.ev = nil, nil
}

// lower writes the ASCII lower case of s into dst (len(dst) == len(s)) and returns dst.
func lowerASCII(dst, s []byte) []byte {
	for i, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
	return dst
}

// upper writes the ASCII upper case of s into dst (len(dst) == len(s)) and returns dst.
func upperASCII(dst, s []byte) []byte {
	for i, c := range s {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst[i] = c
	}
	return dst
}

// eventNameOf returns the event's (first) Event-Name without allocating: in a plain
// event it is the first header.
func eventNameOf(e *esl.Event) []byte {
	fs := e.Fields()
	if len(fs) > 0 && wire.EqualFold(fs[0].Key, "Event-Name") {
		return fs[0].Value
	}
	return e.GetBytes("Event-Name")
}

// parseMicros reads Event-Date-Timestamp, microseconds since the epoch.
func parseMicros(b []byte) (time.Time, bool) {
	if len(b) == 0 || len(b) > 18 {
		return time.Time{}, false
	}
	var us int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
		us = us*10 + int64(c-'0')
	}
	if us == 0 {
		return time.Time{}, false
	}
	return time.UnixMicro(us), true
}

// parseEpoch reads a whole number of seconds since the epoch (created_epoch).
func parseEpoch(s string) (time.Time, bool) {
	if len(s) == 0 || len(s) > 12 {
		return time.Time{}, false
	}
	var sec int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
		sec = sec*10 + int64(c-'0')
	}
	if sec == 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}
